/**
 * Errors answered before any route runs (the router's, and Node's HTTP parser's) come in the same
 * OpenAI envelope as every other error, with an x-request-id, over hand-written requests on raw
 * sockets (a client library would refuse to send most of them).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { LoadedModel } from '../../src/app.ts';
import { exchange, parseResponse, rawRequest, type RawResponse } from '../helpers/raw-http.ts';
import { MODEL_NAME, NO_EOS_BIAS, loadTestModel, startServer, type TestServer } from '../helpers/server.ts';

let model: LoadedModel;
let server: TestServer;

before(async () => {
  model = await loadTestModel();
  // Short client timeouts for the 408s; keys set, to show these errors need none and reveal nothing.
  server = await startServer(model, { apiKeys: ['sk-e'], headersTimeoutSec: 1, readTimeoutSec: 1 });
});

after(async () => {
  await server?.close();
  await model?.engine.close();
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function expectEnvelope(res: RawResponse, status: number, code: string): void {
  assert.equal(res.status, status, res.raw.slice(0, 300));
  assert.match(res.headers['content-type'] ?? '', /^application\/json/);
  const body = JSON.parse(res.body) as { error: Record<string, unknown> };
  assert.deepEqual(Object.keys(body), ['error']);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(body.error.code, code);
  assert.equal(body.error.param, null);
  assert.ok(typeof body.error.message === 'string' && body.error.message.length > 0);
}

/** Sends raw bytes and parses the one response the server writes before closing. */
async function send(bytes: string): Promise<RawResponse> {
  return parseResponse(await exchange(server.url, Buffer.from(bytes, 'latin1')));
}

describe('errors before routing', () => {
  it('a URL the router cannot decode: 400 invalid_url, with the request id', async () => {
    for (const target of ['/v1/models/%ff', '/v1/chat/completions%zz', '/%e0%a4']) {
      const res = await rawRequest(server.url, 'GET', target);
      expectEnvelope(res, 400, 'invalid_url');
      assert.match(res.headers['x-request-id'] ?? '', UUID, target);
    }
    const tagged = await rawRequest(server.url, 'GET', '/v1/models/%ff', { headers: { 'x-request-id': 'req-bad-url' } });
    assert.equal(tagged.headers['x-request-id'], 'req-bad-url');
  });
});

describe("errors from Node's HTTP parser", () => {
  it('a 20 KB request line: 431 headers_too_large', async () => {
    const res = await send(`GET /v1/models?q=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expectEnvelope(res, 431, 'headers_too_large');
    assert.match(res.headers['x-request-id'] ?? '', UUID);
    assert.equal(res.headers.connection, 'close');
  });

  it('malformed requests: 400 malformed_request', async () => {
    const malformed = [
      'GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: a\0b\r\n\r\n', // NUL in a header value
      'GET /health HTTP/1.1\r\nHost: x\nX-Y: z\r\n\r\n', // bare LF
      'GET /health HTTP/1.1\r\nHo st: x\r\n\r\n', // space in a header name
      'G(T /health HTTP/1.1\r\nHost: x\r\n\r\n', // not a method
      'POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', // bad chunk size
    ];
    for (const bytes of malformed) {
      const res = await send(bytes);
      expectEnvelope(res, 400, 'malformed_request');
      assert.match(res.headers['x-request-id'] ?? '', UUID, JSON.stringify(bytes));
    }
  });

  it('a client that does not finish its headers or its body in time: 408 client_timeout', async () => {
    const partialHeaders = send('POST /v1/completions HTTP/1.1\r\nHost: x\r\n');
    const partialBody = send('POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-e\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model"');
    for (const res of await Promise.all([partialHeaders, partialBody])) {
      expectEnvelope(res, 408, 'client_timeout');
      assert.match(res.headers['x-request-id'] ?? '', UUID);
    }
  });

  it('a parse error on a connection whose response has started closes it without writing into that response', async () => {
    const open = await startServer(model);
    try {
      const body = JSON.stringify({ model: MODEL_NAME, prompt: 'hi', max_tokens: 200, stream: true, logit_bias: NO_EOS_BIAS });
      const { port } = new URL(open.url);
      const received = await new Promise<string>((resolve) => {
        let data = '';
        let injected = false;
        const socket = net.connect(Number(port), '127.0.0.1', () =>
          socket.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`),
        );
        socket.on('data', (d) => {
          data += d.toString('latin1');
          if (!injected && data.includes('data: ')) {
            injected = true;
            socket.write('GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: a\0b\r\n\r\n');
          }
        });
        socket.on('error', () => undefined);
        socket.once('close', () => resolve(data));
      });
      assert.match(received, /^HTTP\/1\.1 200 /);
      assert.equal(received.match(/HTTP\/1\.1 /g)?.length, 1, 'no second status line inside the stream');
      assert.ok(!received.includes('malformed_request'));
    } finally {
      await open.close();
    }
  });
});
