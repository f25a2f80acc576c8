/** Token logprobs in the two wire formats: chat (objects per token) and legacy completions (parallel arrays). */
import type { ChatTokenLogprob, TopLogprob } from '../protocol/chat.ts';
import type { CompletionLogprobs } from '../protocol/completions.ts';
import type { TokenizerLike } from './context.ts';
import type { TokenInfo } from './generate.ts';

interface TokenPiece {
  token: string;
  /** Null when the token is part of a character and its exact bytes are unknown. */
  bytes: number[] | null;
}

/** Optional capability: raw bytes of a token (byte-level BPE). Used when the tokenizer offers it. */
interface TokenBytesSource {
  tokenBytes(id: number): Uint8Array | undefined;
}

function hasTokenBytes(tok: object): tok is TokenBytesSource {
  return typeof (tok as Partial<TokenBytesSource>).tokenBytes === 'function';
}

export class TokenPieces {
  private readonly cache = new Map<number, TokenPiece>();
  constructor(private readonly tokenizer: TokenizerLike) {}

  get(id: number): TokenPiece {
    let piece = this.cache.get(id);
    if (!piece) {
      piece = this.compute(id);
      this.cache.set(id, piece);
    }
    return piece;
  }

  private compute(id: number): TokenPiece {
    if (hasTokenBytes(this.tokenizer)) {
      const raw = this.tokenizer.tokenBytes(id);
      if (raw) {
        const bytes = [...raw];
        const text = Buffer.from(raw).toString('utf8');
        // OpenAI's convention for a token that is only part of a character: escaped bytes.
        const token = text.includes('\ufffd') ? bytes.map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('') : text;
        return { token, bytes };
      }
    }
    const token = this.tokenizer.decode([id], { skipSpecialTokens: false });
    return { token, bytes: token.includes('\ufffd') ? null : [...Buffer.from(token, 'utf8')] };
  }
}

export function chatLogprobs(pieces: TokenPieces, tokens: readonly TokenInfo[]): ChatTokenLogprob[] {
  return tokens.map((t) => {
    const p = pieces.get(t.id);
    return {
      token: p.token,
      logprob: t.logprob,
      bytes: p.bytes,
      top_logprobs: t.top.map((alt): TopLogprob => {
        const ap = pieces.get(alt.id);
        return { token: ap.token, logprob: alt.logprob, bytes: ap.bytes };
      }),
    };
  });
}

/** `offsetBase` shifts text_offset past an echoed prompt. */
export function completionLogprobs(
  pieces: TokenPieces,
  tokens: readonly TokenInfo[],
  offsetBase: number,
): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  for (const t of tokens) {
    out.tokens.push(pieces.get(t.id).token);
    out.token_logprobs.push(t.logprob);
    const top: Record<string, number> = {};
    for (const alt of t.top) {
      const key = pieces.get(alt.id).token;
      // Two ids can render alike; keep the likelier one, as the legacy format is keyed by text.
      if (!(key in top) || top[key] < alt.logprob) top[key] = alt.logprob;
    }
    out.top_logprobs.push(top);
    out.text_offset.push(offsetBase + t.textOffset);
  }
  return out;
}

export function emptyCompletionLogprobs(): CompletionLogprobs {
  return { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
}

export function appendCompletionLogprobs(into: CompletionLogprobs, more: CompletionLogprobs): void {
  into.tokens.push(...more.tokens);
  into.token_logprobs.push(...more.token_logprobs);
  into.top_logprobs.push(...more.top_logprobs);
  into.text_offset.push(...more.text_offset);
}
