/**
 * GET / (the web playground) over HTTP: the page and its assets, their security headers, no
 * reference to anything outside the host, public with API keys set, and off with --no-ui.
 * The page's behaviour in a real browser: test/browser/playground.browser.ts (npm run test:browser).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LoadedModel } from '../../src/app.ts';
import { parseConfig } from '../../src/config.ts';
import { CONTENT_SECURITY_POLICY } from '../../src/server/playground.ts';
import { loadTestModel, startServer, type TestServer } from '../helpers/server.ts';

const ASSETS: Record<string, RegExp> = {
  '/': /^text\/html; charset=utf-8$/,
  '/playground/app.js': /^text\/javascript; charset=utf-8$/,
  '/playground/markdown.js': /^text\/javascript; charset=utf-8$/,
  '/playground/style.css': /^text\/css; charset=utf-8$/,
  '/playground/favicon.svg': /^image\/svg\+xml/,
};

let model: LoadedModel;
let open: TestServer;
let keyed: TestServer;
let noUi: TestServer;

before(async () => {
  model = await loadTestModel();
  open = await startServer(model);
  keyed = await startServer(model, { apiKeys: ['pg-key'] });
  noUi = await startServer(model, { ui: false });
});

after(async () => {
  await open?.close();
  await keyed?.close();
  await noUi?.close();
  await model?.engine.close();
});

describe('playground over HTTP', () => {
  it('serves the page and its assets with a strict CSP and nosniff', async () => {
    for (const [path, type] of Object.entries(ASSETS)) {
      const res = await fetch(`${open.url}${path}`);
      const body = await res.text();
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get('content-type') ?? '', type, path);
      assert.equal(res.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY, path);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path);
      assert.ok(body.length > 0, path);
    }
    const csp = CONTENT_SECURITY_POLICY;
    for (const directive of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "img-src 'self' data:", "frame-ancestors 'none'", "object-src 'none'"]) {
      assert.ok(csp.split('; ').includes(directive), directive);
    }
    assert.ok(!/unsafe-inline|unsafe-eval|\*/.test(csp), 'no inline scripts or styles, no eval, no wildcard');
  });

  it('the page references only files of this server, with no inline script or style', async () => {
    const html = await (await fetch(`${open.url}/`)).text();
    const refs = [...html.matchAll(/\b(?:src|href)="([^"]*)"/g)].map((m) => m[1]);
    assert.ok(refs.length >= 4);
    for (const ref of refs) assert.match(ref, /^\/(?!\/)/, `${ref} is a path on this server`);
    assert.ok(refs.includes('/docs'), 'the nav links to the API docs');
    assert.ok(!/<script(?![^>]*\bsrc=)[^>]*>/.test(html), 'no inline script');
    assert.ok(!/<style|\sstyle=|\son[a-z]+=/i.test(html), 'no inline style or event handler');
    for (const id of ['prompt', 'send', 'stop', 'stats']) assert.ok(html.includes(`data-testid="${id}"`), id);
    for (const path of ['/playground/app.js', '/playground/markdown.js', '/playground/style.css']) {
      const text = await (await fetch(`${open.url}${path}`)).text();
      assert.ok(!/\bhttps?:\/\/(?!www\.w3\.org)/.test(text.replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, '')), `${path} names no other host`);
      assert.ok(!/\b(?:eval|Function)\(/.test(text), `${path} does not eval`);
    }
  });

  it('revalidates with the ETag (304)', async () => {
    const first = await fetch(`${open.url}/playground/app.js`);
    await first.text();
    const etag = first.headers.get('etag');
    assert.ok(etag);
    assert.equal(first.headers.get('cache-control'), 'no-cache');
    const again = await fetch(`${open.url}/playground/app.js`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal(await again.text(), '');
  });

  it('is public when keys are set, while the API it calls is not', async () => {
    for (const path of Object.keys(ASSETS)) {
      const res = await fetch(`${keyed.url}${path}`);
      await res.text();
      assert.equal(res.status, 200, path);
    }
    const api = await fetch(`${keyed.url}/v1/models`);
    assert.equal(api.status, 401);
    assert.equal(((await api.json()) as { error: { code: string } }).error.code, 'invalid_api_key');
    // Nothing else under /playground/ is served (no directory listing, no source files); with keys: 401 first.
    for (const path of ['/playground/', '/playground/markdown.d.ts', '/playground/index.html', '/playground/../package.json']) {
      const res = await fetch(`${open.url}${path}`);
      await res.text();
      assert.equal(res.status, 404, path);
      const r2 = await fetch(`${keyed.url}${path}`);
      await r2.text();
      assert.equal(r2.status, 401, path);
    }
  });

  it('--no-ui turns it off: / is a 404', async () => {
    for (const path of Object.keys(ASSETS)) {
      const res = await fetch(`${noUi.url}${path}`);
      assert.equal(res.status, 404, path);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'not_found');
    }
    const models = await fetch(`${noUi.url}/v1/models`);
    await models.text();
    assert.equal(models.status, 200, 'the API is unaffected');
  });
});

describe('config: --no-ui and log format', () => {
  const config = (argv: string[], env: Record<string, string> = {}) => {
    const parsed = parseConfig(argv, env, process.cwd());
    assert.equal(parsed.kind, 'config');
    return parsed.kind === 'config' ? parsed.config : (undefined as never);
  };

  it('the playground is on by default; --no-ui or NO_UI turns it off', () => {
    assert.equal(config([]).ui, true);
    assert.equal(config(['--no-ui']).ui, false);
    assert.equal(config([], { NO_UI: '1' }).ui, false);
    assert.equal(config([], { NO_UI: 'off' }).ui, true);
  });

  it('log format: automatic unless --log-pretty or LOG_PRETTY is given', () => {
    assert.equal(config([]).logPrettyDefaulted, true);
    assert.equal(config(['--log-pretty']).logPrettyDefaulted, false);
    const off = config([], { LOG_PRETTY: '0' });
    assert.equal(off.logPrettyDefaulted, false);
    assert.equal(off.logPretty, false);
  });
});
