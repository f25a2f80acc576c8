/**
 * The chat model's tokenizer, loaded from the model folder with transformers.js so that
 * tokenization and the chat template are exactly what the model's own files say.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';
import { ChatMarkerSplitter, ChatTemplateError, type MarkerToken, type TemplateInput, type TemplateMessage } from './chat-encoding.ts';
import { TokenizerWorker } from './tokenizer-worker.ts';
import { PHI4_TOOL_CALL_TEMPLATE } from './tool-call-template.ts';

export { ChatTemplateError };

export type ChatRole = 'system' | 'user' | 'assistant' | 'tool';

export interface ChatMessage {
  role: ChatRole;
  content: string;
  /** JSON text of the tool definitions; the Phi-4 template reads it from the system message. */
  tools?: string;
  /**
   * Assistant turns: the calls made. JSON text in the format Phi-4 writes them,
   * `[{"name": ..., "arguments": {...}}]`, or call objects as Hugging Face templates read
   * `message.tool_calls` (Qwen2.5's).
   */
  toolCalls?: string | TemplateToolCall[];
}

/** One call of an assistant turn as Hugging Face chat templates take it: arguments as an object. */
export interface TemplateToolCall {
  type: 'function';
  function: { name: string; arguments: unknown };
}


export interface EncodeOptions {
  /** Passed through to the tokenizer's post-processor; Phi-4's adds nothing (no BOS). */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

export interface ChatTemplateOptions {
  /** End the prompt with the assistant header so the model answers next. */
  addGenerationPrompt?: boolean;
  /**
   * Tool definitions (OpenAI/JSON-schema objects) as Phi-4 reads them: JSON text on the system
   * message (one is added when there is none). An empty list counts as none.
   */
  tools?: unknown[];
  /**
   * Tool definitions given to the template as its own `tools` variable (Hugging Face's
   * `apply_chat_template(tools=...)`; Qwen2.5's template lists them itself). An empty list counts as none.
   */
  templateTools?: unknown[];
  /**
   * Read special-token text inside message content (and tools) as special tokens, as HF does.
   * Off by default: then only the template's own markers are special, so content cannot forge turns.
   */
  specialTokensInContent?: boolean;
  /**
   * A Jinja chat template to use instead of the model's (--chat-template). Unset: the model's own,
   * or the tool-call extension of Phi-4's when the conversation holds tool calls the model's cannot render.
   */
  chatTemplate?: string;
}

export interface RenderedChat {
  text: string;
  ids: number[];
}

/**
 * Inputs of at least this many characters are tokenized in the worker thread. Below it the worst
 * case measured (text without spaces, CJK) stays under ~20 ms on the main thread.
 */
export const OFFLOAD_MIN_CHARS = 1024;

/** Files transformers.js needs; checked up front because a miss is memoized inside the library. */
const REQUIRED_FILES = ['tokenizer.json', 'tokenizer_config.json'] as const;

export class ChatTokenizer {
  /** Ids that end a sequence according to tokenizer_config.json (its eos_token). */
  readonly eosTokenIds: readonly number[];
  /** Highest token id the tokenizer knows plus one (the model's logits may be wider). */
  readonly vocabSize: number;
  /** Absolute path of the folder the tokenizer was loaded from. */
  readonly modelDir: string;

  private readonly tok: PreTrainedTokenizer;
  /** The same tokenizer without its added tokens: encodes their text as ordinary text. */
  private readonly plain: PreTrainedTokenizer;
  private readonly markers: ChatMarkerSplitter;
  private readonly offload: TokenizerWorker;
  private idToToken: (string | undefined)[] | undefined;

  private constructor(tok: PreTrainedTokenizer, modelDir: string) {
    this.tok = tok;
    // Built from the parsed files the library keeps (the large vocabulary and merges are shared).
    const json = tok._tokenizerJSON as { added_tokens?: MarkerToken[] };
    const Tokenizer = tok.constructor as new (json: object, config: object) => PreTrainedTokenizer;
    this.plain = new Tokenizer({ ...json, added_tokens: [] }, tok._tokenizerConfig as object);
    this.markers = new ChatMarkerSplitter(json.added_tokens ?? []);
    this.offload = new TokenizerWorker(modelDir);
    this.modelDir = modelDir;
    this.eosTokenIds = Object.freeze(eosIdsFromConfig(tok));
    let maxId = -1;
    for (const id of tok.get_vocab().values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
  }

  /** Loads tokenizer.json + tokenizer_config.json from `modelDir`, never touching the network. */
  static async load(modelDir: string): Promise<ChatTokenizer> {
    const dir = resolve(modelDir);
    for (const f of REQUIRED_FILES) {
      if (!existsSync(join(dir, f))) throw new Error(`tokenizer: ${join(dir, f)} not found`);
    }
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    // An absolute path fails transformers.js's repo-id check, so it is read verbatim and
    // localModelPath is not prepended; pointing localModelPath at the model's parent only
    // keeps any bare-id lookup inside our models folder instead of node_modules.
    env.localModelPath = dirname(dir);
    const tok = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
    return new ChatTokenizer(tok, dir);
  }

  /** Ends the tokenizer's worker thread (it restarts if the tokenizer is used again). */
  close(): Promise<void> {
    return this.offload.close();
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (text.length === 0) return [];
    return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true });
  }

  /** encode(), in the worker thread when the text is long, so the event loop stays free. */
  async encodeAsync(text: string, opts: EncodeOptions = {}): Promise<number[]> {
    return text.length < OFFLOAD_MIN_CHARS ? this.encode(text, opts) : this.offload.encode(text, opts);
  }

  /** Ids the tokenizer has no token for decode to nothing, as in HF's Rust tokenizers. */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    return this.tok.decode(ids as number[], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  /**
   * The raw bytes of one token (byte-level BPE tokens can be a fragment of a UTF-8 character,
   * which logprobs report as bytes). Undefined for ids the tokenizer has no token for.
   */
  tokenBytes(id: number): Uint8Array | undefined {
    this.idToToken ??= invertVocab(this.tok.get_vocab());
    const token = this.idToToken[id];
    return token === undefined ? undefined : byteLevelToBytes(token);
  }

  tokenToId(token: string): number | undefined {
    const id: number | undefined | null = this.tok.convert_tokens_to_ids(token);
    return typeof id === 'number' ? id : undefined;
  }

  /** applyChatTemplate(), in the worker thread when the conversation is long. */
  async applyChatTemplateAsync(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): Promise<RenderedChat> {
    let chars = (opts.tools ? JSON.stringify(opts.tools).length : 0) + (opts.templateTools ? JSON.stringify(opts.templateTools).length : 0);
    for (const m of messages) {
      const calls = m.toolCalls === undefined ? 0 : typeof m.toolCalls === 'string' ? m.toolCalls.length : JSON.stringify(m.toolCalls).length;
      chars += m.content.length + (m.tools?.length ?? 0) + calls;
    }
    return chars < OFFLOAD_MIN_CHARS ? this.applyChatTemplate(messages, opts) : this.offload.applyChatTemplate(messages, opts);
  }

  /** The model's own chat template (tokenizer_config.json's), when it is one string. */
  get chatTemplate(): string | undefined {
    const own: unknown = (this.tok as { chat_template?: unknown }).chat_template;
    return typeof own === 'string' ? own : undefined;
  }

  /** Whether the model's own template renders assistant tool calls. */
  private rendersToolCalls(): boolean {
    return this.chatTemplate?.includes('tool_calls') === true;
  }

  /**
   * Renders the conversation with the model's own chat template and tokenizes it. Special-token
   * text inside message content stays ordinary text unless `specialTokensInContent` is set.
   * A template that fails on these messages throws ChatTemplateError.
   */
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): RenderedChat {
    const conversation = messages.map(toTemplateMessage);
    if (opts.tools && opts.tools.length > 0) {
      const tools = pythonJsonDumps(opts.tools);
      const sys = conversation.find((m) => m.role === 'system');
      if (sys) sys.tools = tools;
      else conversation.unshift({ role: 'system', content: '', tools });
    }
    const input: TemplateInput = { messages: conversation, ...(opts.templateTools?.length ? { tools: opts.templateTools } : {}) };
    const template = opts.chatTemplate ?? (conversation.some((m) => m.tool_calls !== undefined) && !this.rendersToolCalls() ? PHI4_TOOL_CALL_TEMPLATE : undefined);
    const render = ({ messages: conv, tools }: TemplateInput): string => {
      try {
        return this.tok.apply_chat_template(conv, {
          tokenize: false,
          add_generation_prompt: opts.addGenerationPrompt ?? false,
          ...(template !== undefined ? { chat_template: template } : {}),
          ...(tools !== undefined ? { tools } : {}),
        });
      } catch (err) {
        throw new ChatTemplateError(err instanceof Error ? err.message : String(err));
      }
    };
    const text = render(input);
    if (opts.specialTokensInContent) {
      // Same as apply_chat_template's own tokenize step (no extra special tokens).
      return { text, ids: this.encode(text, { addSpecialTokens: false }) };
    }
    const encodePlain = (t: string): number[] => this.plain.encode(t, { add_special_tokens: false });
    return { text, ids: this.markers.encode(input, text, render, encodePlain) };
  }
}

/**
 * The template tests `'tools' in message`, so the key must be absent (not undefined)
 * when there are no tools, or it would concatenate an undefined value.
 */
function toTemplateMessage(m: ChatMessage): TemplateMessage {
  const out: TemplateMessage = { role: m.role, content: m.content };
  if (typeof m.tools === 'string') out.tools = m.tools;
  if (m.toolCalls !== undefined) out.tool_calls = m.toolCalls;
  return out;
}

function eosIdsFromConfig(tok: PreTrainedTokenizer): number[] {
  const cfg: unknown = tok.config;
  const raw = cfg && typeof cfg === 'object' ? (cfg as Record<string, unknown>).eos_token : undefined;
  const names: unknown[] = Array.isArray(raw) ? raw : [raw];
  const ids: number[] = [];
  for (const n of names) {
    const content =
      typeof n === 'string'
        ? n
        : n && typeof n === 'object' && typeof (n as { content?: unknown }).content === 'string'
          ? (n as { content: string }).content
          : undefined;
    if (content === undefined) continue;
    const id: number | undefined | null = tok.convert_tokens_to_ids(content);
    if (typeof id === 'number' && !ids.includes(id)) ids.push(id);
  }
  return ids;
}

/**
 * JSON as Python's json.dumps writes it by default (", " and ": " separators, non-ASCII
 * escaped). Phi-4-mini's tool prompts were produced that way, so matching it keeps the
 * prompt in the distribution the model was trained on.
 */
export function pythonJsonDumps(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return asciiJsonString(value);
  if (typeof value === 'number') return Number.isFinite(value) ? JSON.stringify(value) : 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(', ')}]`;
  if (typeof value === 'object') {
    const parts: string[] = [];
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v === undefined || typeof v === 'function') continue;
      parts.push(`${asciiJsonString(k)}: ${pythonJsonDumps(v)}`);
    }
    return `{${parts.join(', ')}}`;
  }
  return 'null';
}

function asciiJsonString(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function invertVocab(vocab: Map<string, number>): (string | undefined)[] {
  const out: (string | undefined)[] = [];
  for (const [token, id] of vocab) out[id] = token;
  return out;
}

/**
 * GPT-2's byte-level alphabet maps every byte to a printable character: printable Latin-1
 * bytes map to themselves, the other 68 to U+0100 onwards in byte order. Special tokens are
 * plain text and fall outside the shifted range, so they come back as their UTF-8 bytes.
 */
const UNICODE_TO_BYTE: ReadonlyMap<number, number> = (() => {
  const map = new Map<number, number>();
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    map.set(printable ? b : 256 + shifted++, b);
  }
  return map;
})();

function byteLevelToBytes(token: string): Uint8Array {
  const out: number[] = [];
  for (const ch of token) {
    const b = UNICODE_TO_BYTE.get(ch.codePointAt(0)!);
    if (b !== undefined) out.push(b);
    else out.push(...new TextEncoder().encode(ch));
  }
  return Uint8Array.from(out);
}
