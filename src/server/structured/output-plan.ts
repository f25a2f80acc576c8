/**
 * What a chat request's `tools`, `tool_choice`, `parallel_tool_calls` and `response_format` mean
 * for generation: which tools the prompt lists, whether tool calls are parsed from the output, and
 * the constraint the engine applies (see ConstraintSpec). Phi-4-mini calls tools as
 * `<|tool_call|>[{"name": ..., "arguments": {...}}]<|/tool_call|>`, the markers single tokens.
 */
import type { ConstraintSpec, GrammarSpec } from '../../engine/types.ts';
import { invalidRequest } from '../errors.ts';
import type { ChatCompletionRequest, FunctionTool } from '../protocol/chat.ts';
import { checkSchema, prepareSchema } from './json-schema.ts';

/** The ids of the model's tool-call markers, when its vocabulary has them. */
export interface ToolTokens {
  open: number;
  close: number;
}

export interface OutputPlan {
  /** Function definitions for the prompt's tool list (Phi-4's format: name, description, parameters). */
  promptTools?: unknown[];
  /** Parse `<|tool_call|>` regions into tool_calls. */
  parseToolCalls: boolean;
  constraint?: ConstraintSpec;
  extraStopIds: number[];
  /** Grammars the engine must compile before the request queues, with the param a failure names. */
  grammars: { grammar: GrammarSpec; param: string }[];
}

type Schema = Record<string, unknown>;

export function planOutput(body: ChatCompletionRequest, toolTokens: ToolTokens | undefined, eosIds: readonly number[]): OutputPlan {
  const tools = body.tools ?? [];
  const choice = body.tool_choice ?? (tools.length > 0 ? 'auto' : 'none');
  const format = body.response_format ?? { type: 'text' };
  if (tools.length === 0) {
    if (choice !== 'none' && choice !== 'auto') throw invalidRequest("'tool_choice' requires 'tools'.", 'tool_choice');
    return planFormat(format, eosIds);
  }
  if (!toolTokens) throw invalidRequest("This model's vocabulary has no tool-call tokens, so it cannot call tools.", 'tools');
  checkToolNames(tools);
  tools.forEach((t, i) => t.function.parameters && checkSchema(t.function.parameters, `tools[${i}].function.parameters`, enforces(t, choice)));
  const promptTools = tools.map((t) => t.function).map(({ strict: _s, ...fn }) => fn);
  if (format.type !== 'text' && choice !== 'none') {
    throw invalidRequest("'response_format' with tools is supported only with tool_choice 'none'.", 'response_format');
  }
  if (choice === 'none') {
    const plan = planFormat(format, eosIds);
    return { ...plan, promptTools, constraint: { ...plan.constraint, banned: [toolTokens.open] } };
  }
  const single = body.parallel_tool_calls === false;
  if (choice === 'auto') {
    // A closed call list ends the answer (as the model's own `<|end|>` would right after it).
    if (!tools.some((t) => t.function.strict === true)) return { promptTools, parseToolCalls: true, extraStopIds: [toolTokens.close], grammars: [] };
    const grammar = callsGrammar(tools, single, (t) => t.function.strict === true);
    return {
      promptTools,
      parseToolCalls: true,
      extraStopIds: [toolTokens.close],
      grammars: [{ grammar, param: 'tools' }],
      constraint: { trigger: { id: toolTokens.open, grammar, endIds: [toolTokens.close] } },
    };
  }
  const chosen = choice === 'required' ? tools : tools.filter((t) => t.function.name === choice.function.name);
  if (chosen.length === 0) throw invalidRequest(`tool_choice names '${(choice as { function: { name: string } }).function.name}', which is not in 'tools'.`, 'tool_choice.function.name');
  const grammar = callsGrammar(chosen, single, () => true);
  return {
    promptTools,
    parseToolCalls: true,
    extraStopIds: [toolTokens.close],
    grammars: [{ grammar, param: 'tools' }],
    constraint: { prefix: [toolTokens.open], grammar: { grammar, endIds: [toolTokens.close] } },
  };
}

function planFormat(format: NonNullable<ChatCompletionRequest['response_format']>, eosIds: readonly number[]): OutputPlan {
  const plain: OutputPlan = { parseToolCalls: false, extraStopIds: [], grammars: [] };
  if (format.type === 'text') return plain;
  let grammar: GrammarSpec = { type: 'json_object' };
  let param = 'response_format';
  if (format.type === 'json_schema') {
    param = 'response_format.json_schema.schema';
    const schema = format.json_schema.schema ?? { type: 'object' };
    checkSchema(schema, param, true);
    const { schema: prepared, defs } = prepareSchema(schema);
    grammar = { type: 'json_schema', schema: JSON.stringify(withDefs(prepared, defs)) };
  }
  return { ...plain, grammars: [{ grammar, param }], constraint: { grammar: { grammar, endIds: eosIds } } };
}

/** The schema of a call list: `[{"name": <one of the tools>, "arguments": <its parameters>}, ...]`. */
function callsGrammar(tools: FunctionTool[], single: boolean, enforced: (t: FunctionTool) => boolean): GrammarSpec {
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
  const items = variants.length === 1 ? variants[0] : { anyOf: variants };
  const schema = { type: 'array', minItems: 1, ...(single ? { maxItems: 1 } : {}), items };
  return { type: 'json_schema', schema: JSON.stringify(withDefs(schema, defs)) };
}

function withDefs(schema: Schema, defs: Schema): Schema {
  return Object.keys(defs).length > 0 ? { ...schema, $defs: defs } : schema;
}

/** Whether the tool's schema will be enforced by a grammar (then every keyword must be enforceable). */
function enforces(t: FunctionTool, choice: NonNullable<ChatCompletionRequest['tool_choice']>): boolean {
  if (choice === 'none') return false;
  if (choice === 'auto') return t.function.strict === true;
  return choice === 'required' || choice.function.name === t.function.name;
}

function checkToolNames(tools: FunctionTool[]): void {
  const seen = new Set<string>();
  tools.forEach((t, i) => {
    if (seen.has(t.function.name)) throw invalidRequest(`Tool name '${t.function.name}' appears twice.`, `tools[${i}].function.name`);
    seen.add(t.function.name);
  });
}
