/**
 * What a chat request's `tools`, `tool_choice`, `parallel_tool_calls` and `response_format` mean
 * for generation: how the prompt lists the tools, whether tool calls are parsed from the output, and
 * the constraint the engine applies (see ConstraintSpec). How a call looks is the model family's
 * ToolDialect: Phi-4-mini's `<|tool_call|>[...]<|/tool_call|>` list or Qwen2.5's one
 * `<tool_call>{...}</tool_call>` block per call, the tags single tokens either way.
 */
import type { ConstraintSpec, GrammarSpec } from '../../engine/types.ts';
import type { ChatTemplateOptions } from '../../tokenizer/tokenizer.ts';
import { invalidRequest } from '../errors.ts';
import type { ChatCompletionRequest, FunctionTool } from '../protocol/chat.ts';
import { callVariants, type ToolDialect } from '../tools/dialects.ts';
import type { ToolCallSyntax } from '../tools/tool-call-parser.ts';
import { checkSchema, prepareSchema } from './json-schema.ts';

export interface OutputPlan {
  /** The template options that list the tools in the prompt (none without tools). */
  promptTools: Pick<ChatTemplateOptions, 'tools' | 'templateTools'>;
  /** Parse the dialect's call regions into tool_calls (undefined: the output is all content). */
  toolCalls?: ToolCallSyntax;
  constraint?: ConstraintSpec;
  extraStopIds: number[];
  /** Grammars the engine must compile before the request queues, with the param a failure names. */
  grammars: { grammar: GrammarSpec; param: string }[];
}

type Schema = Record<string, unknown>;

export function planOutput(body: ChatCompletionRequest, dialect: ToolDialect | undefined, eosIds: readonly number[]): OutputPlan {
  const tools = body.tools ?? [];
  const choice = body.tool_choice ?? (tools.length > 0 ? 'auto' : 'none');
  const format = body.response_format ?? { type: 'text' };
  if (tools.length === 0) {
    if (choice !== 'none' && choice !== 'auto') throw invalidRequest("'tool_choice' requires 'tools'.", 'tool_choice');
    return planFormat(format, eosIds);
  }
  if (!dialect) {
    throw invalidRequest(
      "This model cannot call tools: its vocabulary has neither Phi-4's <|tool_call|> tokens nor <tool_call> tokens with a chat template that lists `tools`.",
      'tools',
    );
  }
  checkToolNames(tools);
  tools.forEach((t, i) => t.function.parameters && checkSchema(t.function.parameters, `tools[${i}].function.parameters`, enforces(t, choice)));
  const promptTools = dialect.promptTools(tools);
  if (format.type !== 'text' && choice !== 'none') {
    throw invalidRequest("'response_format' with tools is supported only with tool_choice 'none'.", 'response_format');
  }
  if (choice === 'none') {
    const plan = planFormat(format, eosIds);
    return { ...plan, promptTools, constraint: { ...plan.constraint, banned: [dialect.open] } };
  }
  const single = body.parallel_tool_calls === false;
  const toolCalls = dialect.syntax;
  if (choice === 'auto') {
    // A closed call list ends the answer (as the model's own end token would right after it).
    const extraStopIds = dialect.autoStopIds(single);
    if (!tools.some((t) => t.function.strict === true)) return { promptTools, toolCalls, extraStopIds, grammars: [] };
    const grammar = callsGrammar(dialect, tools, single, (t) => t.function.strict === true);
    return {
      promptTools,
      toolCalls,
      extraStopIds,
      grammars: [{ grammar, param: 'tools' }],
      // Every region the model opens is held to the grammar (a Hermes model may open several).
      constraint: { trigger: { id: dialect.open, grammar, endIds: [dialect.close] } },
    };
  }
  const chosen = choice === 'required' ? tools : tools.filter((t) => t.function.name === choice.function.name);
  if (chosen.length === 0) throw invalidRequest(`tool_choice names '${(choice as { function: { name: string } }).function.name}', which is not in 'tools'.`, 'tool_choice.function.name');
  const grammar = callsGrammar(dialect, chosen, single, () => true);
  // One forced region, and the answer ends with it: Phi-4's list may hold several calls, a Hermes block one.
  return {
    promptTools,
    toolCalls,
    extraStopIds: [dialect.close],
    grammars: [{ grammar, param: 'tools' }],
    constraint: { prefix: dialect.forcedPrefix, grammar: { grammar, endIds: [dialect.close] } },
  };
}

function planFormat(format: NonNullable<ChatCompletionRequest['response_format']>, eosIds: readonly number[]): OutputPlan {
  const plain: OutputPlan = { promptTools: {}, extraStopIds: [], grammars: [] };
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

/** What one call region may hold: calls `{"name": <one of the tools>, "arguments": <its parameters>}`, in the dialect's layout. */
function callsGrammar(dialect: ToolDialect, tools: FunctionTool[], single: boolean, enforced: (t: FunctionTool) => boolean): GrammarSpec {
  const { variants, defs } = callVariants(tools, enforced);
  return dialect.regionGrammar(variants, defs, single);
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
