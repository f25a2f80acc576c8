/** GET /docs (Swagger UI) and GET /openapi.json on a real server with API keys set. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LoadedModel } from '../../src/app.ts';
import { loadTestModel, startServer, type TestServer } from '../helpers/server.ts';

let model: LoadedModel;
let server: TestServer;

before(async () => {
  model = await loadTestModel();
  server = await startServer(model, { apiKeys: ['sk-docs'] });
});
after(async () => {
  await server?.close();
  await model?.engine.close();
});

interface OpenApi {
  openapi: string;
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown; examples?: unknown }> }; responses: Record<string, unknown> }>>;
}

describe('API docs', () => {
  it('/openapi.json lists every API route with request and response schemas, without a key', async () => {
    const res = await fetch(`${server.url}/openapi.json`);
    assert.equal(res.status, 200);
    const doc = (await res.json()) as OpenApi;
    assert.match(doc.openapi, /^3\./);
    const expected: [string, string][] = [
      ['/v1/chat/completions', 'post'], ['/v1/completions', 'post'], ['/v1/messages', 'post'], ['/v1/messages/count_tokens', 'post'],
      ['/v1/responses', 'post'], ['/v1/responses/{id}', 'get'], ['/v1/responses/{id}', 'delete'], ['/v1/models', 'get'],
      ['/health', 'get'], ['/ready', 'get'], ['/metrics', 'get'], ['/admin/models/{*}', 'post'],
    ];
    for (const [path, method] of expected) {
      const op = doc.paths[path]?.[method];
      assert.ok(op, `${method} ${path} is documented`);
      assert.ok(op.responses['200'], `${method} ${path} has a 200 response`);
      if (method === 'post' && !path.startsWith('/admin/')) assert.ok(op.requestBody?.content['application/json'].schema, `${path} has a request schema`);
    }
    const chat = doc.paths['/v1/chat/completions'].post;
    assert.ok(JSON.stringify(chat.requestBody).includes('tool_choice'), 'the request schema is the route\'s own');
    assert.ok(JSON.stringify(chat.requestBody).includes('Name three prime numbers'), 'with examples');
    // The docs' own routes and the playground's assets are not API routes.
    assert.ok(!Object.keys(doc.paths).some((p) => p.startsWith('/docs')));
  });

  it('/docs serves Swagger UI from this host only, without a key; API routes still need one', async () => {
    const page = await fetch(`${server.url}/docs`, { redirect: 'follow' });
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /swagger/i);
    for (const m of html.matchAll(/(?:src|href)="([^"]+)"/g)) assert.ok(!/^(https?:)?\/\//.test(m[1]), `${m[1]} is local`);
    const init = await fetch(`${server.url}/docs/static/swagger-initializer.js`);
    assert.equal(init.status, 200);
    assert.match(await init.text(), /openapi|json/);
    assert.equal((await fetch(`${server.url}/v1/models`)).status, 401);
  });
});
