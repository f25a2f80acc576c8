/**
 * KV-cached steps must give the logits of a full recomputation by the export's own graph: for a
 * single sequence in either graph, and for sequences batched together in the batched graph
 * (decode slots side by side, and a prompt chunk riding along with them). tiny-exact, tiny-alt and
 * tiny-qwen (the second family: QKV bias, full rotary with theta 1e6) use accuracy_level 0 (fp32
 * MatMulNBits) so the comparison can be tight; tiny uses the CPU export's accuracy_level 4 (int8
 * activations), where only the argmax must agree.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KvUpdate } from '../../src/engine/types.ts';
import { FullRecompute, Stepper, argmax, maxAbsDiff } from '../helpers/decoder.ts';
import { FIXTURES } from '../setup/model-paths.ts';

type Fixture = keyof typeof FIXTURES;

/** A chat-shaped prompt of ordinary ids between the family's turn markers (<|system|>... for Phi-4, <|im_start|>... for Qwen2.5). */
const PHI_PROMPT = [200022, 1234, 5678, 91011, 1213, 200020, 200021, 42, 4242, 200019];
const QWEN_PROMPT = [151644, 8948, 198, 1234, 5678, 91011, 151645, 198, 151644, 872, 198, 42, 4242, 151645, 198, 151644, 77091, 198];
const promptOf = (fixture: Fixture) => (fixture === 'tiny-qwen' ? QWEN_PROMPT : PHI_PROMPT);

/** Prefill the fixture's prompt, then 20 decode steps, each checked against a full pass of the export. */
async function compareCachedWithFull(fixture: Fixture, growth: number, kvUpdate: KvUpdate): Promise<{ diffs: number[]; agree: boolean[] }> {
  const PROMPT = promptOf(fixture);
  const modelDir = FIXTURES[fixture];
  const stepper = await Stepper.open({ modelDir, threads: 2, kvUpdate }, growth);
  const reference = await FullRecompute.open(modelDir);
  try {
    assert.equal(stepper.decoder.description.kvUpdate, kvUpdate);
    const block = stepper.block();
    const tokens = [...PROMPT];
    let cached = await stepper.prefill(block, PROMPT, 4);
    const result = { diffs: [] as number[], agree: [] as boolean[] };
    // Alternate greedy picks with fixed tokens so the sequence does not collapse into one repeated id.
    for (let step = 0; step < 20; step++) {
      const next = step % 3 === 2 ? 1000 + step * 7919 : argmax(cached);
      tokens.push(next);
      [cached] = await stepper.decode(block, [next]);
      const full = await reference.logits(tokens);
      result.diffs.push(maxAbsDiff(cached, full));
      result.agree.push(argmax(cached) === argmax(full));
    }
    assert.equal(block.lengths[0], PROMPT.length + 20);
    return result;
  } finally {
    await stepper.release();
    await reference.release();
  }
}

for (const kvUpdate of ['batched', 'in-place'] as const) {
  for (const fixture of ['tiny-exact', 'tiny-alt', 'tiny-qwen'] as const) {
    test(`${fixture}, ${kvUpdate}: cached logits equal the export's full recomputation within 1e-4 at every step`, async () => {
      // A growth chunk of 8 makes the layout widen (rows moving in place) several times.
      const { diffs } = await compareCachedWithFull(fixture, 8, kvUpdate);
      assert.equal(diffs.length, 20);
      for (const [step, d] of diffs.entries()) assert.ok(d <= 1e-4, `step ${step}: max abs diff ${d}`);
    });
  }
  test(`tiny (accuracy_level 4), ${kvUpdate}: cached argmax equals full recomputation at every step`, async () => {
    const { agree } = await compareCachedWithFull('tiny', 256, kvUpdate);
    assert.deepEqual(agree, new Array(20).fill(true));
  });
}

const prompts = [
  Array.from({ length: 13 }, (_, i) => 700 + i * 31),
  Array.from({ length: 40 }, (_, i) => 9000 + i * 17),
  Array.from({ length: 3 }, (_, i) => 50_000 + i),
];

for (const fixture of ['tiny-exact', 'tiny-alt', 'tiny-qwen'] as const) {
  test(`${fixture}, batched: sequences decoded side by side in one block get the logits they get alone`, async () => {
    const stepper = await Stepper.open({ modelDir: FIXTURES[fixture], threads: 2 }, 8);
    try {
      // Alone: each in its own block.
      const alone: Float32Array[][] = [];
      for (const prompt of prompts) {
        const block = stepper.block();
        const out = [await stepper.prefill(block, prompt, 16)];
        for (let i = 0; i < 6; i++) out.push((await stepper.decode(block, [2000 + i]))[0]);
        alone.push(out);
      }
      // Together: prefilled apart, then copied into the slots of one block and stepped together.
      const batch = stepper.block();
      const first: Float32Array[] = [];
      batch.arrange(prompts.length, 64);
      for (const [slot, prompt] of prompts.entries()) {
        const own = stepper.block();
        first.push(await stepper.prefill(own, prompt, 16));
        batch.copyFrom(own, 0, slot, 0, prompt.length);
        batch.lengths[slot] = prompt.length;
      }
      const together: Float32Array[][] = first.map((l) => [l]);
      for (let i = 0; i < 6; i++) {
        const rows = await stepper.decode(batch, prompts.map(() => 2000 + i));
        rows.forEach((row, s) => together[s].push(row));
      }
      for (const [s, steps] of together.entries()) {
        for (const [i, logits] of steps.entries()) {
          const d = maxAbsDiff(logits, alone[s][i]);
          assert.ok(d <= 1e-4, `sequence ${s}, step ${i}: max abs diff ${d}`);
        }
      }
    } finally {
      await stepper.release();
    }
  });
}

for (const fixture of ['tiny-exact', 'tiny-qwen'] as const) {
  test(`${fixture}, batched: a prompt chunk riding along with decode slots gets the logits of a lone prefill, and so do the slots`, async () => {
    const stepper = await Stepper.open({ modelDir: FIXTURES[fixture], threads: 2 }, 16);
    try {
      const [a, b] = prompts;
      const lone = stepper.block();
      const loneLogits = await stepper.prefill(lone, b, 40);
      const decodeAlone = stepper.block();
      await stepper.prefill(decodeAlone, a, 16);
      const [slotAlone] = await stepper.decode(decodeAlone, [777]);

      const batch = stepper.block();
      await stepper.prefill(batch, a, 16);
      const prefilling = stepper.block();
      prefilling.arrange(1, 48);
      const [slotMixed, chunkMixed] = await stepper.decoder.runner.run({ decode: { block: batch, tokens: [777] }, prefill: { block: prefilling, tokens: b, logits: true } });
      // The step's row count changes the kernels' summation order; tiny-qwen (14 query heads,
      // biases) lands at ~1.1e-5 there, the bound every other comparison in this file uses.
      const bound = fixture === 'tiny-exact' ? 1e-5 : 1e-4;
      assert.ok(maxAbsDiff(chunkMixed, loneLogits) <= bound, `prefill: ${maxAbsDiff(chunkMixed, loneLogits)}`);
      assert.ok(maxAbsDiff(slotMixed, slotAlone) <= bound, `decode: ${maxAbsDiff(slotMixed, slotAlone)}`);
    } finally {
      await stepper.release();
    }
  });
}

for (const fixture of ['tiny-exact', 'tiny-qwen'] as const) {
  test(`${fixture}: chunked prefill gives the logits of a single-pass prefill`, async () => {
    const stepper = await Stepper.open({ modelDir: FIXTURES[fixture], threads: 1 }, 8);
    try {
      const prompt = Array.from({ length: 45 }, (_, i) => 300 + i * 11);
      const single = await stepper.prefill(stepper.block(), prompt, 4096);
      const block = stepper.block();
      const chunked = await stepper.prefill(block, prompt, 16);
      assert.equal(block.lengths[0], 45);
      assert.ok(maxAbsDiff(single, chunked) <= 1e-4, `max abs diff ${maxAbsDiff(single, chunked)}`);
    } finally {
      await stepper.release();
    }
  });
}
