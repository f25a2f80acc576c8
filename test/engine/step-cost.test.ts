/** The prompt chunk beside decoding sequences follows the steps it produces toward ITL_FACTOR x a decode-only step. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ITL_FACTOR, PREFILL_CHUNK_MAX, PREFILL_CHUNK_MIN, RideAlong, prefillChunkFor } from '../../src/engine/step-cost.ts';

/**
 * A machine whose steps cost 60 + 30/token ms; a step carrying a prompt also reads the prompt's
 * past once (0.02 ms a position) and each prompt token attends over it (0.002 ms a position).
 */
function stepMs(decoding: number, prompt: number, past: number, slower = 1): number {
  const promptMs = prompt > 0 ? 0.02 * past + prompt * (30 + 0.002 * past) : 0;
  return slower * (60 + 30 * decoding + promptMs);
}

/** Feeds a 2,000-token prompt beside `decoding` rows; returns each step's cost against a decode-only step, and its chunk. */
function readPrompt(ride: RideAlong, decoding: number, spentMs: (step: number) => number = () => 0): { ratios: number[]; chunks: number[] } {
  let past = 0;
  const ratios: number[] = [];
  const chunks: number[] = [];
  for (let step = 0; past < 2000; step++) {
    const spent = spentMs(step);
    const chunk = ride.next(decoding, spent);
    const ms = stepMs(decoding, chunk, past);
    ride.observe(decoding, chunk, ms);
    ratios.push((ms + spent) / stepMs(decoding, 0, 0));
    chunks.push(chunk);
    past += chunk;
  }
  return { ratios, chunks };
}

test('the chunk settles where a step costs ITL_FACTOR x the decode-only step, and shrinks as the prompt past grows', () => {
  const ride = new RideAlong({ fixedMs: 60, perTokenMs: 30 });
  const decoding = 2;
  for (let i = 0; i < 5; i++) ride.observe(decoding, 0, stepMs(decoding, 0, 0));
  const { ratios, chunks } = readPrompt(ride, decoding);
  // Past the first few steps every step stays within a token's worth of the aim, never far above it.
  for (const r of ratios.slice(5)) assert.ok(r <= ITL_FACTOR * 1.15 && r >= ITL_FACTOR * 0.75, `ratio ${r}`);
  assert.ok(chunks.at(-1)! < chunks[5], `chunks ${chunks[5]} -> ${chunks.at(-1)}`);
  // Reading the past costs the step as much as a few tokens: the chunk does not collapse to one token.
  assert.ok(chunks.at(-1)! >= 2, `last chunk ${chunks.at(-1)}`);
});

test('time a step already spent moving rows comes off its chunk, and is not learnt as the chunk\'s cost', () => {
  const ride = new RideAlong({ fixedMs: 60, perTokenMs: 30 });
  for (let i = 0; i < 5; i++) ride.observe(2, 0, stepMs(2, 0, 0));
  // Every tenth step first widens a layout for 90 ms.
  const { ratios, chunks } = readPrompt(ride, 2, (step) => (step % 10 === 9 ? 90 : 0));
  for (const r of ratios.slice(5)) assert.ok(r <= ITL_FACTOR * 1.15, `ratio ${r}`);
  assert.ok(chunks[19] < chunks[18] && chunks[20] >= chunks[19], `chunks ${chunks.slice(17, 22)}`);
});

test('a host that slows down is followed: decode-only steps rescale the estimate', () => {
  const ride = new RideAlong({ fixedMs: 60, perTokenMs: 30 });
  for (let i = 0; i < 10; i++) ride.observe(4, 0, stepMs(4, 0, 0, 1.5));
  const chunk = ride.next(4);
  const ratio = stepMs(4, chunk, 0, 1.5) / stepMs(4, 0, 0, 1.5);
  assert.ok(ratio <= ITL_FACTOR * 1.1, `first chunk ${chunk} gave ${ratio}`);
  assert.ok(ride.next(1) >= 1);
});

test('the prompt chunk when nothing decodes keeps the fixed cost near a tenth of the step, within its bounds', () => {
  // Measured on a 2-core EPYC: rows are dear, so a chunk of 48 already reads the prompt at full speed.
  assert.equal(prefillChunkFor({ fixedMs: 118, perTokenMs: 28.4 }), 48);
  // Cheap rows (a GEMM that likes tall inputs): the chunk grows to its bound.
  assert.equal(prefillChunkFor({ fixedMs: 150, perTokenMs: 5 }), PREFILL_CHUNK_MAX);
  assert.equal(prefillChunkFor({ fixedMs: 5, perTokenMs: 50 }), PREFILL_CHUNK_MIN);
});
