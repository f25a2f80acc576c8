/**
 * Graceful shutdown of the real process: SIGTERM while a stream runs and a request waits.
 * /ready turns 503, new and waiting requests get an OpenAI-shaped 503, the stream completes
 * normally, a hanging connection does not hold the exit, and the process exits 0. When the
 * grace period runs out the stream is cut short but still ends properly, and the exit is 0.
 * Signalling the whole `npm start` process group (node then gets SIGTERM twice: from the group
 * and relayed by npm) drains the same way and `npm start` exits 0; only a signal sent well after
 * the first ends the grace period. (SIGTERM while idle is covered by test/ops/offline.test.ts.)
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { startChildServer, type ChildServer } from '../helpers/child.ts';
import { parseProm, value } from '../helpers/prom.ts';
import { NO_EOS_BIAS, readSse } from '../helpers/server.ts';

const CONTEXT = '8192';
/** src/main.ts: a signal this soon after the first is taken for a relayed copy of it. */
const REPEAT_WINDOW_MS = 2000;
const REPEAT_MSG = 'signal repeated within 2 s of the first: taken as the same request to shut down (relayed by npm or a supervisor)';
let child: ChildServer | undefined;

afterEach(() => {
  child?.kill();
  child = undefined;
});

const MODEL = 'tiny';
const messages = [{ role: 'user', content: 'Keep talking.' }];

interface StreamResult {
  datas: string[];
  error?: unknown;
}

/** Starts a stream and resolves once its first content chunk arrived; `rest` reads it to the end. */
async function startStream(url: string, maxTokens: number): Promise<{ rest: Promise<StreamResult> }> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: MODEL,
      messages,
      max_tokens: maxTokens,
      logit_bias: NO_EOS_BIAS,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  assert.equal(res.status, 200);
  const it = readSse(res);
  const datas: string[] = [];
  for (;;) {
    const next = await it.next();
    assert.ok(!next.done, 'stream ended before any content');
    datas.push(next.value);
    const c = JSON.parse(next.value) as { choices: { delta?: { content?: string } }[] };
    if (c.choices[0]?.delta?.content) break;
  }
  const rest = (async (): Promise<StreamResult> => {
    try {
      for await (const d of it) datas.push(d);
      return { datas };
    } catch (error) {
      return { datas, error };
    }
  })();
  return { rest };
}

function newRequest(url: string): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages, max_tokens: 2 }),
  });
}

async function expect503(res: Response, what: string): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, 503, `${what}: ${text}`);
  const body = JSON.parse(text) as { error: { type: string; code: string; param: null; message: string } };
  assert.equal(body.error.code, 'shutting_down', what);
  assert.equal(body.error.type, 'server_error');
  assert.equal(body.error.param, null);
}

function finalChunks(r: StreamResult): { finish: string; usage: { completion_tokens: number } } {
  assert.equal(r.error, undefined, `stream failed: ${String(r.error)}`);
  assert.equal(r.datas.at(-1), '[DONE]');
  const usageChunk = JSON.parse(r.datas.at(-2) ?? '{}') as { choices: unknown[]; usage: { completion_tokens: number } };
  assert.deepEqual(usageChunk.choices, []);
  const finishChunk = JSON.parse(r.datas.at(-3) ?? '{}') as { choices: { finish_reason: string }[] };
  return { finish: finishChunk.choices[0].finish_reason, usage: usageChunk.usage };
}

describe('graceful shutdown (child process)', () => {
  it('SIGTERM: running stream completes, new and waiting requests get 503, exit 0', async () => {
    // One sequence at a time, so that a second request waits in the engine's line.
    child = await startChildServer(['--context-length', CONTEXT, '--shutdown-grace', '300', '--model-name', MODEL, '--max-running-seqs', '1']);
    const url = child.url;
    const MAX = 1000;
    const stream = await startStream(url, MAX);
    // A second request waits in line behind the stream.
    const waiting = fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages, max_tokens: 2 }),
    });
    for (;;) {
      const m = parseProm(await (await fetch(`${url}/metrics`)).text());
      if (value(m, 'phi4_num_requests_waiting') === 1) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    // A client that connected and never sent a request must not hold the exit.
    const hanging = net.connect(child.port, '127.0.0.1');
    hanging.on('error', () => undefined);
    await new Promise((r) => hanging.once('connect', r));

    assert.ok(child.proc.kill('SIGTERM'));
    await child.waitForLine((l) => l.msg === 'shutting down: refusing new requests, letting running ones finish', 'drain start');
    await expect503(await fetch(`${url}/ready`), '/ready');
    await expect503(await waiting, 'the queued request');
    await expect503(
      await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, messages, max_tokens: 2 }),
      }),
      'a new request',
    );
    await expect503(await fetch(`${url}/v1/models`), 'a new /v1/models');
    assert.equal((await fetch(`${url}/health`)).status, 200, '/health stays up');

    const { finish, usage } = finalChunks(await stream.rest);
    assert.equal(finish, 'length');
    assert.equal(usage.completion_tokens, MAX, 'the stream ran to its end');
    assert.equal(await child.exited, 0);
    const done = child.lines.find((l) => l.msg === 'shutdown complete');
    assert.equal(done?.aborted, 0);
    assert.ok(!child.lines.some((l) => l.msg.startsWith('shutdown grace period over')));
    hanging.destroy();
  });

  it('grace period over: the stream is cut short but ends with finish_reason and [DONE]; exit 0', async () => {
    child = await startChildServer(['--context-length', CONTEXT, '--shutdown-grace', '1', '--model-name', MODEL]);
    const MAX = 8000;
    const stream = await startStream(child.url, MAX);
    assert.ok(child.proc.kill('SIGINT'));
    const { finish, usage } = finalChunks(await stream.rest);
    assert.equal(finish, 'length');
    assert.ok(usage.completion_tokens > 0 && usage.completion_tokens < MAX, `cut short (${usage.completion_tokens})`);
    assert.equal(await child.exited, 0);
    const over = child.lines.find((l) => l.msg === 'shutdown grace period over: aborting running requests');
    assert.equal(over?.inflight, 1);
    const summary = child.lines.find((l) => l.msg === 'request completed' && l.url === '/v1/chat/completions');
    assert.equal(summary?.finishReason, 'shutdown');
    assert.equal(summary?.status, 200);
  });

  it('SIGTERM to the whole `npm start` process group, repeated: the drain holds and npm exits 0', async () => {
    child = await startChildServer(['--context-length', CONTEXT, '--shutdown-grace', '300', '--model-name', MODEL], {
      npmStart: true,
    });
    // Long enough to outlast the signals and the 503 below (~15 s on the tiny model) by far.
    const MAX = 2000;
    const stream = await startStream(child.url, MAX);
    const group = child.proc.pid;
    assert.ok(group !== undefined);
    process.kill(-group, 'SIGTERM');
    await child.waitForLine((l) => l.msg === 'shutting down: refusing new requests, letting running ones finish', 'drain start');
    // npm relays the SIGTERM it got, but a copy that arrives while the first is still pending merges
    // with it; sending the group another one now makes sure the server sees a repeat.
    process.kill(-group, 'SIGTERM');
    const repeat = await child.waitForLine((l) => l.msg === REPEAT_MSG, 'a repeated SIGTERM');
    assert.equal(repeat.signal, 'SIGTERM');
    await expect503(await newRequest(child.url), 'a new request after the repeated SIGTERM');

    const { finish, usage } = finalChunks(await stream.rest);
    assert.equal(finish, 'length');
    assert.equal(usage.completion_tokens, MAX, 'the stream ran to its end');
    assert.equal(await child.exited, 0, 'npm start exit code');
    assert.ok(!child.lines.some((l) => l.msg.startsWith('shutdown grace period over')));
    assert.equal(child.lines.find((l) => l.msg === 'shutdown complete')?.aborted, 0);
  });

  it('a signal sent well after the first ends the grace period', async () => {
    child = await startChildServer(['--context-length', CONTEXT, '--shutdown-grace', '300', '--model-name', MODEL]);
    const MAX = 8000;
    const stream = await startStream(child.url, MAX);
    assert.ok(child.proc.kill('SIGTERM'));
    await child.waitForLine((l) => l.msg === 'shutting down: refusing new requests, letting running ones finish', 'drain start');
    await new Promise((r) => setTimeout(r, REPEAT_WINDOW_MS + 500));
    assert.ok(child.proc.kill('SIGINT'));
    const { finish, usage } = finalChunks(await stream.rest);
    assert.equal(finish, 'length');
    assert.ok(usage.completion_tokens < MAX, `cut short (${usage.completion_tokens})`);
    assert.equal(await child.exited, 0);
    assert.ok(child.lines.some((l) => l.msg === 'second signal: ending the grace period now'));
  });
});
