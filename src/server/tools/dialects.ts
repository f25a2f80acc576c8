/**
 * Tool-call dialects: how a model family is shown its tools and its earlier calls, how it writes a
 * call, and how a call is forced or held to a grammar. Chosen from the model's vocabulary and chat
 * template (never from its folder's name):
 *
 * - Phi-4-mini: `<|tool_call|>` / `<|/tool_call|>` special tokens around a JSON list of calls,
 *   `[{"name": ..., "arguments": {...}}]`; the tools go into the system message as JSON text.
 * - Hermes style (Qwen2.5, and other models with `<tool_call>` / `</tool_call>` tokens whose
 *   template reads `tools`): one `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>` block
 *   per call; the template lists the tools itself and renders `tool_calls` objects.
 */
import type { GrammarSpec } from '../../engine/types.ts';
import type { ChatTemplateOptions, TemplateToolCall } from '../../tokenizer/tokenizer.ts';
import { pythonJsonDumps } from '../../tokenizer/tokenizer.ts';
import type { FunctionTool } from '../protocol/chat.ts';
import type { TokenizerLike } from '../serving/context.ts';
import { prepareSchema } from '../structured/json-schema.ts';
import { HERMES_TOOL_SYNTAX, PHI4_TOOL_SYNTAX, type ToolCallSyntax } from './tool-call-parser.ts';

type Schema = Record<string, unknown>;

/** A call as the conversation history holds it, arguments parsed. */
export interface HistoryCall {
  name: string;
  arguments: unknown;
}

export interface ToolDialect {
  readonly name: 'phi4' | 'hermes';
  /** The token that opens a call region, and the one that closes it. */
  readonly open: number;
  readonly close: number;
  /** What the output parser looks for. */
  readonly syntax: ToolCallSyntax;
  /** Tokens forced at the start of the answer when a call is required: the opener and what the model writes right after it. */
  readonly forcedPrefix: readonly number[];
  /** The tags' text, by id, for the output text the parser reads. */
  readonly markers: ReadonlyMap<number, string>;
  /** The template options that put the request's tool definitions into the prompt. */
  promptTools(tools: readonly FunctionTool[]): Pick<ChatTemplateOptions, 'tools' | 'templateTools'>;
  /** An assistant turn's calls as this family's template reads them. */
  historyCalls(calls: readonly HistoryCall[]): string | TemplateToolCall[];
  /**
   * What one grammar phase (opener to closer) holds, given one JSON schema per allowed call
   * `{"name": <const>, "arguments": <parameters>}`: Phi-4's list of calls, or Hermes' one call.
   */
  regionGrammar(variants: Schema[], defs: Schema, single: boolean): GrammarSpec;
  /**
   * Tokens that end a `tool_choice: "auto"` answer after a call: Phi-4's closed list holds all its
   * calls; a Hermes model writes one block per call and ends with its own end token, unless only one
   * call is allowed.
   */
  autoStopIds(single: boolean): number[];
}

/** The function definitions without `strict` (a request option, not something the model reads). */
function definitions(tools: readonly FunctionTool[]): Record<string, unknown>[] {
  return tools.map(({ function: { strict: _s, ...fn } }) => fn);
}

function oneOf(variants: Schema[]): Schema {
  return variants.length === 1 ? variants[0] : { anyOf: variants };
}

function withDefs(schema: Schema, defs: Schema): Schema {
  return Object.keys(defs).length > 0 ? { ...schema, $defs: defs } : schema;
}

function phi4(open: number, close: number): ToolDialect {
  return {
    name: 'phi4',
    open,
    close,
    syntax: PHI4_TOOL_SYNTAX,
    forcedPrefix: [open],
    markers: new Map([[open, PHI4_TOOL_SYNTAX.open], [close, PHI4_TOOL_SYNTAX.close]]),
    promptTools: (tools) => ({ tools: definitions(tools) }),
    historyCalls: (calls) => pythonJsonDumps(calls.map((c) => ({ name: c.name, arguments: c.arguments }))),
    regionGrammar: (variants, defs, single) => {
      const schema = { type: 'array', minItems: 1, ...(single ? { maxItems: 1 } : {}), items: oneOf(variants) };
      return { type: 'json_schema', schema: JSON.stringify(withDefs(schema, defs)) };
    },
    autoStopIds: () => [close],
  };
}

function hermes(open: number, close: number, newline: number): ToolDialect {
  return {
    name: 'hermes',
    open,
    close,
    syntax: HERMES_TOOL_SYNTAX,
    // The model writes `<tool_call>\n{`: the newline is forced too, so the call starts as it was trained.
    forcedPrefix: [open, newline],
    markers: new Map([[open, HERMES_TOOL_SYNTAX.open], [close, HERMES_TOOL_SYNTAX.close]]),
    // OpenAI's tool objects, as transformers passes them to the template; the function's keys in
    // OpenAI's order whatever order the request (or a translated API) gave them in.
    promptTools: (tools) => ({
      templateTools: definitions(tools).map(({ name, description, parameters, ...rest }) => ({
        type: 'function',
        function: { name, ...(description !== undefined ? { description } : {}), ...(parameters !== undefined ? { parameters } : {}), ...rest },
      })),
    }),
    historyCalls: (calls) => calls.map((c) => ({ type: 'function', function: { name: c.name, arguments: c.arguments } })),
    regionGrammar: (variants, defs) => ({ type: 'json_schema', schema: JSON.stringify(withDefs(oneOf(variants), defs)) }),
    autoStopIds: (single) => (single ? [close] : []),
  };
}

/**
 * The dialect this tokenizer and chat template speak, or undefined (then the model cannot call tools).
 * `template` is the template in use: --chat-template's, else the model's own.
 */
export function toolDialect(tokenizer: Pick<TokenizerLike, 'tokenToId' | 'encode'>, template: string | undefined): ToolDialect | undefined {
  const phiOpen = tokenizer.tokenToId(PHI4_TOOL_SYNTAX.open);
  const phiClose = tokenizer.tokenToId(PHI4_TOOL_SYNTAX.close);
  if (phiOpen !== undefined && phiClose !== undefined) return phi4(phiOpen, phiClose);
  const open = tokenizer.tokenToId(HERMES_TOOL_SYNTAX.open);
  const close = tokenizer.tokenToId(HERMES_TOOL_SYNTAX.close);
  // The template must list the tools itself (Hermes-style templates read a `tools` variable).
  if (open === undefined || close === undefined || template === undefined || !/\btools\b/.test(template)) return undefined;
  const newline = tokenizer.encode('\n', { addSpecialTokens: false });
  return newline.length === 1 ? hermes(open, close, newline[0]) : undefined;
}

/** One JSON schema per callable tool: `{"name": <its name>, "arguments": <its parameters, or any object>}`. */
export function callVariants(tools: readonly FunctionTool[], enforced: (t: FunctionTool) => boolean): { variants: Schema[]; defs: Schema } {
  const defs: Schema = {};
  const variants = tools.map((t, i) => {
    let args: Schema = { type: 'object' };
    if (enforced(t)) {
      const prepared = prepareSchema(t.function.parameters ?? { type: 'object', properties: {} }, `tool${i}_`);
      Object.assign(defs, prepared.defs);
      args = prepared.schema;
    }
    return { type: 'object', properties: { name: { const: t.function.name }, arguments: args }, required: ['name', 'arguments'] };
  });
  return { variants, defs };
}
