/**
 * The pure pieces of `npm run bench:http` (bench/lib): SSE parsing (also on a real local stream),
 * the streaming client's timings, percentile math, bounded load levels, prompt sizing, and the
 * report writers (Markdown, JSON, well-formed SVG). No model server, no benchmark run: fast.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runLevel } from '../../bench/lib/load.ts';
import { buildPrompt, type TextTokenizer } from '../../bench/lib/prompts.ts';
import { markdownReport, writeReport, type HttpBenchReport, type LevelRecord } from '../../bench/lib/report.ts';
import { SseParser, type SseEvent } from '../../bench/lib/sse.ts';
import { percentile, summarize } from '../../bench/lib/stats.ts';
import { decodeTokensPerSecond, interTokenLatencies, streamCompletion } from '../../bench/lib/stream-client.ts';
import { escapeXml, niceTicks, renderChart, wrapText } from '../../bench/lib/svg-chart.ts';
import { ChatTokenizer } from '../../src/tokenizer/tokenizer.ts';
import { FIXTURES } from '../setup/model-paths.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('SseParser', () => {
  const stream =
    ': a comment\r\n' +
    'data: {"a":1}\r\n\r\n' +
    'event: custom\nid: 7\ndata: line one\ndata:line two\n\n' +
    'data: café ☕\r\r' +
    'retry: 100\nunknown: x\n\n' + // no data: not dispatched
    'data: [DONE]\n\n' +
    'data: cut off at the end';
  const expected: SseEvent[] = [
    { event: 'message', data: '{"a":1}' },
    { event: 'custom', data: 'line one\nline two', id: '7' },
    { event: 'message', data: 'café ☕', id: '7' },
    { event: 'message', data: '[DONE]', id: '7' },
  ];

  it('parses a whole stream: CRLF, CR and LF endings, comments, multi-line data, fields', () => {
    const p = new SseParser();
    assert.deepEqual([...p.feed(stream), ...p.end()], expected);
  });

  it('gives the same events however the text is split (one character at a time, CR before LF)', () => {
    const p = new SseParser();
    const events: SseEvent[] = [];
    for (const ch of stream) events.push(...p.feed(ch));
    events.push(...p.end());
    assert.deepEqual(events, expected);
    for (let cut = 1; cut < stream.length; cut += 7) {
      const q = new SseParser();
      assert.deepEqual([...q.feed(stream.slice(0, cut)), ...q.feed(stream.slice(cut)), ...q.end()], expected, `split at ${cut}`);
    }
  });
});

/** A local server speaking OpenAI-style SSE with awkward network framing. */
describe('streamCompletion on a real local stream', () => {
  let server: http.Server;
  let port: number;
  const GAP_MS = 25;

  before(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const mode = (JSON.parse(body) as { mode: string }).mode;
        if (mode === 'busy') {
          res.writeHead(429, { 'content-type': 'application/json' });
          res.end('{"error":{"message":"queue full"}}');
          return;
        }
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        void (async () => {
          const chunk = (text: string, finish: string | null = null) =>
            `data: ${JSON.stringify({ object: 'text_completion', choices: [{ index: 0, text, finish_reason: finish }], usage: null })}\r\n\r\n`;
          if (mode === 'hang') {
            res.write(chunk('x'));
            return; // never ends: the client's timeout must fire
          }
          await sleep(GAP_MS);
          // The first token's bytes arrive in two writes, cut inside the event and inside a UTF-8 character.
          const first = Buffer.from(chunk('é'));
          const cut = first.indexOf(Buffer.from('é')) + 1;
          res.write(first.subarray(0, cut));
          await sleep(5);
          res.write(first.subarray(cut));
          for (const t of ['b', '', 'c', 'd']) {
            await sleep(GAP_MS);
            res.write(chunk(t)); // '' = text held back by the detokenizer: not a content chunk
          }
          if (mode === 'inband-error') {
            res.end(`data: ${JSON.stringify({ error: { message: 'engine died' } })}\n\ndata: [DONE]\n\n`);
            return;
          }
          res.write(chunk('', 'length'));
          res.write(`data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 9, completion_tokens: 5, total_tokens: 14 } })}\r\n\r\n`);
          if (mode === 'no-done') res.end();
          else res.end('data: [DONE]\r\n\r\n');
        })();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const call = (mode: string, timeoutMs = 5000) =>
    streamCompletion({ host: '127.0.0.1', port, path: '/v1/completions', body: { mode }, timeoutMs });

  it('times each content chunk and takes token counts from the usage chunk', async () => {
    const m = await call('ok');
    assert.equal(m.ok, true, m.error);
    assert.equal(m.status, 200);
    assert.equal(m.sawDone, true);
    assert.equal(m.textChars, 'ébcd'.length);
    assert.equal(m.contentTimesMs.length, 4);
    assert.equal(m.completionTokens, 5);
    assert.equal(m.promptTokens, 9);
    assert.equal(m.finishReason, 'length');
    assert.ok(m.ttftMs !== null && m.ttftMs >= GAP_MS - 2, `ttft ${m.ttftMs}`);
    assert.ok(m.e2eMs >= m.contentTimesMs[3]);
    const itl = interTokenLatencies(m);
    assert.equal(itl.length, 3);
    // 'b' follows 'é' by one gap, 'c' follows 'b' by two (the empty chunk in between), 'd' by one.
    assert.ok(itl[0] >= GAP_MS - 8 && itl[1] >= 2 * GAP_MS - 8 && itl[2] >= GAP_MS - 8, `itl ${itl.join(', ')}`);
    const span = m.contentTimesMs[3] - m.contentTimesMs[0];
    assert.ok(Math.abs(decodeTokensPerSecond(m) - 4000 / span) < 1e-9);
  });

  it('reports HTTP errors, in-band errors, a missing [DONE] and timeouts as failures', async () => {
    const busy = await call('busy');
    assert.equal(busy.ok, false);
    assert.equal(busy.status, 429);
    assert.match(busy.error ?? '', /HTTP 429: .*queue full/);

    const inband = await call('inband-error');
    assert.equal(inband.ok, false);
    assert.match(inband.error ?? '', /in-band error: .*engine died/);

    const noDone = await call('no-done');
    assert.equal(noDone.ok, false);
    assert.match(noDone.error ?? '', /without \[DONE\]/);

    const hang = await call('hang', 300);
    assert.equal(hang.ok, false);
    assert.match(hang.error ?? '', /timed out after 300 ms/);
    assert.equal(hang.contentTimesMs.length, 1);
  });
});

describe('percentiles', () => {
  it('interpolates linearly between closest ranks (numpy default)', () => {
    const xs = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5];
    assert.equal(percentile(xs, 50), 5.5);
    assert.ok(Math.abs(percentile(xs, 90) - 9.1) < 1e-12);
    assert.ok(Math.abs(percentile(xs, 99) - 9.91) < 1e-12);
    assert.equal(percentile(xs, 0), 1);
    assert.equal(percentile(xs, 100), 10);
    assert.equal(percentile([3, 1, 2], 50), 2);
    assert.equal(percentile([42], 99), 42);
    assert.ok(Number.isNaN(percentile([], 50)));
    assert.throws(() => percentile([1], 101), RangeError);
    assert.throws(() => percentile([1, Number.NaN], 50), RangeError);
  });

  it('summarizes n, min, mean, p50/p90/p99, max', () => {
    assert.deepEqual(summarize([4, 2]), { n: 2, min: 2, mean: 3, p50: 3, p90: 3.8, p99: 3.98, max: 4 });
    const empty = summarize([]);
    assert.equal(empty.n, 0);
    assert.ok(Number.isNaN(empty.p50));
  });
});

describe('runLevel', () => {
  it('never exceeds the concurrency or the request cap', async () => {
    let inFlight = 0;
    let peak = 0;
    const out = await runLevel({
      concurrency: 3,
      maxRequests: 10,
      durationMs: 60_000,
      run: async (i) => {
        peak = Math.max(peak, ++inFlight);
        await sleep(5);
        inFlight--;
        return i;
      },
    });
    assert.equal(peak, 3);
    assert.deepEqual(out.results, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(out.stoppedBy, 'requests');
  });

  it('starts nothing after the time cap', async () => {
    const out = await runLevel({ concurrency: 2, maxRequests: 1000, durationMs: 60, run: () => sleep(25) });
    assert.equal(out.stoppedBy, 'time');
    assert.ok(out.results.length >= 2 && out.results.length <= 8, `${out.results.length} requests`);
  });
});

describe('buildPrompt', () => {
  // One token per word and per punctuation mark: fast and exact.
  const fakeTok: TextTokenizer = { encode: (t) => (t.match(/\w+|[^\w\s]/g) ?? []).map((_, i) => i) };

  it('fits the target exactly or within a word, differs per seed, is deterministic', () => {
    for (const n of [8, 128, 2048]) {
      const a = buildPrompt(fakeTok, n, 1);
      assert.ok(a.tokens <= n && a.tokens >= n - 2, `${a.tokens} for ${n}`);
      assert.equal(fakeTok.encode(a.text).length, a.tokens);
      assert.equal(buildPrompt(fakeTok, n, 1).text, a.text);
      assert.notEqual(buildPrompt(fakeTok, n, 2).text, a.text);
    }
    assert.ok(buildPrompt(fakeTok, 3, 1).tokens <= 3);
  });

  it('lands within a few tokens of the target on the real o200k tokenizer', { skip: !existsSync(join(FIXTURES.tiny, 'tokenizer.json')) && 'tiny fixture not built' }, async () => {
    const tok = await ChatTokenizer.load(FIXTURES.tiny);
    for (const n of [128, 2048]) {
      const p = buildPrompt(tok, n, 3);
      assert.equal(tok.encode(p.text).length, p.tokens);
      assert.ok(p.tokens <= n && p.tokens >= n - 3, `${p.tokens} for ${n}`);
    }
  });
});

function level(promptTarget: number, concurrency: number, tokS: number, ttftMs: number): LevelRecord {
  const s = (v: number) => ({ n: 2, min: v, mean: v, p50: v, p90: v, p99: v, max: v });
  return {
    promptTarget,
    concurrency,
    maxRequests: 2,
    durationCapS: 60,
    started: 2,
    ok: 2,
    failed: 0,
    short: 0,
    stoppedBy: 'requests',
    wallS: 10,
    promptTokens: { min: promptTarget, max: promptTarget },
    aggregateOutputTokS: tokS,
    reqPerSec: 0.2,
    ttftMs: s(ttftMs),
    itlMs: s(140),
    e2eMs: s(9000),
    decodeTokS: s(7.1),
    serverRssPeakGB: 4.21,
    requests: [],
  };
}

function sampleReport(): HttpBenchReport {
  return {
    meta: {
      date: '2025-01-02T03:04:05.000Z',
      model: 'phi4<&>"test"',
      modelDir: '/m',
      modelShape: '32 layers, hidden 3072',
      host: '127.0.0.1',
      cpus: '2 x Test CPU',
      memoryGB: 16,
      node: '20.0.0',
      onnxruntime: '1.30.0',
      git: 'abc123',
      serverReadyS: 12.3,
      serverPeakRssGB: 4.1,
      totalMinutes: 21.5,
    },
    settings: {
      endpoint: '/v1/completions',
      maxTokens: 64,
      threads: 0,
      maxQueue: 64,
      concurrency: [1, 2, 4, 8],
      promptTokens: [128, 2048],
      longPromptMin: 1024,
      longConcurrency: [1, 2],
      durationS: 120,
      longDurationS: 300,
      requestTimeoutS: 900,
      eosBanned: [200020, 199999],
    },
    streaming: [level(128, 1, 6.8, 4200), level(128, 2, 7.0, 9000), level(128, 4, 7.1, 26000), level(128, 8, 7.1, 52000), level(2048, 1, 0.8, 70000), level(2048, 2, 0.85, 140000)],
    skipped: [
      { promptTarget: 2048, concurrency: 4, reason: 'long prompt' },
      { promptTarget: 2048, concurrency: 8, reason: 'long prompt' },
    ],
    engineDirect: null,
    comparisons: [
      {
        promptTarget: 128,
        promptTokens: 128,
        engineRuns: 2,
        httpRuns: 2,
        engine: { ttftMs: 4100, decodeTokS: 7.3, outputTokS: 6.9, overheadMsPerToken: 0.4 },
        http: { ttftMs: 4200, decodeTokS: 7.2, outputTokS: 6.8 },
        decodeRatio: 7.2 / 7.3,
        outputRatio: 6.8 / 6.9,
        pairDecodeRatios: [0.981, 0.992],
      },
    ],
    autocannon: [
      {
        name: 'GET /health',
        url: 'http://127.0.0.1:1/health',
        method: 'GET',
        connections: 10,
        durationS: 10,
        requests: 50_000,
        ok2xx: 50_000,
        non2xx: 0,
        errors: 0,
        timeouts: 0,
        statusCodes: { '200': 50_000 },
        reqPerSec: 5000,
        latencyMs: { p50: 1, p90: 3, p99: 9, mean: 1.6, max: 30 },
      },
    ],
    notes: ['a note'],
    errors: [],
  };
}

/** Well-formedness without an XML library: balanced tags, quoted attributes, escaped text. */
function assertWellFormedXml(xml: string): void {
  const stack: string[] = [];
  const re = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<\?xml[^>]*\?>/g;
  let last = 0;
  let m: RegExpExecArray | null;
  let roots = 0;
  while ((m = re.exec(xml)) !== null) {
    const between = xml.slice(last, m.index);
    assert.ok(!/[<>]/.test(between), `stray markup before offset ${m.index}: ${between.slice(0, 80)}`);
    assert.ok(!/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(between), `unescaped & near offset ${m.index}`);
    last = re.lastIndex;
    if (m[2] === undefined) continue; // the XML declaration
    if (m[1] === '/') assert.equal(stack.pop(), m[2], `closing </${m[2]}> at ${m.index}`);
    else if (m[4] !== '/') {
      if (stack.length === 0) roots++;
      stack.push(m[2]);
    } else if (stack.length === 0) roots++;
  }
  assert.ok(!/[<>]/.test(xml.slice(last)), 'trailing markup');
  assert.deepEqual(stack, [], 'unclosed tags');
  assert.equal(roots, 1, 'one root element');
}

describe('SVG chart and report writers', () => {
  it('niceTicks and wrapText', () => {
    assert.deepEqual(niceTicks(7.3), [0, 2, 4, 6, 8]);
    assert.deepEqual(niceTicks(0.42), [0, 0.1, 0.2, 0.3, 0.4, 0.5]);
    assert.deepEqual(niceTicks(0), [0, 1]);
    assert.deepEqual(wrapText('aa bb cc dd', 5), ['aa bb', 'cc dd']);
    assert.equal(escapeXml(`<a & "b">`), '&lt;a &amp; &quot;b&quot;&gt;');
  });

  it('renders a well-formed SVG with axes, ticks, labels and no NaN', () => {
    const svg = renderChart({
      title: 'Throughput <&> "quoted"',
      subtitle: 'sub',
      panels: [
        {
          title: 'tok/s',
          xLabel: 'concurrent streaming clients',
          yLabel: 'tokens / s',
          xScale: 'log2',
          series: [
            { name: '128-token prompt', color: '#1f77b4', points: [1, 2, 4, 8].map((x) => ({ x, y: 5 + x / 10 })) },
            { name: 'single', color: '#d62728', points: [{ x: 1, y: Number.NaN }, { x: 2, y: 0.8 }] },
          ],
          references: [{ y: 6.1, color: '#1f77b4', label: 'engine' }],
        },
      ],
      legendNotes: [{ label: 'engine direct', color: '#1f77b4', dashed: true }],
      footnotes: ['x '.repeat(200)],
    });
    assertWellFormedXml(svg);
    assert.match(svg, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.ok(!/NaN|undefined|Infinity/.test(svg));
    assert.match(svg, /Throughput &lt;&amp;&gt; &quot;quoted&quot;/);
    for (const label of ['concurrent streaming clients', 'tokens / s', '128-token prompt', 'engine direct', '>1<', '>2<', '>4<', '>8<']) {
      assert.ok(svg.includes(label), `missing ${label}`);
    }
    assert.equal((svg.match(/<polyline /g) ?? []).length, 1, 'a series left with one finite point draws a marker, no line');
    assert.ok((svg.match(/stroke-dasharray/g) ?? []).length >= 2, 'reference line and its legend entry are dashed');
  });

  it('writes JSON, Markdown and SVG for a report (and rsvg-convert can render the SVG when installed)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-http-'));
    try {
      const report = sampleReport();
      const { files, markdown } = writeReport(dir, report);
      assert.match(files.json, /http-phi4_test_\.json$/);
      const json = JSON.parse(readFileSync(files.json, 'utf8')) as HttpBenchReport;
      assert.equal(json.streaming.length, 6);
      assert.equal(readFileSync(files.md, 'utf8'), markdown);
      assert.match(markdown, /\| 128 \| 1 \| 2 \/ 2 \| 10\.0 \| 6\.80 \| 4\.200 \/ 4\.200 \/ 4\.200 \| 140\.0 \/ 140\.0 \/ 140\.0 \|/);
      assert.match(markdown, /\| 7\.10 \| 4\.21 \|\n/);
      assert.match(markdown, /\| ~2048 \| 8 \| not run: long prompt \|/);
      assert.match(markdown, /\| 128 \| 2 \| 4\.100 \/ 4\.200 \| 7\.30 \/ 7\.20 \| \*\*0\.986x\*\* \| 0\.981, 0\.992 \|/);
      assert.match(markdown, /\| GET \/health \| 10 \| 10\.0 \| 50000 \| 50000 \/ 0 \/ 0 \| 5000\.0 \| 1 \/ 3 \/ 9 \|/);
      assert.match(markdown, /!\[HTTP benchmark chart\]\(http-phi4_test_\.svg\)/);
      assert.equal(markdownReport(report).split('\n')[0], '## HTTP benchmark — phi4<&>"test" (32 layers, hidden 3072), 2025-01-02');
      const svg = readFileSync(files.svg, 'utf8');
      assertWellFormedXml(svg);
      assert.ok(!/NaN|undefined/.test(svg));
      assert.ok(svg.includes('engine direct (no HTTP), 128-token prompt, c=1: 6.90 tok/s'));
      let rsvg = true;
      try {
        execFileSync('rsvg-convert', ['--version'], { stdio: 'ignore' });
      } catch {
        rsvg = false;
      }
      if (rsvg) {
        const png = execFileSync('rsvg-convert', ['-f', 'png', files.svg]);
        assert.deepEqual([...png.subarray(1, 4)], [...Buffer.from('PNG')]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
