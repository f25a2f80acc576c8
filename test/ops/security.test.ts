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
import { parseProm, value } from '../helpers/prom.ts';
import { rawRequest } from '../helpers/raw-http.ts';
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

/** What the router maps a target to is what counts, so every spelling it accepts is tried. */
describe('API keys decide on the matched route, whatever the spelling', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(model, { contextLength: CONTEXT, apiKeys: ['sk-r'] });
  });
  after(async () => server?.close());

  const KEY = { authorization: 'Bearer sk-r' };
  const hex = (c: string): string => c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0');

  interface Target {
    method: 'GET' | 'HEAD' | 'POST';
    path: string;
    body?: unknown;
  }
  const PROTECTED: Target[] = [
    { method: 'GET', path: '/v1/models' },
    { method: 'HEAD', path: '/v1/models' },
    { method: 'GET', path: `/v1/models/${MODEL_NAME}` },
    { method: 'POST', path: '/v1/chat/completions', body: { model: MODEL_NAME, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 } },
    { method: 'POST', path: '/v1/completions', body: { model: MODEL_NAME, prompt: 'hi', max_tokens: 1 } },
    { method: 'GET', path: '/metrics' },
    { method: 'HEAD', path: '/metrics' },
  ];

  /** Spellings the router maps to the route itself: served with a key. */
  function routedSpellings(path: string): string[] {
    const out = [path];
    for (let i = 1; i < path.length; i++) {
      if (path[i] === '/') continue;
      const upper = `${path.slice(0, i)}%${hex(path[i])}${path.slice(i + 1)}`;
      const lower = `${path.slice(0, i)}%${hex(path[i]).toLowerCase()}${path.slice(i + 1)}`;
      out.push(...new Set([upper, lower]));
    }
    out.push(path.replace(/[^/]/g, (c) => `%${hex(c)}`));
    out.push(`http://x${path}`, `HTTPS://user@example.com:8443${path}`, `http://127.0.0.1${path}?a=1`);
    out.push(`${path}?`, `${path}?x=1`, `${path}?path=/health&public=true`, `${path}?%2Fhealth#`);
    return out;
  }

  /** Spellings the router does not map to the route (it normalises none of these): 404 with a key. */
  function otherSpellings(path: string): string[] {
    const lastSlash = path.lastIndexOf('/');
    const out = [
      path.toUpperCase(),
      `/${path}`,
      `${path}/`,
      `${path}//`,
      `/.${path}`,
      `/x/..${path}`,
      `${path.slice(0, lastSlash)}/.${path.slice(lastSlash)}`,
      `${path};a=b`,
    ];
    if (lastSlash > 0) {
      const [dir, leaf] = [path.slice(0, lastSlash), path.slice(lastSlash + 1)];
      out.push(`${dir};x/${leaf}`, `${dir}//${leaf}`, `${dir}%2F${leaf}`, `${dir}%2f${leaf}`);
    }
    return out;
  }

  it('every spelling of a protected route needs the key; the routed ones are served with it', async () => {
    const failures: string[] = [];
    for (const t of PROTECTED) {
      const spellings = [...routedSpellings(t.path).map((s) => ({ s, routed: true })), ...otherSpellings(t.path).map((s) => ({ s, routed: false }))];
      for (const { s, routed } of spellings) {
        const bare = await rawRequest(server.url, t.method, s, { body: t.body });
        if (bare.status !== 401) failures.push(`${t.method} ${s} without key: ${bare.status} ${bare.body.slice(0, 100)}`);
        else if (t.method !== 'HEAD' && JSON.parse(bare.body).error.code !== 'invalid_api_key') failures.push(`${t.method} ${s}: ${bare.body}`);
        const keyed = await rawRequest(server.url, t.method, s, { body: t.body, headers: KEY });
        const expected = routed ? 200 : 404;
        if (keyed.status !== expected) failures.push(`${t.method} ${s} with key: ${keyed.status}, expected ${expected}`);
      }
    }
    assert.deepEqual(failures, []);
  });

  it('/health and /ready are open under every spelling; unknown paths and methods need the key and reveal nothing', async () => {
    for (const target of ['/health', '/%68ealth', '/%68%65%61%6C%74%68', 'http://x/ready', '/r%65ady?x=1']) {
      const res = await rawRequest(server.url, 'GET', target);
      assert.equal(res.status, 200, `${target}: ${res.body}`);
    }
    const unknown: [string, string][] = [
      ['GET', '/nope'],
      ['GET', '/v1/nope'],
      ['GET', '/health/'],
      ['GET', '/HEALTH'],
      ['GET', '//health'],
      ['DELETE', '/health'],
      ['POST', '/ready'],
      ['OPTIONS', '/v1/models'],
    ];
    for (const [method, target] of unknown) {
      const bare = await rawRequest(server.url, method, target);
      assert.equal(bare.status, 401, `${method} ${target}`);
      assert.equal(JSON.parse(bare.body).error.code, 'invalid_api_key');
      assert.ok(!bare.body.includes(target.slice(1) || '/'), `the 401 does not echo the path: ${bare.body}`);
      const keyed = await rawRequest(server.url, method, target, { headers: KEY });
      assert.equal(keyed.status, 404, `${method} ${target} with key`);
      assert.equal(JSON.parse(keyed.body).error.code, 'not_found');
    }
  });

  it('--metrics-public opens /metrics under every spelling, and nothing else', async () => {
    const open = await startServer(model, { contextLength: CONTEXT, apiKeys: ['sk-r'], metricsPublic: true });
    try {
      for (const target of routedSpellings('/metrics')) {
        assert.equal((await rawRequest(open.url, 'GET', target)).status, 200, target);
      }
      for (const target of ['/v1/%6dodels', 'http://x/v1/models', '/metrics/']) {
        assert.equal((await rawRequest(open.url, 'GET', target)).status, 401, target);
      }
    } finally {
      await open.close();
    }
  });
});

describe('the readiness guard and per-endpoint metrics decide on the matched route', () => {
  it('a draining server refuses every spelling of a /v1 route before reading the body', async () => {
    const server = await startServer(model, { contextLength: CONTEXT });
    try {
      server.app.models.drain();
      for (const target of ['/v1/chat/completions', '/%761/chat/completions', 'http://x/v1/completions', '/v1/c%6fmpletions?x']) {
        // A malformed body would be a 400 if the body were read; the guard answers first.
        const res = await rawRequest(server.url, 'POST', target, { body: '{"model":' });
        assert.equal(res.status, 503, `${target}: ${res.body}`);
        assert.equal(JSON.parse(res.body).error.code, 'shutting_down');
      }
      assert.equal((await rawRequest(server.url, 'GET', '/%6detrics')).status, 200, '/metrics is served while draining');
    } finally {
      await server.close();
    }
  });

  it('requests count under the route they reached, however it was spelled', async () => {
    const server = await startServer(model, { contextLength: CONTEXT });
    try {
      const chat = { model: MODEL_NAME, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 };
      assert.equal((await rawRequest(server.url, 'POST', '/%761/chat/completions', { body: chat })).status, 200);
      assert.equal((await rawRequest(server.url, 'POST', 'http://x/v1/completions', { body: { model: MODEL_NAME, prompt: 'hi', max_tokens: 1 } })).status, 200);
      assert.equal((await rawRequest(server.url, 'GET', '/v1/%6dodels')).status, 200);
      assert.equal((await rawRequest(server.url, 'GET', '/nope')).status, 404);
      await until(() => server.app.inflight.count === 0, 'requests accounted');
      const scraped = parseProm((await rawRequest(server.url, 'GET', '/metrics')).body);
      const requests = (endpoint: string, status: string): number => value(scraped, 'phi4_requests_total', { endpoint, status });
      assert.equal(requests('/v1/chat/completions', '200'), 1);
      assert.equal(requests('/v1/completions', '200'), 1);
      assert.equal(requests('/v1/models', '200'), 1);
      assert.equal(requests('unmatched', '404'), 1);
    } finally {
      await server.close();
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
