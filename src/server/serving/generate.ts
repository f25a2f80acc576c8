/**
 * The one generation loop both endpoints share: admission, engine tokens ->
 * UTF-8-safe incremental text -> stop-string filter -> deltas, and the mapping of how the
 * engine ended to an OpenAI finish_reason (or an error). Streaming and non-streaming responses
 * are both built from these events, so their texts are identical by construction.
 */
import type { ConstraintSpec, GenerationEvent, GenerationRequest, SamplingParams, TokenLogprob } from '../../engine/types.ts';
import { IncrementalDecoder } from '../../tokenizer/incremental-decoder.ts';
import { ClientGoneError, engineUnavailable, internalError, notReady, queueFull, requestTimeout } from '../errors.ts';
import type { WireFinishReason } from '../protocol/common.ts';
import { QueueClosedError, QueueFullError, type Ticket } from '../admission.ts';
import { StopStringMatcher } from '../stop-strings.ts';
import type { RequestTrace } from '../trace.ts';
import type { RequestAbort } from './abort.ts';
import type { ServingContext } from './context.ts';

export interface GenerationPlan {
  promptIds: readonly number[];
  maxTokens: number;
  sampling: SamplingParams;
  /** Undefined: no logprobs; N >= 0: chosen token plus N alternatives. */
  topLogprobs?: number;
  stops: readonly string[];
  stopTokenIds: readonly number[];
  constraint?: ConstraintSpec;
  /** Special tokens whose text goes into the output text (tool-call markers, for the tool parser). */
  markers?: ReadonlyMap<number, string>;
}

/** A sampled token's logprob info, with where its text lies in the completion text. */
export interface TokenInfo {
  id: number;
  logprob: number;
  top: readonly TokenLogprob[];
  /** Character offset of the token's text in the completion text. */
  textOffset: number;
}

export type GenEvent =
  /** Text that became final (may be '' when held back) and the tokens it completes. */
  | { type: 'delta'; text: string; tokens: TokenInfo[] }
  | {
      type: 'finish';
      finishReason: WireFinishReason;
      promptTokens: number;
      completionTokens: number;
      /** Prompt tokens whose KV came from the prefix cache. */
      cachedTokens: number;
      /** The stop string that ended the output (Anthropic's `stop_sequence`). */
      stopSequence?: string;
      /** Tokens not yet reported with a delta. */
      tokens: TokenInfo[];
    };

/** Admits the request into the engine's line, or answers why not (429 full, 503 shutting down). */
export function admit(ctx: ServingContext, trace: RequestTrace): Ticket {
  let ticket: Ticket;
  try {
    ticket = ctx.admission.admit();
  } catch (err) {
    if (err instanceof QueueFullError) throw queueFull(err.retryAfterSec);
    if (err instanceof QueueClosedError) throw notReady('draining');
    throw err;
  }
  trace.startedAt = performance.now();
  ctx.events.emit('started', trace);
  return ticket;
}

/**
 * Runs one generation. The caller holds the ticket; this never returns before the engine has
 * reported `done`, so releasing the ticket afterwards really frees the engine.
 */
export async function* generate(
  ctx: ServingContext,
  plan: GenerationPlan,
  abort: RequestAbort,
  trace: RequestTrace,
): AsyncGenerator<GenEvent, void, undefined> {
  // Own controller: a matched stop string ends the engine run without touching the request.
  const engineAbort = new AbortController();
  let stoppedByString = false;
  let stopSequence: string | undefined;
  const onRequestAbort = (): void => engineAbort.abort();
  abort.signal.addEventListener('abort', onRequestAbort, { once: true });
  if (abort.signal.aborted) engineAbort.abort();
  // A shutdown refuses what still waits in the engine's line, as it refuses new requests.
  let engineStarted = false;
  let refusedByDrain = false;
  const onDrain = (): void => {
    if (engineStarted) return;
    refusedByDrain = true;
    engineAbort.abort();
  };
  ctx.draining.signal.addEventListener('abort', onDrain, { once: true });
  if (ctx.draining.signal.aborted) onDrain();

  const decoder = new IncrementalDecoder(ctx.tokenizer, { skipSpecialTokens: true });
  const matcher = new StopStringMatcher(plan.stops);
  const eos = new Set(ctx.engine.info.eosTokenIds);
  const wantLogprobs = plan.topLogprobs !== undefined;
  // Tokens whose text has not been fully released yet (held back by the stop matcher).
  let pending: (TokenInfo & { end: number })[] = [];
  let decodedLen = 0;
  let emittedLen = 0;
  let sampled = 0;
  let done: Extract<GenerationEvent, { type: 'done' }> | undefined;
  // --log-content only: the text this generation sent, for the request's summary log line.
  const textSlot = trace.completionText ? trace.completionText.push('') - 1 : -1;
  const sent = (text: string): string => {
    if (textSlot >= 0 && trace.completionText) trace.completionText[textSlot] += text;
    return text;
  };

  /** Tokens whose text lies entirely inside the first `upTo` released characters. */
  const releaseUpTo = (upTo: number): TokenInfo[] => take((p) => p.end <= upTo);
  /** Tokens whose text starts before `upTo` (a stop string cuts the rest). */
  const releaseStartingBefore = (upTo: number): TokenInfo[] => take((p) => p.textOffset < upTo);
  const take = (pred: (p: TokenInfo & { end: number }) => boolean): TokenInfo[] => {
    const out: TokenInfo[] = [];
    const keep: typeof pending = [];
    for (const p of pending) {
      if (pred(p)) out.push({ id: p.id, logprob: p.logprob, top: p.top, textOffset: p.textOffset });
      else keep.push(p);
    }
    pending = keep;
    return out;
  };

  const request: GenerationRequest = {
    promptIds: plan.promptIds,
    maxTokens: plan.maxTokens,
    sampling: plan.sampling,
    ...(plan.topLogprobs !== undefined ? { topLogprobs: plan.topLogprobs } : {}),
    ...(plan.stopTokenIds.length > 0 ? { extraStopTokenIds: plan.stopTokenIds } : {}),
    ...(plan.constraint ? { constraint: plan.constraint } : {}),
  };
  // Iterated by hand (not for-await) so an early exit can keep draining the engine below.
  let iterator: AsyncIterator<GenerationEvent>;
  try {
    iterator = ctx.engine.generate(request, engineAbort.signal)[Symbol.asyncIterator]();
  } catch (err) {
    abort.signal.removeEventListener('abort', onRequestAbort);
    ctx.draining.signal.removeEventListener('abort', onDrain);
    // The engine refuses new work only when its worker is gone.
    throw engineUnavailable(err instanceof Error ? err.message : String(err));
  }
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done) break;
      const ev = next.value;
      if (ev.type === 'started') {
        engineStarted = true;
        trace.queueMs = (trace.queueMs ?? 0) + ev.queuedMs;
        trace.cachedTokens = ev.cachedTokens;
        continue;
      }
      if (ev.type === 'done') {
        done = ev;
        // Let the engine's stream finish its own bookkeeping (it runs when the stream is closed).
        await iterator.return?.();
        break;
      }
      if (stoppedByString) continue; // draining the engine after a stop-string match
      sampled++;
      const now = performance.now();
      trace.firstTokenAt ??= now;
      trace.lastTokenAt = now;
      trace.completionTokens++;
      ctx.events.emit('token', trace, now);

      const marker = plan.markers?.get(ev.id);
      const piece = marker !== undefined ? decoder.flush() + marker : decoder.push(ev.id);
      const start = decodedLen;
      decodedLen += piece.length;
      if (wantLogprobs && ev.logprob && !eos.has(ev.id)) {
        pending.push({ id: ev.id, logprob: ev.logprob.logprob, top: ev.top ?? [], textOffset: start, end: decodedLen });
      }
      const r = matcher.push(piece);
      emittedLen += r.text.length;
      if (r.stopped) {
        stoppedByString = true;
        stopSequence = r.match;
        engineAbort.abort();
        const tokens = releaseStartingBefore(emittedLen);
        pending = [];
        yield { type: 'delta', text: sent(r.text), tokens };
      } else {
        yield { type: 'delta', text: sent(r.text), tokens: releaseUpTo(emittedLen) };
      }
    }
  } finally {
    abort.signal.removeEventListener('abort', onRequestAbort);
    ctx.draining.signal.removeEventListener('abort', onDrain);
    if (!done) {
      // The consumer left early (client gone): stop the engine and wait for its `done`, so the
      // caller's lease is released only once the engine is really free.
      engineAbort.abort();
      try {
        for (;;) {
          const next = await iterator.next();
          if (next.done) break;
          if (next.value.type === 'done') {
            trace.promptTokens += next.value.promptTokens;
            trace.completionTokens += next.value.completionTokens - sampled;
            trace.engineTimings = next.value.timings;
            await iterator.return?.();
            break;
          }
        }
      } catch {
        // The engine already failed; nothing is running.
      }
      trace.outcome = 'abort';
      ctx.events.emit('generationDone', trace);
    }
  }

  if (!done) throw internalError('The engine ended a generation without reporting it.');
  trace.engineTimings = done.timings;
  trace.promptTokens += done.promptTokens;
  // The engine counts the eos token it sampled but does not emit it; usage counts real tokens.
  trace.completionTokens += done.completionTokens - sampled;
  const usage = { promptTokens: done.promptTokens, completionTokens: done.completionTokens, cachedTokens: done.cachedTokens };

  let finishReason: WireFinishReason;
  switch (done.finishReason) {
    case 'stop':
    case 'length':
      finishReason = done.finishReason;
      break;
    case 'abort':
      if (stoppedByString) finishReason = 'stop';
      else if (refusedByDrain && sampled === 0 && abort.cause === undefined) {
        trace.outcome = 'shutdown';
        ctx.events.emit('generationDone', trace);
        throw notReady('draining');
      } else if (abort.cause === 'client') {
        trace.outcome = 'abort';
        ctx.events.emit('generationDone', trace);
        throw new ClientGoneError();
      } else if (sampled > 0) {
        // Out of time (or the server is shutting down): the client gets what exists so far.
        finishReason = 'length';
      } else {
        trace.outcome = abort.cause === 'timeout' ? 'timeout' : 'shutdown';
        ctx.events.emit('generationDone', trace);
        throw abort.cause === 'timeout' ? requestTimeout(ctx.config.requestTimeoutSec) : notReady('draining');
      }
      break;
    default:
      trace.outcome = 'error';
      ctx.events.emit('generationDone', trace);
      throw internalError(`Generation failed: ${done.error ?? 'unknown engine error'}`);
  }

  if (!stoppedByString) {
    // Bytes the decoder still held (an unfinished character) and text the matcher held back.
    const r = matcher.push(decoder.flush());
    let text = r.text;
    if (r.stopped) {
      finishReason = 'stop';
      stopSequence = r.match;
    }
    else text += matcher.flush();
    emittedLen += text.length;
    const tokens = r.stopped ? releaseStartingBefore(emittedLen) : take(() => true);
    if (text.length > 0 || tokens.length > 0) yield { type: 'delta', text: sent(text), tokens };
  }
  trace.outcome =
    done.finishReason === 'abort' && !stoppedByString ? (abort.cause === 'timeout' ? 'timeout' : 'shutdown') : finishReason;
  ctx.events.emit('generationDone', trace);
  yield { type: 'finish', finishReason, ...usage, ...(stopSequence !== undefined ? { stopSequence } : {}), tokens: [] };
}
