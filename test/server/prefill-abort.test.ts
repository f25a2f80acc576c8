/**
 * A prompt being read can be interrupted: a request timeout, a client that leaves and the end of
 * the shutdown grace period all land within a prompt chunk, not after the whole prompt. The prompt
 * is so long (120,000 tokens read 8 a step) that reading all of it would take thousands of steps;
 * assertions compare the tokens the engine ran with the prompt's length, never wall-clock speed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LoadedModel } from '../../src/app.ts';
import { startChildServer, type ChildServer } from '../helpers/child.ts';
import { parseProm, value } from '../helpers/prom.ts';
import { MODEL_NAME, loadTestModel, postJson, startServer, until } from '../helpers/server.ts';

const CONTEXT = 131072;
const PROMPT = Array.from({ length: 120_000 }, (_, i) => 1000 + ((i * 7919) % 150_000));
const CHUNK = 8;
const body = (stream: boolean) => ({ model: MODEL_NAME, prompt: PROMPT, max_tokens: 4, stream });

let model: LoadedModel;
/** Prompt tokens the engine has run through the model since load. */
let ranTokens = 0;

before(async () => {
  model = await loadTestModel({ contextLength: CONTEXT, prefillChunk: CHUNK, prefixCache: false });
  model.engine.onStep((step) => (ranTokens += step.tokens));
});

after(async () => {
  await model?.engine.close();
});

describe('reading a long prompt', () => {
  it('a request timeout answers 408 and stops the prompt where it is', async () => {
    const server = await startServer(model, { contextLength: CONTEXT, requestTimeoutSec: 1 });
    try {
      const before = ranTokens;
      const res = await postJson(`${server.url}/v1/completions`, body(false));
      assert.equal(res.status, 408);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'request_timeout');
      await until(() => model.engine.stats().running === 0, 'engine idle');
      const ran = ranTokens - before;
      assert.ok(ran > 0 && ran < PROMPT.length / 2, `ran ${ran} of ${PROMPT.length} prompt tokens`);
    } finally {
      await server.close();
    }
  });

  it('a client that leaves mid-prompt stops it at the next step', async () => {
    const server = await startServer(model, { contextLength: CONTEXT });
    try {
      const before = ranTokens;
      const ac = new AbortController();
      const pending = fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body(true)),
        signal: ac.signal,
      }).catch((err: unknown) => err);
      await until(() => ranTokens - before >= 10 * CHUNK, 'prompt being read');
      ac.abort();
      assert.ok((await pending) instanceof Error);
      await until(() => model.engine.stats().running === 0, 'engine idle');
      const ran = ranTokens - before;
      assert.ok(ran < PROMPT.length / 2, `ran ${ran} of ${PROMPT.length} prompt tokens`);
    } finally {
      await server.close();
    }
  });
});

describe('shutdown while a long prompt is read (child process)', () => {
  let child: ChildServer | undefined;
  after(() => child?.kill());

  it('the end of the grace period stops the prompt: 503, exit 0, far sooner than the rest of the prompt would take', async () => {
    child = await startChildServer(['--context-length', String(CONTEXT), '--shutdown-grace', '1', '--prefill-chunk', String(CHUNK), '--model-name', MODEL_NAME]);
    const url = child.url;
    const response = postJson(`${url}/v1/completions`, body(false));
    const ran = async () => value(parseProm(await (await fetch(`${url}/metrics`)).text()), 'phi4_iteration_tokens_total_sum');
    // Measure how fast the prompt is read on this machine, now.
    while ((await ran()) < 20 * CHUNK) await new Promise((r) => setTimeout(r, 20));
    const t0 = performance.now();
    const ran0 = await ran();
    await new Promise((r) => setTimeout(r, 500));
    const rate = ((await ran()) - ran0) / ((performance.now() - t0) / 1000);
    const remainingS = (PROMPT.length - (await ran())) / rate;

    const signalled = performance.now();
    assert.ok(child.proc.kill('SIGTERM'));
    const res = await response;
    assert.equal(res.status, 503);
    assert.equal(await child.exited, 0);
    const tookS = (performance.now() - signalled) / 1000;
    // The grace period (1 s) plus shutting down, not the rest of the prompt.
    assert.ok(tookS < remainingS / 2, `exit after ${tookS.toFixed(1)} s; the rest of the prompt needed ~${remainingS.toFixed(0)} s`);
    const done = child.lines.find((l) => l.msg === 'shutdown complete');
    assert.equal(done?.aborted, 1);
  });
});
