/**
 * The web playground in a real browser: Debian's chromium (or CHROMIUM_PATH) driven by
 * puppeteer-core, against real servers on the tiny model. Run with `npm run test:browser`
 * (not part of `npm test`: it needs chromium; .ci/run installs it).
 *
 * Every page is watched: uncaught errors and console errors fail the test, and every request the
 * page makes must go to the server's own origin (request interception aborts and records others).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import puppeteer, { type Browser, type ConsoleMessage, type Page } from 'puppeteer-core';
import type { LoadedModel } from '../../src/app.ts';
import { loadTestModel, startServer, until, type TestServer } from '../helpers/server.ts';

// Callbacks passed to page.evaluate() & co. run in the page. The project compiles without the DOM
// library (its types clash with Node's), so the page's globals are loosely typed stand-ins here.
type El = any; // eslint-disable-line @typescript-eslint/no-explicit-any
type HTMLInputElement = El;
type HTMLButtonElement = El;
type HTMLSelectElement = El;
type HTMLTextAreaElement = El;
type DOMRect = El;
declare const document: El;
declare const window: El;
declare const sessionStorage: El;
declare const getComputedStyle: (el: El) => El;

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Room for a long conversation on the tiny model (its own window is 131072). */
const CONTEXT = 32_768;
const API_KEY = 'playground-test-key';
const sel = (id: string): string => `[data-testid="${id}"]`;

interface Watched {
  page: Page;
  /** Page errors and console errors, in order. */
  problems: string[];
  /** URLs the page tried to reach outside the server's origin (data: URLs aside). */
  offHost: string[];
  /** Bodies of the chat requests the page sent, in order. */
  chatBodies: { messages: { role: string; content: string }[]; [k: string]: unknown }[];
}

let model: LoadedModel;
let server: TestServer;
let keyServer: TestServer;
let browser: Browser;

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium) or set CHROMIUM_PATH`);
  }
  model = await loadTestModel({ contextLength: CONTEXT });
  server = await startServer(model, { contextLength: CONTEXT });
  keyServer = await startServer(model, { contextLength: CONTEXT, apiKeys: [API_KEY] });
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // We run as root in CI; no first-run, sync or other traffic of the browser's own.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run', '--disable-sync', '--disable-background-networking'],
  });
});

after(async () => {
  await browser?.close();
  await server?.close();
  await keyServer?.close();
  await model?.engine.close();
});

/**
 * A new page with the watchers on. `expectConsole` lets a test name console errors it causes on
 * purpose (Chromium logs every 4xx/5xx response as "Failed to load resource").
 */
async function openPage(origin: string, path = '/', expectConsole: (m: ConsoleMessage) => boolean = () => false): Promise<Watched> {
  const page = await browser.newPage();
  const problems: string[] = [];
  const offHost: string[] = [];
  const chatBodies: Watched['chatBodies'] = [];
  await page.setRequestInterception(true);
  page.on('request', (request) => {
    if (request.url() === `${origin}/v1/chat/completions` && request.method() === 'POST') chatBodies.push(JSON.parse(request.postData() ?? '{}'));
    // data: URLs (inline images) never leave the page.
    if (request.url().startsWith(`${origin}/`) || request.url().startsWith('data:')) void request.continue();
    else {
      offHost.push(request.url());
      void request.abort();
    }
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err instanceof Error ? err.message : String(err)}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !expectConsole(m)) problems.push(`console.error: ${m.text()} (${m.location().url ?? ''})`);
  });
  await page.goto(`${origin}${path}`, { waitUntil: 'load' });
  return { page, problems, offHost, chatBodies };
}

function assertClean(w: Watched, origin: string): void {
  assert.deepEqual(w.problems, [], 'no page errors or console errors');
  assert.deepEqual(w.offHost, [], `every request went to ${origin}`);
}

async function setValue(page: Page, testId: string, value: string): Promise<void> {
  await page.$eval(
    sel(testId),
    (el, v) => {
      const input = el as HTMLInputElement;
      input.value = v;
      input.dispatchEvent(new Event('input', { bubbles: true }));
    },
    value,
  );
}

const textOf = (page: Page, index: number): Promise<string> =>
  page.$$eval(sel('assistant-message'), (els, i) => els[i]?.textContent ?? '', index);
const stopDisabled = (page: Page): Promise<boolean> => page.$eval(sel('stop'), (el) => (el as HTMLButtonElement).disabled);
const stat = (page: Page, name: string): Promise<string> =>
  page.$eval(`${sel('stats')} [data-stat="${name}"]`, (el) => el.textContent ?? '');

/** Sends `text` by pressing Enter in the prompt box. */
async function sendByEnter(page: Page, text: string): Promise<void> {
  await page.click(sel('prompt'));
  await page.type(sel('prompt'), text);
  await page.keyboard.press('Enter');
}

/**
 * Samples the length of assistant message `index` until its generation ends (stop disabled) or
 * `until` says so; returns the lengths seen while it was generating.
 */
async function watchGrowth(page: Page, index: number, until: (lengths: number[]) => boolean = () => false): Promise<number[]> {
  await page.waitForFunction((i) => document.querySelectorAll('[data-testid="assistant-message"]').length > i, { timeout: 10_000 }, index);
  const lengths: number[] = [];
  const start = Date.now();
  while (Date.now() - start < 60_000) {
    const generating = !(await stopDisabled(page));
    const length = (await textOf(page, index)).length;
    if (!generating) break;
    if (length !== lengths.at(-1)) lengths.push(length);
    if (until(lengths)) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  return lengths;
}

/** Waits until answer number `count` has ended (done, stopped or failed) and the page is idle. */
async function waitAnswered(page: Page, count: number): Promise<void> {
  await page.waitForFunction(
    (n) =>
      document.querySelectorAll('[data-testid="assistant-message"]').length === n &&
      (document.querySelector('[data-testid="stop"]') as HTMLButtonElement).disabled &&
      /done|stopped|error/.test(document.querySelector('[data-stat="status"]')?.textContent ?? ''),
    { timeout: 30_000 },
    count,
  );
}

describe('the playground (GET /) in chromium', () => {
  it('streams answers, keeps the conversation, shows the figures and stops a long generation', async () => {
    const w = await openPage(server.url);
    const { page } = w;
    assert.equal(await page.title(), 'Playground · phi4-local-server');
    await page.waitForFunction(() => (document.querySelector('[data-testid="model"]') as HTMLSelectElement | null)?.options.length, { timeout: 10_000 });
    assert.equal(await page.$eval(sel('model'), (el) => (el as HTMLSelectElement).value), 'phi-4-mini-instruct');
    assert.equal(await stopDisabled(page), true, 'stop is disabled while idle');
    // Greedy decoding: the random model's answer is the same every run, and long (no eos within it).
    await setValue(page, 'temperature', '0');
    await setValue(page, 'max-tokens', '1000');

    // 1. The answer streams in: its text grows while the request runs, then stop is disabled again.
    await sendByEnter(page, 'Hello there');
    const grown = await watchGrowth(page, 0);
    assert.ok(grown.filter((n) => n > 0).length >= 3, `text grew in steps while streaming (lengths seen: ${grown.join(', ')})`);
    await page.waitForFunction(() => (document.querySelector('[data-testid="stop"]') as HTMLButtonElement).disabled);
    assert.equal(await page.$eval(sel('prompt'), (el) => (el as HTMLTextAreaElement).value), '', 'the prompt box was cleared');
    const first = await textOf(page, 0);
    assert.ok(first.length > grown.filter((n) => n > 0)[0], 'the final text is longer than the first one seen');
    assert.equal(await stat(page, 'completion'), '1000');
    const prompt1 = Number(await stat(page, 'prompt'));
    assert.ok(prompt1 > 0, 'prompt tokens shown');
    assert.match(await stat(page, 'ttft'), /^\d+(\.\d+)? m?s$/);
    assert.match(await stat(page, 'speed'), /^\d+(\.\d+)? tok\/s$/);
    assert.match(await stat(page, 'cached'), /^\d+$/);
    assert.match(await stat(page, 'status'), /done/);

    // 2. The next turn carries the conversation (its prompt holds the first answer), whose KV the
    //    prefix cache kept: cached prompt tokens show up.
    await setValue(page, 'max-tokens', '8');
    await sendByEnter(page, 'And then?');
    await waitAnswered(page, 2);
    assert.match(await stat(page, 'status'), /done/);
    const sent = w.chatBodies[1];
    assert.deepEqual(sent.messages.map((m) => m.role), ['user', 'assistant', 'user']);
    assert.equal(sent.messages[2].content, 'And then?');
    assert.ok(sent.messages[1].content.length > 1000, 'the first answer went back as the assistant turn');
    assert.equal(sent.stream, true);
    assert.deepEqual(sent.stream_options, { include_usage: true });
    assert.equal(sent.temperature, 0);
    assert.equal(sent.max_tokens, 8);
    const prompt2 = Number(await stat(page, 'prompt'));
    assert.ok(prompt2 > prompt1 + 500, `the second prompt (${prompt2} tokens) holds the first turn (${prompt1} + an answer)`);
    assert.ok(Number(await stat(page, 'cached')) >= prompt1, 'the first turn came from the prefix cache');

    // 3. A long generation, stopped with the button: the text stops growing, stop is disabled again.
    await setValue(page, 'max-tokens', '20000');
    await sendByEnter(page, 'Tell me a very long story.');
    const before = await watchGrowth(page, 2, (lengths) => lengths.filter((n) => n > 0).length >= 3);
    assert.ok(before.filter((n) => n > 0).length >= 3, `the long answer was streaming (lengths seen: ${before.join(', ')})`);
    assert.equal(await stopDisabled(page), false, 'stop is enabled while generating');
    await page.click(sel('stop'));
    await page.waitForFunction(() => (document.querySelector('[data-testid="stop"]') as HTMLButtonElement).disabled, { timeout: 5_000 });
    const stoppedAt = (await textOf(page, 2)).length;
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await textOf(page, 2)).length, stoppedAt, 'the text stopped growing');
    assert.ok(stoppedAt > 0);
    assert.equal(await stat(page, 'status'), 'stopped');
    assert.equal(await page.$eval(sel('send'), (el) => (el as HTMLButtonElement).disabled), false, 'send is enabled again');
    await until(() => server.ctx.engine.stats().running === 0, 'the server let go of the stopped generation');

    // 4. New chat empties the conversation.
    await page.click(sel('new-chat'));
    assert.equal((await page.$$(sel('assistant-message'))).length, 0);
    assertClean(w, server.url);
    await page.close();
  });

  it('asks for the API key on a 401, keeps it in session storage and sends it as a bearer token', async () => {
    // The refused requests are expected: Chromium logs each failed response as a console error.
    const refused = (m: ConsoleMessage): boolean => /status of 401/.test(m.text()) && /\/v1\/models$/.test(m.location().url ?? '');
    const w = await openPage(keyServer.url, '/', refused);
    const { page } = w;
    await page.waitForSelector(sel('api-key'), { visible: true, timeout: 10_000 });
    // A wrong key is refused with a readable hint.
    await page.type(sel('api-key'), 'not-the-key');
    await page.click(sel('api-key-save'));
    await page.waitForFunction(() => /did not accept/.test(document.getElementById('key-hint')?.textContent ?? ''));
    await page.type(sel('api-key'), API_KEY);
    await page.keyboard.press('Enter');
    await page.waitForSelector(sel('api-key'), { hidden: true, timeout: 10_000 });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('phi4-playground.api-key')), API_KEY);
    await setValue(page, 'max-tokens', '16');
    await sendByEnter(page, 'Hi');
    await waitAnswered(page, 1);
    assert.match(await stat(page, 'status'), /done/);
    assert.ok((await textOf(page, 0)).length > 0, 'an answer arrived with the key');
    assert.equal(await stat(page, 'completion'), '16');
    assertClean(w, keyServer.url);
    await page.close();
  });

  it('shows server errors as readable messages (context too long)', async () => {
    const refused = (m: ConsoleMessage): boolean => /status of 400/.test(m.text());
    const w = await openPage(server.url, '/', refused);
    const { page } = w;
    await page.waitForFunction(() => (document.querySelector('[data-testid="model"]') as HTMLSelectElement | null)?.options.length);
    await setValue(page, 'max-tokens', String(CONTEXT * 2));
    await sendByEnter(page, 'Hi');
    await page.waitForSelector(sel('error'), { visible: true });
    const message = await page.$eval(sel('error'), (el) => el.textContent ?? '');
    assert.match(message, /too long for the model's context window/);
    assert.equal((await page.$$(sel('assistant-message'))).length, 0, 'no empty bubble is left behind');
    assert.equal(await page.$eval(sel('prompt'), (el) => (el as HTMLTextAreaElement).value), 'Hi', 'the message is back in the box');
    assertClean(w, server.url);
    await page.close();
  });

  it('renders hostile model output inert in the page', async () => {
    const w = await openPage(server.url);
    const { page } = w;
    const result = await page.evaluate(async () => {
      const { renderMarkdown } = (await import('/playground/markdown.js' as string)) as { renderMarkdown: (s: string) => string };
      const div = document.createElement('div');
      div.innerHTML = renderMarkdown(
        '<script>window.__pwned = 1</script>\n<img src=x onerror="window.__pwned = 2">\n[x](javascript:window.__pwned=3)\n' +
          '<a href="javascript:alert(1)">y</a> <svg onload=alert(1)>\n```\n</code></pre><img src=x onerror=alert(1)>\n```',
      );
      document.body.append(div);
      await new Promise((r) => setTimeout(r, 100));
      const hrefs = [...div.querySelectorAll('a')].map((a) => a.getAttribute('href'));
      const handlers = [...div.querySelectorAll('*')].flatMap((el) => [...el.attributes].map((a) => a.name)).filter((n) => n.startsWith('on'));
      return {
        pwned: (window as unknown as { __pwned?: number }).__pwned ?? null,
        dangerous: div.querySelectorAll('script, img, svg, iframe, object').length,
        hrefs,
        handlers,
        text: div.textContent ?? '',
      };
    });
    assert.equal(result.pwned, null);
    assert.equal(result.dangerous, 0);
    assert.deepEqual(result.hrefs, []);
    assert.deepEqual(result.handlers, []);
    assert.match(result.text, /<script>window.__pwned = 1<\/script>/, 'the markup shows as text');
    assertClean(w, server.url);
    await page.close();
  });

  it('works on a phone-sized screen and by keyboard', async () => {
    const w = await openPage(server.url);
    const { page } = w;
    await page.setViewport({ width: 375, height: 740, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    await page.reload({ waitUntil: 'load' });
    await page.waitForFunction(() => (document.querySelector('[data-testid="model"]') as HTMLSelectElement | null)?.options.length);
    // (No named functions inside page callbacks: tsx's keepNames would reference a helper the page lacks.)
    const layout = await page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      prompt: document.querySelector('[data-testid="prompt"]').getBoundingClientRect().toJSON() as DOMRect,
      send: document.querySelector('[data-testid="send"]').getBoundingClientRect().toJSON() as DOMRect,
      settingsVisible: getComputedStyle(document.getElementById('settings')).display !== 'none',
    }));
    assert.ok(layout.scrollWidth <= 375, `no horizontal scrolling (${layout.scrollWidth}px wide)`);
    for (const b of [layout.prompt, layout.send]) assert.ok(b.left >= 0 && b.right <= 375 && b.bottom <= 740 && b.width > 0, 'composer on screen');
    assert.equal(layout.settingsVisible, false, 'settings fold away on a phone');
    await page.click('#toggle-settings');
    assert.equal(await page.$eval('#settings', (el) => getComputedStyle(el).display !== 'none'), true, 'the settings button opens them');

    // Keyboard: Shift+Enter breaks the line, Enter sends; focus moves with Tab and is visible.
    await page.click(sel('prompt'));
    await page.type(sel('prompt'), 'line one');
    await page.keyboard.down('Shift');
    await page.keyboard.press('Enter');
    await page.keyboard.up('Shift');
    await page.type(sel('prompt'), 'line two');
    assert.equal(await page.$eval(sel('prompt'), (el) => (el as HTMLTextAreaElement).value), 'line one\nline two');
    assert.equal((await page.$$(sel('assistant-message'))).length, 0, 'Shift+Enter did not send');
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => ({
      id: document.activeElement?.getAttribute('data-testid'),
      ring: getComputedStyle(document.activeElement!).boxShadow,
    }));
    assert.equal(focused.id, 'send');
    assert.notEqual(focused.ring, 'none', 'the focused button shows a focus ring');
    await setValue(page, 'max-tokens', '8');
    await page.focus(sel('prompt'));
    await page.keyboard.press('Enter');
    await waitAnswered(page, 1);
    assert.equal(await page.$eval(sel('user-message'), (el) => el.textContent), 'line one\nline two');
    assertClean(w, server.url);
    await page.close();
  });

  it('GET /docs lists /v1/chat/completions', async (t) => {
    const res = await fetch(`${server.url}/docs`);
    await res.body?.cancel();
    if (res.status === 404) {
      t.skip('docs not built yet');
      return;
    }
    assert.equal(res.status, 200);
    const w = await openPage(server.url, '/docs');
    await w.page.waitForFunction(() => document.body.innerText.includes('/v1/chat/completions'), { timeout: 20_000 });
    assert.deepEqual(w.offHost, [], 'the docs load nothing from outside the host');
    assert.deepEqual(w.problems.filter((p) => p.startsWith('pageerror')), [], 'no uncaught errors on the docs page');
    await w.page.close();
  });
});

