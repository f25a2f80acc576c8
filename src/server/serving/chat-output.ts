/**
 * The assistant's output as OpenAI shapes it: content text, or (with tools) content and tool calls
 * parsed from the model's call regions (`<|tool_call|>` or `<tool_call>`, see ToolDialect). Streaming and non-streaming answers of every
 * API (chat, Messages, Responses) are built from these pieces.
 */
import { randomBytes } from 'node:crypto';
import type { ChatCompletionChunkChoice, ChatFinishReason, ToolCall, ToolCallDelta } from '../protocol/chat.ts';
import { ToolCallParser, type ToolCallSyntax, type ToolParseEvent } from '../tools/tool-call-parser.ts';

export type ChunkDelta = ChatCompletionChunkChoice['delta'];

export class ChatOutput {
  private readonly parser: ToolCallParser | undefined;
  private readonly ids: string[] = [];

  /** `toolCalls`: the syntax calls are parsed in; undefined, the output is all content. */
  constructor(toolCalls: ToolCallSyntax | undefined) {
    this.parser = toolCalls ? new ToolCallParser(toolCalls) : undefined;
  }

  push(text: string): { content: string; deltas: ChunkDelta[] } {
    if (!this.parser) return { content: text, deltas: text.length > 0 ? [{ content: text }] : [] };
    return this.shape(this.parser.push(text));
  }

  finish(): { content: string; deltas: ChunkDelta[] } {
    return this.parser ? this.shape(this.parser.finish()) : { content: '', deltas: [] };
  }

  finishReason(reason: 'stop' | 'length'): ChatFinishReason {
    return reason === 'stop' && this.ids.length > 0 ? 'tool_calls' : reason;
  }

  toolCalls(): ToolCall[] {
    return (this.parser?.calls ?? []).map((c, i) => ({ id: this.ids[i], type: 'function', function: { name: c.name, arguments: c.arguments } }));
  }

  private shape(events: ToolParseEvent[]): { content: string; deltas: ChunkDelta[] } {
    let content = '';
    const deltas: ChunkDelta[] = [];
    for (const e of events) {
      if (e.type === 'content') {
        content += e.text;
        if (e.text.length > 0) deltas.push({ content: e.text });
        continue;
      }
      let call: ToolCallDelta;
      if (e.type === 'call') {
        this.ids[e.index] = `call_${randomBytes(12).toString('hex')}`;
        call = { index: e.index, id: this.ids[e.index], type: 'function', function: { name: e.name, arguments: '' } };
      } else {
        call = { index: e.index, function: { arguments: e.text } };
      }
      deltas.push({ tool_calls: [call] });
    }
    return { content, deltas };
  }
}
