/**
 * The HTTP benchmark's result model and its three renderings: JSON (everything, per request),
 * a Markdown report (tables a person reads), and the SVG chart (tok/s and TTFT against concurrency).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CannonSummary } from './autocannon-run.ts';
import type { EngineRun } from './engine-direct.ts';
import type { MemoryResult, PrefillBesideResult, PrefixReuseResult, TogetherResult } from './scenarios.ts';
import type { CurvePoint } from './step-curve.ts';
import type { Summary } from './stats.ts';
import { PALETTE, renderChart, type ChartSpec, type ReferenceLine, type Series } from './svg-chart.ts';

export interface RequestRecord {
  index: number;
  ok: boolean;
  error?: string;
  status: number;
  promptTokens: number | null;
  completionTokens: number | null;
  finishReason: string | null;
  ttftMs: number | null;
  e2eMs: number;
  /** (tokens - 1) / (last content chunk - first content chunk). */
  decodeTokS: number | null;
  /** tokens / end-to-end time. */
  outputTokS: number | null;
  contentChunks: number;
  /** Gaps between content chunks (ms). */
  itlMs: number[];
}

export interface LevelRecord {
  promptTarget: number;
  concurrency: number;
  maxRequests: number;
  durationCapS: number;
  started: number;
  ok: number;
  failed: number;
  /** ok, but fewer tokens than max_tokens (or a finish_reason other than "length"). */
  short: number;
  stoppedBy: 'requests' | 'time';
  wallS: number;
  /** Server-reported prompt tokens over the level's requests. */
  promptTokens: { min: number; max: number } | null;
  /** Sum of completion tokens of ok requests / wall time. */
  aggregateOutputTokS: number;
  reqPerSec: number;
  ttftMs: Summary;
  /** Pooled over every gap of every ok request. */
  itlMs: Summary;
  e2eMs: Summary;
  decodeTokS: Summary;
  /** Highest server RSS sampled during the level (every 250 ms), GiB; null when it could not be read. */
  serverRssPeakGB?: number | null;
  requests: RequestRecord[];
}

export interface SkippedLevel {
  promptTarget: number;
  concurrency: number;
  reason: string;
}

export interface Comparison {
  promptTarget: number;
  promptTokens: number;
  engineRuns: number;
  httpRuns: number;
  engine: { ttftMs: number; decodeTokS: number; outputTokS: number; overheadMsPerToken: number };
  http: { ttftMs: number; decodeTokS: number; outputTokS: number };
  /** HTTP / engine: the median over pairs of each pair's ratio. */
  decodeRatio: number;
  outputRatio: number;
  /** Each pair's HTTP / engine decode ratio, in the order run. */
  pairDecodeRatios: number[];
}

export interface HttpBenchReport {
  meta: {
    date: string;
    model: string;
    modelDir: string;
    modelShape: string;
    host: string;
    cpus: string;
    memoryGB: number;
    node: string;
    onnxruntime: string;
    git: string;
    serverReadyS: number | null;
    serverPeakRssGB: number | null;
    totalMinutes: number;
  };
  settings: {
    endpoint: string;
    maxTokens: number;
    threads: number;
    maxQueue: number;
    concurrency: number[];
    promptTokens: number[];
    longPromptMin: number;
    longConcurrency: number[];
    durationS: number;
    longDurationS: number;
    requestTimeoutS: number;
    eosBanned: number[];
  };
  streaming: LevelRecord[];
  skipped: SkippedLevel[];
  engineDirect: { loadSeconds: number; runs: EngineRun[] } | null;
  comparisons: Comparison[];
  autocannon: CannonSummary[];
  /** Continuous batching and prefix reuse (bench/lib/scenarios.ts); absent in older reports. */
  scenarios?: Scenarios;
  notes: string[];
  errors: string[];
}

export interface Scenarios {
  /** Model steps of n decoding sequences, measured in the same run (the ceiling of `together`). */
  curve?: { context: number; points: CurvePoint[] };
  together: TogetherResult[];
  prefixReuse: PrefixReuseResult | null;
  prefillBeside: PrefillBesideResult | null;
  memory: MemoryResult | null;
}

function scenarioLines(s: Scenarios): string[] {
  const out = ['### Continuous batching and prefix reuse', ''];
  if (s.together.length > 0) {
    const ceiling = (n: number) => s.curve?.points.find((p) => p.decode === n && p.prefill === 0)?.tokS;
    const one = ceiling(1);
    out.push('| streams started together | prompt tokens | window where all decode (s) | tokens in it | aggregate decode tok/s | ceiling: a step of n tokens (tok/s) | of the ceiling | x one stream | TTFT of the last (s) |');
    out.push('|---|---|---|---|---|---|---|---|---|');
    for (const t of s.together) {
      const c = ceiling(t.streams);
      out.push(
        `| ${t.streams} | ${t.promptTokens} | ${fx(t.windowS, 1)} | ${t.tokensInWindow} | ${fx(t.aggregateTokS)} | ${fx(c)} | ` +
          `${c ? `**${fx(t.aggregateTokS / c)}x**` : 'n/a'} | ${one ? fx(t.aggregateTokS / one) : 'n/a'} | ${secs(t.ttftMsMax)} |`,
      );
    }
    if (s.curve) out.push('', `Ceilings: a model step of n decoding sequences at ${s.curve.context} positions, timed in the benchmark process beside the idle server right before and right after each scenario (the mean of the two; bench/lib/step-curve.ts). "x one stream": against one sequence's steps, timed after the last scenario.`);
    out.push('');
  }
  const p = s.prefixReuse;
  if (p) {
    out.push(
      `Multi-turn: turn 1 (${p.promptTokens} prompt tokens, cold) TTFT ${secs(p.coldTtftMs)} s; turn 2 (${p.turn2PromptTokens} tokens, ` +
        `${p.turn2CachedTokens ?? 'n/a'} from the prefix cache) TTFT ${secs(p.warmTtftMs)} s: **${fx(p.speedup, 1)}x** faster.`,
      '',
    );
  }
  const b = s.prefillBeside;
  if (b) {
    out.push(
      `${b.streams} running streams while a ${b.longPromptTokens}-token prompt is read beside them: ITL p99 ${fx(b.itlP99WithoutMs, 0)} ms before, ` +
        `${fx(b.itlP99WithMs, 0)} ms during (**${fx(b.ratioP99)}x**); p50 ${fx(b.itlP50WithoutMs, 0)} -> ${fx(b.itlP50WithMs, 0)} ms; the prompt was read at ${fx(b.longPrefillTokS, 1)} tok/s.`,
      '',
    );
  }
  const m = s.memory;
  if (m) {
    out.push(
      `${m.streams} streams of ${m.promptTokens}-token prompts: server peak RSS ${fx(m.peakRssGiB)} GiB = idle after load ${fx(m.idleRssGiB)} + ` +
        `--kv-cache-gib ${m.kvBudgetGiB} + **${fx(m.overBudgetGiB)}** GiB.`,
      '',
    );
  }
  return out;
}

const secs = (ms: number): string => (Number.isFinite(ms) ? (ms / 1000).toFixed(Math.abs(ms) < 10_000 ? 3 : 1) : 'n/a');
const fx = (v: number | null | undefined, d = 2): string => (v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(d));
const triple = (s: Summary, fmt: (v: number) => string): string =>
  s.n === 0 ? 'n/a' : `${fmt(s.p50)} / ${fmt(s.p90)} / ${fmt(s.p99)}`;

function promptLabel(l: Pick<LevelRecord, 'promptTarget' | 'promptTokens'>): string {
  const p = l.promptTokens;
  if (!p) return `~${l.promptTarget}`;
  return p.min === p.max ? String(p.min) : `${p.min}–${p.max}`;
}

export function markdownReport(r: HttpBenchReport): string {
  const m = r.meta;
  const s = r.settings;
  const out: string[] = [];
  out.push(`## HTTP benchmark — ${m.model} (${m.modelShape}), ${m.date.slice(0, 10)}`);
  out.push('');
  out.push(
    `Server: \`src/main.ts\` as a child process on ${m.host}, \`--max-queue ${s.maxQueue} --threads ${s.threads}\` ` +
      `(ready in ${fx(m.serverReadyS, 1)} s; peak RSS ${fx(m.serverPeakRssGB, 2)} GiB). ` +
      `Machine: ${m.cpus}, ${m.memoryGB} GiB RAM, Node ${m.node}, onnxruntime-node ${m.onnxruntime}, commit ${m.git}. ` +
      `Whole run: ${fx(m.totalMinutes, 1)} min.`,
  );
  out.push('');
  out.push(
    `Streaming \`POST ${s.endpoint}\` with \`stream_options.include_usage\`, \`temperature: 0\`, \`max_tokens: ${s.maxTokens}\`, ` +
      `eos ids ${s.eosBanned.join(', ')} banned through \`logit_bias\` so every request generates exactly ${s.maxTokens} tokens. ` +
      `Closed loop: *concurrency* clients each send their next request when the previous one ends; a level stops after its ` +
      `request cap or its time cap (${s.durationS} s; ${s.longDurationS} s for prompts of ${s.longPromptMin}+ tokens; no new request starts after it, running ones finish). One warm-up request first, not counted. ` +
      `Requests share model steps (continuous batching); a prompt that arrives while others decode is read in chunks beside them, so TTFT includes that reading and any wait for a place.`,
  );
  out.push('');
  out.push(
    '- **agg. out tok/s**: completion tokens of all requests / wall time of the level. **TTFT**: request written → first content chunk. ' +
      '**ITL**: gap between content chunks (pooled over requests). **E2E**: request written → `[DONE]`. ' +
      '**decode tok/s/req**: (tokens − 1) / (last chunk − first chunk), median over requests. Percentiles: linear interpolation; ' +
      'with few requests p90/p99 lean toward the maximum. **server RSS**: the highest of the server\'s RSS sampled every 250 ms during the level.',
  );
  out.push('');
  out.push('| prompt tokens | concurrency | requests ok / started | wall (s) | agg. out tok/s | TTFT p50 / p90 / p99 (s) | ITL p50 / p90 / p99 (ms) | E2E p50 / p90 / p99 (s) | decode tok/s/req | server RSS (GiB) |');
  out.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const l of r.streaming) {
    const stop = l.stoppedBy === 'time' ? ' (time cap)' : '';
    const shortNote = l.short > 0 ? `, ${l.short} short` : '';
    out.push(
      `| ${promptLabel(l)} | ${l.concurrency} | ${l.ok} / ${l.started}${stop}${shortNote} | ${fx(l.wallS, 1)} | ${fx(l.aggregateOutputTokS)} | ` +
        `${triple(l.ttftMs, secs)} | ${triple(l.itlMs, (v) => v.toFixed(1))} | ${triple(l.e2eMs, secs)} | ${fx(l.decodeTokS.p50)} | ${fx(l.serverRssPeakGB)} |`,
    );
  }
  for (const k of r.skipped) out.push(`| ~${k.promptTarget} | ${k.concurrency} | not run: ${k.reason} | | | | | | | |`);
  out.push('');

  if (r.comparisons.length > 0) {
    out.push('### HTTP streaming vs the engine called directly (concurrency 1, in pairs)');
    out.push('');
    out.push(
      'Engine: `Engine.load` in the benchmark process beside the idle server, greedy, eos banned through `logitBias`, ' +
        'timed like the HTTP client (before `generate()` → first token event → `done`). Each pair is one HTTP request and one ' +
        'engine generation on the same prompt, back to back, the order alternating; ratios are medians of the pairs\' ratios.',
    );
    out.push('');
    out.push('| prompt tokens | pairs | TTFT engine / HTTP (s) | decode tok/s engine / HTTP | HTTP / engine (decode) | each pair (decode) | output tok/s engine / HTTP | HTTP / engine (output) | engine work outside session.run (ms/token) |');
    out.push('|---|---|---|---|---|---|---|---|---|');
    for (const c of r.comparisons) {
      out.push(
        `| ${c.promptTokens} | ${c.engineRuns} | ${secs(c.engine.ttftMs)} / ${secs(c.http.ttftMs)} | ` +
          `${fx(c.engine.decodeTokS)} / ${fx(c.http.decodeTokS)} | **${fx(c.decodeRatio, 3)}x** | ${(c.pairDecodeRatios ?? []).map((x) => fx(x, 3)).join(', ')} | ` +
          `${fx(c.engine.outputTokS)} / ${fx(c.http.outputTokS)} | ${fx(c.outputRatio, 3)}x | ${fx(c.engine.overheadMsPerToken, 3)} |`,
      );
    }
    out.push('');
  }

  if (r.autocannon.length > 0) {
    out.push('### autocannon (non-streaming)');
    out.push('');
    out.push('| target | connections | duration (s) | completed | 2xx / non-2xx / errors | req/s | latency p50 / p90 / p99 (ms) |');
    out.push('|---|---|---|---|---|---|---|');
    for (const a of r.autocannon) {
      out.push(
        `| ${a.name} | ${a.connections} | ${fx(a.durationS, 1)} | ${a.requests} | ${a.ok2xx} / ${a.non2xx} / ${a.errors} | ${fx(a.reqPerSec, 1)} | ` +
          `${a.latencyMs.p50} / ${a.latencyMs.p90} / ${a.latencyMs.p99} |`,
      );
    }
    out.push('');
  }

  if (r.scenarios) out.push(...scenarioLines(r.scenarios));

  if (r.notes.length > 0 || r.errors.length > 0) {
    out.push('Notes:');
    out.push('');
    for (const n of r.notes) out.push(`- ${n}`);
    for (const e of r.errors) out.push(`- **error:** ${e}`);
    out.push('');
  }
  return out.join('\n');
}

export function chartSpec(r: HttpBenchReport, chartFile: string): ChartSpec {
  const targets = [...new Set(r.streaming.map((l) => l.promptTarget))].sort((a, b) => a - b);
  const color = (t: number): string => PALETTE[targets.indexOf(t) % PALETTE.length];
  const label = (t: number): string => {
    const levels = r.streaming.filter((l) => l.promptTarget === t);
    const toks = levels.map((l) => l.promptTokens).filter((p) => p !== null);
    const real = toks.length > 0 ? Math.round(toks.reduce((a, p) => a + (p.min + p.max) / 2, 0) / toks.length) : t;
    return `${real.toLocaleString('en-US')}-token prompt`;
  };
  const xTicks = [...new Set(r.streaming.map((l) => l.concurrency))].sort((a, b) => a - b);
  const tokS: Series[] = [];
  const ttft: Series[] = [];
  const refs: ReferenceLine[] = [];
  const notes: NonNullable<ChartSpec['legendNotes']> = [];
  for (const t of targets) {
    const levels = r.streaming.filter((l) => l.promptTarget === t && l.ok > 0);
    tokS.push({ name: label(t), color: color(t), points: levels.map((l) => ({ x: l.concurrency, y: l.aggregateOutputTokS })) });
    ttft.push({ name: label(t), color: color(t), points: levels.map((l) => ({ x: l.concurrency, y: l.ttftMs.p50 / 1000 })) });
    const c = r.comparisons.find((k) => k.promptTarget === t);
    if (c) {
      refs.push({ y: c.engine.outputTokS, color: color(t) });
      notes.push({ label: `engine direct (no HTTP), ${c.promptTokens}-token prompt, c=1: ${c.engine.outputTokS.toFixed(2)} tok/s`, color: color(t), dashed: true });
    }
  }
  const s = r.settings;
  const footnotes: string[] = [];
  const longLevels =
    r.skipped.length > 0 ? ` Not run (long prompts only at low concurrency, or out of time): ${r.skipped.map((k) => `~${k.promptTarget} tok at c=${k.concurrency}`).join(', ')}.` : '';
  footnotes.push(
    `Streaming /v1/completions, greedy, max_tokens ${s.maxTokens} (eos banned), closed loop; requests share model steps, and TTFT includes reading a prompt beside the running streams.${longLevels}`,
  );
  if (refs.length > 0) footnotes.push('Dashed: the Engine called directly (no HTTP) at concurrency 1 on the same prompts, end-to-end output tok/s.');
  footnotes.push(`Data: ${chartFile.replace(/\.svg$/, '.md')} (tables) and .json (every request).`);
  return {
    title: `HTTP streaming benchmark — ${r.meta.model}`,
    subtitle: `${r.meta.modelShape} · ${r.meta.cpus} · ${r.meta.date.slice(0, 16).replace('T', ' ')} UTC`,
    panels: [
      {
        title: 'Aggregate output throughput',
        xLabel: 'concurrent streaming clients',
        yLabel: 'output tokens / s (all clients)',
        xScale: 'log2',
        xTicks,
        series: tokS,
        references: refs,
        valueDigits: 2,
      },
      {
        title: 'Time to first token (median)',
        xLabel: 'concurrent streaming clients',
        yLabel: 'TTFT p50 (s)',
        xScale: 'log2',
        xTicks,
        series: ttft,
        valueDigits: 2,
      },
    ],
    legendNotes: notes,
    footnotes,
  };
}

export interface WrittenFiles {
  json: string;
  md: string;
  svg: string;
}

export function writeReport(dir: string, r: HttpBenchReport): { files: WrittenFiles; markdown: string } {
  mkdirSync(dir, { recursive: true });
  const base = `http-${r.meta.model.replace(/[^A-Za-z0-9._-]+/g, '_')}`;
  const files: WrittenFiles = { json: join(dir, `${base}.json`), md: join(dir, `${base}.md`), svg: join(dir, `${base}.svg`) };
  const svgName = `${base}.svg`;
  const markdown = `${markdownReport(r)}\n![HTTP benchmark chart](${svgName})\n`;
  writeFileSync(files.json, `${JSON.stringify(r, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
  writeFileSync(files.md, markdown);
  writeFileSync(files.svg, renderChart(chartSpec(r, svgName)));
  return { files, markdown };
}
