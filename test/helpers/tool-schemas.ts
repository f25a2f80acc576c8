/**
 * Tool parameter schemas a random-weight model can complete under a grammar: enums, booleans and
 * bounded integers only (a free string may never be closed by random weights); and the client's
 * side of a streamed tool call.
 */
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';

export const WEATHER = {
  type: 'object',
  properties: { city: { enum: ['Paris', 'Oslo', 'Lima'] }, unit: { enum: ['c', 'f'] }, days: { type: 'integer', minimum: 1, maximum: 7 } },
  required: ['city', 'unit', 'days'],
  additionalProperties: false,
};

export const TIME = { type: 'object', properties: { zone: { enum: ['UTC', 'CET'] }, exact: { type: 'boolean' } }, required: ['zone', 'exact'] };

/** Validators of the tools' arguments, by tool name (get_weather: WEATHER, get_time: TIME). */
export const byName: Record<string, (v: unknown) => boolean> = { get_weather: new Ajv().compile(WEATHER), get_time: new Ajv().compile(TIME) };

/** Every call is an OpenAI function call to one of `names`, with arguments valid against its schema. */
export function assertValidCalls(calls: StreamedCall[] | undefined, names: string[]): void {
  assert.ok(calls && calls.length > 0, 'no tool calls');
  for (const c of calls) {
    assert.match(c.id, /^call_/);
    assert.equal(c.type, 'function');
    assert.ok(names.includes(c.function.name), c.function.name);
    assert.ok(byName[c.function.name](JSON.parse(c.function.arguments)), c.function.arguments);
  }
}

/** A streamed call as the client reassembles it from `delta.tool_calls`. */
export interface StreamedCall {
  id: string;
  type: string;
  function: { name: string; arguments: string };
}

interface ChunkLike {
  choices: { delta: { content?: string | null; tool_calls?: { index: number; id?: string; type?: string; function?: { name?: string; arguments?: string } }[] }; finish_reason: string | null }[];
}

/** Reads a chat stream as a client does: content, calls rebuilt from their deltas, argument fragments, finish reason. */
export async function collectToolCallStream(stream: AsyncIterable<ChunkLike>): Promise<{ calls: StreamedCall[]; content: string; finish: string | null; fragments: number }> {
  const calls: StreamedCall[] = [];
  let content = '';
  let finish: string | null = null;
  let fragments = 0;
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    if (!c) continue;
    content += c.delta.content ?? '';
    for (const d of c.delta.tool_calls ?? []) {
      if (d.id) calls[d.index] = { id: d.id, type: d.type ?? 'function', function: { name: d.function?.name ?? '', arguments: '' } };
      if (d.function?.arguments) {
        calls[d.index].function.arguments += d.function.arguments;
        fragments++;
      }
    }
    finish = c.finish_reason ?? finish;
  }
  return { calls, content, finish, fragments };
}
