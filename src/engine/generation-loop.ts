/**
 * Prefill + autoregressive decode for one sequence. Runs where the session lives (the worker);
 * `emit` hands each event out as soon as it exists.
 */
import type { DecoderSession } from './decoder-session.ts';
import { Sampler } from './sampling/index.ts';
import { firstStop, stopAtMaxTokens, stopOnTokens, type StoppingCriterion } from './stopping.ts';
import type { FinishReason, GenerationEvent, GenerationRequest } from './types.ts';

export interface LoopHooks {
  /** Checked before every model step; true ends the generation with finish_reason "abort". */
  aborted: () => boolean;
  emit: (event: GenerationEvent) => void;
}

export async function runGeneration(session: DecoderSession, req: GenerationRequest, hooks: LoopHooks): Promise<void> {
  const { info } = session;
  const started = performance.now();
  let runMs = 0;
  let prefillMs = 0;
  /** runMs when the first token was sampled: what the prompt's steps took. */
  let prefillRunMs = 0;
  let completionTokens = 0;
  let finishReason: FinishReason | undefined;
  let error: string | undefined;
  const seq = session.newSequence();

  const forward = async (tokens: readonly number[]): Promise<Float32Array> => {
    const t = performance.now();
    const logits = await session.forward(seq, tokens);
    runMs += performance.now() - t;
    return logits;
  };

  try {
    if (req.promptIds.length === 0) throw new RangeError('prompt is empty');
    if (req.promptIds.length >= info.contextLength) {
      throw new RangeError(`prompt of ${req.promptIds.length} tokens does not fit the context of ${info.contextLength}`);
    }
    const criteria: StoppingCriterion[] = [
      stopOnTokens([...info.eosTokenIds, ...(req.extraStopTokenIds ?? [])]),
      stopAtMaxTokens(req.maxTokens),
    ];
    const sampler = new Sampler(info.vocabSize, req.sampling, req.promptIds);
    const sampleOpts = { topLogprobs: req.topLogprobs };

    if (hooks.aborted()) {
      finishReason = 'abort';
    } else if (req.maxTokens <= 0) {
      finishReason = 'length';
    } else {
      let logits = await forward(req.promptIds);
      while (finishReason === undefined) {
        const choice = sampler.sample(logits, sampleOpts);
        completionTokens++;
        if (completionTokens === 1) {
          prefillMs = performance.now() - started;
          prefillRunMs = runMs;
        }
        const stop = firstStop(criteria, { tokenId: choice.id, completionTokens });
        if (stop !== 'stop') hooks.emit({ type: 'token', id: choice.id, logprob: choice.logprob, top: choice.top });
        if (stop) {
          finishReason = stop;
        } else if (seq.length + 2 > info.contextLength) {
          // The sequence holds seq.length + 1 tokens now; another one would not fit the context.
          finishReason = 'length';
        } else if (hooks.aborted()) {
          finishReason = 'abort';
        } else {
          logits = await forward([choice.id]);
        }
      }
    }
  } catch (err) {
    finishReason = 'error';
    error = err instanceof Error ? err.message : String(err);
  } finally {
    seq.release();
  }

  const totalMs = performance.now() - started;
  const decodeMs = completionTokens > 0 ? totalMs - prefillMs : 0;
  // Per decode step, so the request's one-off setup (sampler, sequence) is not spread over its tokens.
  const decodeSteps = completionTokens - 1;
  hooks.emit({
    type: 'done',
    finishReason,
    promptTokens: req.promptIds.length,
    completionTokens,
    timings: {
      prefillMs,
      decodeMs,
      overheadMsPerToken: decodeSteps > 0 ? (decodeMs - (runMs - prefillRunMs)) / decodeSteps : 0,
    },
    ...(error !== undefined ? { error } : {}),
  });
}
