/** The prompt chunk beside decoding sequences follows the steps it produces toward ITL_FACTOR x a decode-only step. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ITL_FACTOR, RideAlong } from '../../src/engine/step-cost.ts';

/** A machine whose steps cost 60 + 30/token ms, prompt tokens 30 + 0.02 x past ms each (attention over the past). */
function stepMs(decoding: number, prompt: number, past: number, slower = 1): number {
  return slower * (60 + 30 * decoding + prompt * (30 + 0.02 * past));
}

test('the chunk settles where a step costs ITL_FACTOR x the decode-only step, and shrinks as the prompt past grows', () => {
  const ride = new RideAlong({ fixedMs: 60, perTokenMs: 30 });
  const decoding = 2;
  for (let i = 0; i < 5; i++) ride.observe(decoding, 0, stepMs(decoding, 0, 0));
  let past = 0;
  const ratios: number[] = [];
  const chunks: number[] = [];
  while (past < 4000) {
    const chunk = ride.next(decoding);
    const ms = stepMs(decoding, chunk, past);
    ride.observe(decoding, chunk, ms);
    ratios.push(ms / stepMs(decoding, 0, 0));
    chunks.push(chunk);
    past += chunk;
  }
  // Past the first few steps every step stays within a token's worth of the aim, never far above it.
  for (const r of ratios.slice(5)) assert.ok(r <= ITL_FACTOR * 1.15 && r >= ITL_FACTOR * 0.7, `ratio ${r}`);
  assert.ok(chunks.at(-1)! < chunks[5], `chunks ${chunks[5]} -> ${chunks.at(-1)}`);
});

test('a host that slows down is followed: decode-only steps rescale the estimate', () => {
  const ride = new RideAlong({ fixedMs: 60, perTokenMs: 30 });
  for (let i = 0; i < 10; i++) ride.observe(4, 0, stepMs(4, 0, 0, 1.5));
  const chunk = ride.next(4);
  const ratio = stepMs(4, chunk, 0, 1.5) / stepMs(4, 0, 0, 1.5);
  assert.ok(ratio <= ITL_FACTOR * 1.1, `first chunk ${chunk} gave ${ratio}`);
  assert.ok(ride.next(1) >= 1);
});
