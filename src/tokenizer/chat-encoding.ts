/**
 * Tokenizing a rendered chat so that only the template's own markers become special tokens.
 *
 * HF tokenizers read special-token text anywhere in the rendered prompt as the special token,
 * so a user who types `<|end|><|system|>` in a message forges a system turn. Here the template is
 * rendered a second time with every piece of message content replaced by a placeholder: the
 * special tokens found in that skeleton are the template's markers, and the text between two
 * markers (template text and content together, as the tokenizer would see it) is encoded with
 * special-token parsing off. transformers.js has no option for this (no `split_special_tokens`).
 *
 * Structured inputs (a template's `tools` list, assistant `tool_calls` objects) are held string by
 * string: every string that could hold marker text (one with a marker's first character) becomes a
 * placeholder, so the template can still walk the structure (`tool.function.name`, `tool_call.arguments
 * | tojson`). A placeholder is found in the skeleton either as written or as `tojson` escapes it, and is
 * filled in the same form.
 */
import { randomBytes } from 'node:crypto';

/** A failure inside the chat template itself (a Jinja error, a `raise_exception` on these messages). */
export class ChatTemplateError extends Error {
  override name = 'ChatTemplateError';
}

/** A message as the chat template reads it. */
export interface TemplateMessage {
  role: string;
  content: string;
  /** Phi-4's tool list, JSON text on the system message. */
  tools?: string;
  /** JSON text (Phi-4's template extension) or call objects (templates that read `tool_call.function`). */
  tool_calls?: string | unknown[];
}

/** What a template renders: the messages and, for templates that read it, the global `tools` list. */
export interface TemplateInput {
  messages: TemplateMessage[];
  tools?: unknown[];
}

/** One added token of tokenizer.json, as far as splitting needs it. */
export interface MarkerToken {
  id: number;
  content: string;
  lstrip?: boolean;
  rstrip?: boolean;
}

type Piece = { marker: MarkerToken } | { text: string };

export class ChatMarkerSplitter {
  private readonly byContent: ReadonlyMap<string, MarkerToken>;
  private readonly markerPattern: RegExp | undefined;
  /** Private-use delimiters around a random tag: no template text or role can contain them. */
  private readonly tag = `\uE000${randomBytes(6).toString('hex')}:`;
  /**
   * A placeholder ends in U+0001, which `tojson` writes as the six characters `\u0001`: the second
   * group tells whether the template inserted the value as it is or as a JSON string's inside.
   */
  private readonly placeholderPattern = new RegExp(`${this.tag}(\\d+)(\u0001|\\\\u0001)\uE001`);
  /** First characters of the markers: a structured string without any cannot contain one. */
  private readonly markerStarts: readonly string[];

  constructor(markers: readonly MarkerToken[]) {
    this.byContent = new Map(markers.map((m) => [m.content, m]));
    // Longest first, so that of two markers starting at one position the longer wins (as the tokenizer's trie does).
    const alternatives = [...this.byContent.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
    this.markerPattern = alternatives.length > 0 ? new RegExp(alternatives.join('|'), 'g') : undefined;
    this.markerStarts = [...new Set([...this.byContent.keys()].map((k) => k[0]).filter((c) => c !== undefined))];
  }

  /**
   * `render` is the chat template; `rendered` its output for `input`. Returns the marker ids and the
   * plain-encoded text between them, in order. Throws when the template changes the content it
   * inserts (then content cannot be told apart from the template's text).
   */
  encode(
    input: TemplateInput,
    rendered: string,
    render: (input: TemplateInput) => string,
    encodePlain: (text: string) => number[],
  ): number[] {
    const values: string[] = [];
    const hold = (value: string): string => {
      // Empty content stays empty: templates test it for truthiness.
      if (value.length === 0) return value;
      values.push(value);
      return `${this.tag}${values.length - 1}\u0001\uE001`;
    };
    const mayHoldMarker = (s: string): boolean => this.markerStarts.some((c) => s.includes(c));
    // Structured values: only strings that could hold marker text, so structural strings
    // (`"function"`, property names a template looks up) stay what the template tests for.
    const holdTree = (value: unknown): unknown => {
      if (typeof value === 'string') return mayHoldMarker(value) ? hold(value) : value;
      if (Array.isArray(value)) return value.map(holdTree);
      if (value !== null && typeof value === 'object') {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [mayHoldMarker(k) ? hold(k) : k, holdTree(v)]));
      }
      return value;
    };
    const skeleton: TemplateInput = {
      messages: input.messages.map((m) => {
        const out: TemplateMessage = { role: m.role, content: hold(m.content) };
        if (m.tools !== undefined) out.tools = hold(m.tools);
        if (typeof m.tool_calls === 'string') out.tool_calls = hold(m.tool_calls);
        else if (m.tool_calls !== undefined) out.tool_calls = holdTree(m.tool_calls) as unknown[];
        return out;
      }),
      ...(input.tools !== undefined ? { tools: holdTree(input.tools) as unknown[] } : {}),
    };
    const pieces = this.pieces(render(skeleton), values);
    const filled = pieces.map((p) => ('text' in p ? p.text : p.marker.content)).join('');
    if (filled !== rendered) {
      throw new Error('the chat template changes message content, so content cannot be kept apart from its markers');
    }
    stripAroundMarkers(pieces);
    return pieces.flatMap((p) => ('text' in p ? (p.text.length > 0 ? encodePlain(p.text) : []) : [p.marker.id]));
  }

  /** Markers of the skeleton's template text, and the runs of text (content filled in) between them. */
  private pieces(skeletonText: string, values: readonly string[]): Piece[] {
    const out: Piece[] = [];
    let run = '';
    // With two capture groups, split gives template text, a placeholder's index and its form, in turn.
    const parts = skeletonText.split(this.placeholderPattern);
    parts.forEach((part, i) => {
      if (i % 3 === 2) return;
      if (i % 3 === 1) {
        const value = values[Number(part)];
        run += parts[i + 1] === '\u0001' ? value : JSON.stringify(value).slice(1, -1);
        return;
      }
      let last = 0;
      for (const m of this.markerPattern ? part.matchAll(this.markerPattern) : []) {
        out.push({ text: run + part.slice(last, m.index) });
        out.push({ marker: this.byContent.get(m[0])! });
        run = '';
        last = m.index + m[0].length;
      }
      run += part.slice(last);
    });
    out.push({ text: run });
    return out;
  }
}

/** An added token with lstrip/rstrip eats the whitespace before/after it, as the tokenizer does. */
function stripAroundMarkers(pieces: Piece[]): void {
  pieces.forEach((p, i) => {
    if (!('marker' in p)) return;
    const before = pieces[i - 1];
    const after = pieces[i + 1];
    if (p.marker.lstrip && before && 'text' in before) before.text = before.text.trimEnd();
    if (p.marker.rstrip && after && 'text' in after) after.text = after.text.trimStart();
  });
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
