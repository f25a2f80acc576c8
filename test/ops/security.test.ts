/**
 * API keys on every /v1 route and on /metrics (unless --metrics-public), /health and /ready
 * open; CORS off by default and per-origin when configured; idle and never-finished connections
 * closed by the server while a long stream outlives every connection timeout.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LoadedModel } from '../../src/app.ts';
import { parseConfig } from '../../src/config.ts';
import {
  MODEL_NAME,
  NO_EOS_BIAS,
  loadTestModel,
  readSse,
  startServer,
  until,
  type TestServer,
} from '../helpers/server.ts';

const CONTEXT = 8192;
let model: LoadedModel;

before(async () => {
  model = await loadTestModel({ contextLength: CONTEXT });
});

after(async () => {
  await model?.engine.close();
});

interface Route {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  /** Status with a valid key. */
  ok: number;
}

const ROUTES: Route[] = [
  { method: 'GET', path: '/v1/models', ok: 200 },
  { method: 'GET', path: `/v1/models/${MODEL_NAME}`, ok: 200 },
  { method: 'POST', path: '/v1/chat/completions', body: { model: MODEL_NAME, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }, ok: 200 },
  {
    method: 'POST',
    path: '/v1/chat/completions',
    body: { model: MODEL_NAME, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, stream: true },
    ok: 200,
  },
  { method: 'POST', path: '/v1/completions', body: { model: MODEL_NAME, prompt: 'hi', max_tokens: 2 }, ok: 200 },
  // Unknown /v1 paths are refused before routing reveals anything.
  { method: 'GET', path: '/v1/nope', ok: 404 },
];

function call(url: string, r: Route, authorization?: string, extra: Record<string, string> = {}): Promise<Response> {
  const headers: Record<string, string> = { ...extra };
  if (authorization !== undefined) headers.authorization = authorization;
  if (r.body !== undefined) headers['content-type'] = 'application/json';
  return fetch(url + r.path, { method: r.method, headers, body: r.body === undefined ? undefined : JSON.stringify(r.body) });
}

async function expect401(res: Response, what: string): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, 401, `${what}: ${text}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(JSON.parse(text), {
    error: {
      message: 'Incorrect or missing API key. Send it as "Authorization: Bearer KEY".',
      type: 'invalid_request_error',
      param: null,
      code: 'invalid_api_key',
    },
  });
}

describe('API keys', () => {
  let keyFile: string;
  let server: TestServer;
  before(async () => {
    keyFile = path.join(mkdtempSync(path.join(tmpdir(), 'keys-')), 'keys.txt');
    writeFileSync(keyFile, '# operators\nsk-file-one\n\n   # rotated 2026-01\n  sk-file-two  \n');
    const parsed = parseConfig(['--api-key', 'sk-flag', '--api-key-file', keyFile], {});
    assert.equal(parsed.kind, 'config');
    const apiKeys = parsed.kind === 'config' ? parsed.config.apiKeys : [];
    assert.deepEqual(apiKeys, ['sk-flag', 'sk-file-one', 'sk-file-two']);
    server = await startServer(model, { contextLength: CONTEXT, apiKeys });
  });
  after(async () => server?.close());

  it('every /v1 route: missing, wrong or malformed key -> 401; any configured key -> served', async () => {
    for (const r of ROUTES) {
      const what = `${r.method} ${r.path}`;
      await expect401(await call(server.url, r), `${what} without key`);
      await expect401(await call(server.url, r, 'Bearer sk-wrong'), `${what} wrong key`);
      await expect401(await call(server.url, r, 'Bearer sk-file-one-and-more'), `${what} key with a suffix`);
      await expect401(await call(server.url, r, 'Bearer sk-file'), `${what} key prefix`);
      await expect401(await call(server.url, r, 'Basic sk-flag'), `${what} wrong scheme`);
      await expect401(await call(server.url, r, 'sk-flag'), `${what} no scheme`);
      await expect401(await call(server.url, r, 'Bearer # operators'), `${what} comment line`);
      for (const key of ['sk-flag', 'sk-file-one', 'sk-file-two']) {
        const res = await call(server.url, r, `Bearer ${key}`);
        assert.equal(res.status, r.ok, `${what} with ${key}: ${await res.clone().text()}`);
        await res.arrayBuffer();
      }
    }
    // The scheme is case-insensitive, as in RFC 6750.
    assert.equal((await call(server.url, ROUTES[0], 'bearer sk-flag')).status, 200);
  });

  it('/metrics needs a key too; /health and /ready do not', async () => {
    const metrics: Route = { method: 'GET', path: '/metrics', ok: 200 };
    await expect401(await call(server.url, metrics), '/metrics without key');
    await expect401(await call(server.url, metrics, 'Bearer nope'), '/metrics wrong key');
    const ok = await call(server.url, metrics, 'Bearer sk-file-two');
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /phi4_requests_total/);
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
    assert.equal((await fetch(`${server.url}/ready`)).status, 200);
  });

  it('--metrics-public opens /metrics only', async () => {
    const open = await startServer(model, { contextLength: CONTEXT, apiKeys: ['sk-x'], metricsPublic: true });
    try {
      assert.equal((await fetch(`${open.url}/metrics`)).status, 200);
      await expect401(await fetch(`${open.url}/v1/models`), '/v1/models');
    } finally {
      await open.close();
    }
  });

  it('without keys everything is open', async () => {
    const open = await startServer(model, { contextLength: CONTEXT });
    try {
      for (const r of ROUTES) {
        const res = await call(open.url, r);
        assert.equal(res.status, r.ok);
        await res.arrayBuffer();
      }
      assert.equal((await fetch(`${open.url}/metrics`)).status, 200);
    } finally {
      await open.close();
    }
  });
});

describe('CORS', () => {
  const preflight = (url: string, origin: string): Promise<Response> =>
    fetch(`${url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });

  it('off by default: no CORS headers, preflight not answered', async () => {
    const server = await startServer(model, { contextLength: CONTEXT });
    try {
      const res = await fetch(`${server.url}/v1/models`, { headers: { origin: 'https://evil.example' } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('access-control-allow-origin'), null);
      const pre = await preflight(server.url, 'https://evil.example');
      assert.equal(pre.status, 404);
      assert.equal(pre.headers.get('access-control-allow-origin'), null);
    } finally {
      await server.close();
    }
  });

  it('--cors-origin allows the listed origins only; preflight needs no key; 401s are readable', async () => {
    const server = await startServer(model, { contextLength: CONTEXT, corsOrigins: ['https://app.example'], apiKeys: ['sk-c'] });
    try {
      const pre = await preflight(server.url, 'https://app.example');
      assert.equal(pre.status, 204);
      assert.equal(pre.headers.get('access-control-allow-origin'), 'https://app.example');
      assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/);
      assert.match(pre.headers.get('access-control-allow-headers') ?? '', /authorization/);

      const other = await preflight(server.url, 'https://evil.example');
      assert.notEqual(other.headers.get('access-control-allow-origin'), 'https://evil.example');

      const denied = await fetch(`${server.url}/v1/models`, { headers: { origin: 'https://app.example' } });
      assert.equal(denied.status, 401);
      assert.equal(denied.headers.get('access-control-allow-origin'), 'https://app.example');
      const ok = await fetch(`${server.url}/v1/models`, { headers: { origin: 'https://app.example', authorization: 'Bearer sk-c' } });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get('access-control-allow-origin'), 'https://app.example');
      assert.match(ok.headers.get('access-control-expose-headers') ?? '', /x-request-id/);
    } finally {
      await server.close();
    }
  });

  it("'*' allows any origin", async () => {
    const server = await startServer(model, { contextLength: CONTEXT, corsOrigins: ['*'] });
    try {
      const res = await fetch(`${server.url}/v1/models`, { headers: { origin: 'https://any.example' } });
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
    } finally {
      await server.close();
    }
  });
});

/** A raw TCP connection that records what it receives and when the server closes it. */
function rawSocket(url: string): Promise<{ socket: net.Socket; received: () => string; closed: Promise<void> }> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    let data = '';
    const socket = net.connect(Number(port), '127.0.0.1');
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('data', (d) => (data += d.toString('latin1')));
    socket.once('error', () => undefined);
    socket.once('connect', () => resolve({ socket, received: () => data, closed }));
    socket.once('error', reject);
  });
}

async function closedWithin(closed: Promise<void>, capMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    closed.then(() => true),
    new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), capMs);
    }),
  ]);
  clearTimeout(timer);
  return result;
}

describe('connection timeouts', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(model, { contextLength: CONTEXT, keepAliveTimeoutSec: 1, headersTimeoutSec: 1, readTimeoutSec: 1 });
  });
  after(async () => server?.close());

  it('an idle keep-alive connection is closed after --keep-alive-timeout', async () => {
    const c = await rawSocket(server.url);
    c.socket.write('GET /health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
    await until(() => c.received().includes('{"status":"ok"}'), 'response');
    assert.match(c.received(), /keep-alive/i);
    assert.ok(await closedWithin(c.closed, 20_000), 'server closed the idle connection');
  });

  it('a connection that never sends a complete request is closed (408)', async () => {
    const silent = await rawSocket(server.url);
    const partial = await rawSocket(server.url);
    partial.socket.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n');
    assert.ok(await closedWithin(silent.closed, 20_000), 'silent connection closed');
    assert.ok(await closedWithin(partial.closed, 20_000), 'partial-headers connection closed');
    assert.match(partial.received(), /^HTTP\/1\.1 408/);
  });

  it('a long stream outlives every connection timeout', async () => {
    const ac = new AbortController();
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL_NAME, messages: [{ role: 'user', content: 'go' }], max_tokens: 8000, logit_bias: NO_EOS_BIAS, stream: true }),
      signal: ac.signal,
    });
    assert.equal(res.status, 200);
    let chunks = 0;
    let failed: unknown;
    const reading = (async () => {
      try {
        for await (const d of readSse(res)) {
          if (d === '[DONE]') break;
          chunks++;
        }
      } catch (err) {
        failed = err;
      }
    })();
    // Past keep-alive, headers and read timeouts (1 s each) plus Node's check interval.
    await new Promise((r) => setTimeout(r, 3000));
    const before = chunks;
    await until(() => chunks > before, 'the stream still flows');
    assert.equal(failed, undefined);
    ac.abort();
    await reading;
    await until(() => server.ctx.admission.inflight === 0 && model.engine.stats().running === 0, 'idle');
  });
});
