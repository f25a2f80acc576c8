// Types of markdown.js for the TypeScript tests (the page itself imports the .js directly).
/** Escapes the five HTML-significant characters. */
export function escapeHtml(text: string): string;
/** One line of inline Markdown (code spans, emphasis, http(s) links) as HTML. */
export function renderInline(raw: string): string;
/** Markdown text (model output) as HTML that carries no markup from the input. */
export function renderMarkdown(source: string | null | undefined): string;
