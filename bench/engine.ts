/**
 * npm run bench:engine [-- --preset phi4-mini-shape --decode 32 --threads 2 --baseline DIR --rounds 2]
 *
 * One run, on the same model file and session options:
 *  - bare: a plain onnxruntime-node loop (present fed back as past, argmax), no engine;
 *  - engine, in-place KV: our Engine on the export's own attention, one sequence at a time
 *    (onnxruntime-node copies the KV buffers out whole after every step);
 *  - engine, batched graph (the default): KV blocks as inputs, only new KV rows come back;
 *  - with --baseline DIR: the Engine of another checkout of this project (e.g. the last release),
 *    so a change is measured against it in the same run;
 *  - with --int8 off,auto (or on): the batched engine once per int8 mode, int8 steps against int4;
 *  - the step-cost curve: ms per model step against the tokens it carries (decode steps of 1..16
 *    sequences, and prompt chunks riding along with two), on the batched graph directly, per int8 mode.
 * Engines run single-stream generations (prefill tok/s at 128 and 2,048-token prompts, decode
 * tok/s at 128 and 2,048 context), alternating over --rounds; each figure is the median of its
 * rounds. Absolute numbers drift between runs and machines; compare the ratios of one run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { Engine } from '../src/engine/engine.ts';
import { loadModelConfig } from '../src/engine/model-config.ts';
import { DEFAULT_SAMPLING, type GenerationRequest, type Int8Steps, type KvUpdate } from '../src/engine/types.ts';
import { ensureSyntheticModel } from '../src/synthetic/ensure.ts';
import { isPresetName } from '../src/synthetic/presets.ts';
import { stepCurve } from './lib/step-curve.ts';

const { values } = parseArgs({
  options: {
    preset: { type: 'string', default: 'phi4-mini-shape' },
    'model-dir': { type: 'string' },
    decode: { type: 'string', default: '32' },
    threads: { type: 'string', default: String(availableParallelism()) },
    contexts: { type: 'string', default: '128,2048' },
    'kv-modes': { type: 'string', default: 'in-place,batched' },
    int8: { type: 'string', default: 'off' },
    baseline: { type: 'string' },
    rounds: { type: 'string', default: '1' },
    curve: { type: 'string', default: '1,2,4,8,16' },
    'curve-context': { type: 'string', default: '128' },
    'skip-curve': { type: 'boolean', default: false },
  },
});
const rounds = Math.max(1, Number(values.rounds));
const preset = values.preset;
if (!isPresetName(preset)) throw new Error(`unknown preset ${preset}`);
const modelDir = values['model-dir'] ?? join('models', preset);
const decodeTokens = Number(values.decode);
// Both contenders get the same explicit count: onnxruntime-node's own default (0) ran on one of two cores here.
const threads = Number(values.threads) || availableParallelism();
const contexts = values.contexts.split(',').map(Number);
const kvModes = values['kv-modes'].split(',').map((m) => {
  if (m !== 'in-place' && m !== 'batched') throw new Error(`unknown KV mode ${m}`);
  return m;
});

const gb = (n: number) => (n / 1024 ** 3).toFixed(2);
if (!values['model-dir']) {
  let last = -1;
  await ensureSyntheticModel(preset, modelDir, (w, t) => {
    const pct = Math.floor((100 * w) / t);
    if (pct !== last && pct % 10 === 0) console.log(`building ${preset}: ${pct}% (${gb(w)} / ${gb(t)} GiB)`);
    last = pct;
  });
}

const cfg = loadModelConfig(modelDir);
const { info, io } = cfg;
const promptOf = (n: number) => Array.from({ length: n }, (_, i) => 1000 + ((i * 7919) % 150000));

interface Row {
  context: number;
  prefillTokS: number;
  decodeTokS: number;
}

let peakRss = 0;
const sampleRss = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);

/** The loop anyone would write first: run, argmax, feed presents back as pasts. */
async function bareLoop(): Promise<{ loadMs: number; rows: Row[] }> {
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(cfg.modelPath, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const loadMs = performance.now() - t0;
  const rows: Row[] = [];
  for (const context of contexts) {
    let past: Record<string, ort.Tensor> = {};
    for (let l = 0; l < info.numLayers; l++) {
      const empty = new ort.Tensor('float32', new Float32Array(0), [1, info.numKvHeads, 0, info.headSize]);
      past[io.pastKey(l)] = empty;
      past[io.pastValue(l)] = empty;
    }
    let ids = promptOf(context);
    let total = 0;
    let prefillMs = 0;
    const tDecode: number[] = [];
    for (let step = 0; step <= decodeTokens; step++) {
      total += ids.length;
      const feeds: Record<string, ort.Tensor> = {
        ...past,
        [io.inputIds]: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
        [io.attentionMask]: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
      };
      const t = performance.now();
      const out = await session.run(feeds);
      const logits = out[io.logits].data as Float32Array;
      const last = logits.subarray(logits.length - info.vocabSize);
      let best = 0;
      for (let i = 1; i < last.length; i++) if (last[i] > last[best]) best = i;
      const ms = performance.now() - t;
      if (step === 0) prefillMs = ms;
      else tDecode.push(ms);
      past = {};
      for (let l = 0; l < info.numLayers; l++) {
        past[io.pastKey(l)] = out[io.presentKey(l)];
        past[io.pastValue(l)] = out[io.presentValue(l)];
      }
      ids = [best];
    }
    const decodeMs = tDecode.reduce((a, b) => a + b, 0);
    rows.push({ context, prefillTokS: (context / prefillMs) * 1000, decodeTokS: (tDecode.length / decodeMs) * 1000 });
    console.log(`bare   ctx ${context}: prefill ${rows.at(-1)!.prefillTokS.toFixed(1)} tok/s, decode ${rows.at(-1)!.decodeTokS.toFixed(2)} tok/s`);
  }
  await session.release();
  return { loadMs, rows };
}

/** What the contenders share of the Engine API (this checkout's or another's). */
interface EngineLike {
  generate(req: GenerationRequest): AsyncIterable<{ type: string; finishReason?: string; error?: string; timings?: { prefillMs: number; decodeMs: number; overheadMsPerToken: number } }>;
  close(): Promise<void>;
}

interface Contender {
  label: string;
  load: () => Promise<EngineLike>;
}

/** The batched engine once per --int8 mode (int8 steps measured against int4 steps in the same run). */
const int8Modes = values.int8.split(',').map((m): Int8Steps => {
  if (m !== 'off' && m !== 'auto' && m !== 'on') throw new Error(`unknown --int8 mode ${m}`);
  return m;
});
const engineModes = kvModes.flatMap((kvUpdate): { kvUpdate: KvUpdate; int8Steps: Int8Steps }[] =>
  kvUpdate === 'batched' ? int8Modes.map((int8Steps) => ({ kvUpdate, int8Steps })) : [{ kvUpdate, int8Steps: 'off' }],
);
const contenders: Contender[] = engineModes.map(({ kvUpdate, int8Steps }) => ({
  label: `engine, ${kvUpdate}${kvUpdate === 'batched' && int8Modes.length > 1 ? `, int8 ${int8Steps}` : ''}`,
  load: async () => {
    const engine = await Engine.load({ modelDir, threads, kvUpdate, int8Steps });
    if (engine.session.kvUpdate !== kvUpdate) throw new Error(`engine runs ${engine.session.kvUpdate}: ${engine.session.kvNote ?? ''}`);
    const i8 = engine.session.int8;
    if (int8Steps !== 'off') console.log(`int8 ${int8Steps}: ${i8.enabled ? `steps of ${i8.minRows}+ rows` : 'off'} (${i8.note ?? ''})`);
    if (i8.calibration) console.log(`  calibration (rows: int4 / int8 ms): ${i8.calibration.rows.map((r, i) => `${r}: ${i8.calibration!.int4Ms[i].toFixed(2)} / ${i8.calibration!.int8Ms[i].toFixed(2)}`).join(', ')}`);
    return engine;
  },
}));
if (values.baseline) {
  const dir = resolve(values.baseline);
  contenders.unshift({
    label: `baseline (${basename(dir)})`,
    load: async () => {
      const mod = (await import(pathToFileURL(join(dir, 'src/engine/engine.ts')).href)) as { Engine: { load(o: { modelDir: string; threads: number }): Promise<EngineLike> } };
      return mod.Engine.load({ modelDir: resolve(modelDir), threads });
    },
  });
}

async function engineLoop(c: Contender): Promise<{ loadMs: number; rows: Row[]; overheadMs: number[] }> {
  const t0 = performance.now();
  const engine = await c.load();
  const loadMs = performance.now() - t0;
  const rows: Row[] = [];
  const overheadMs: number[] = [];
  try {
    for (const context of contexts) {
      const promptIds = promptOf(context);
      // logit_bias keeps eos away so every run decodes the full count.
      const logitBias = new Map(info.eosTokenIds.map((id) => [id, -100]));
      for await (const e of engine.generate({ promptIds, maxTokens: decodeTokens + 1, sampling: { ...DEFAULT_SAMPLING, temperature: 0, logitBias } })) {
        if (e.type !== 'done' || !e.timings) continue;
        if (e.finishReason !== 'length') throw new Error(`engine run ended with ${e.finishReason}: ${e.error ?? ''}`);
        rows.push({ context, prefillTokS: (context / e.timings.prefillMs) * 1000, decodeTokS: (decodeTokens / e.timings.decodeMs) * 1000 });
        overheadMs.push(e.timings.overheadMsPerToken);
      }
      console.log(`${c.label} ctx ${context}: prefill ${rows.at(-1)!.prefillTokS.toFixed(1)} tok/s, decode ${rows.at(-1)!.decodeTokS.toFixed(2)} tok/s`);
    }
  } finally {
    await engine.close();
  }
  return { loadMs, rows, overheadMs };
}

const bare = await bareLoop();
const bareRss = peakRss;
const runs = new Map<string, { loadMs: number; rows: Row[]; overheadMs: number[]; rss: number }[]>();
for (let round = 0; round < rounds; round++) {
  for (const c of contenders) {
    peakRss = 0;
    const run = await engineLoop(c);
    runs.set(c.label, [...(runs.get(c.label) ?? []), { ...run, rss: peakRss }]);
  }
}
clearInterval(sampleRss);
const med = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const h = (s.length - 1) / 2;
  return (s[Math.floor(h)] + s[Math.ceil(h)]) / 2;
};
/** Each contender's figures: the median over its rounds. */
const engines = contenders.map((c) => {
  const rs = runs.get(c.label)!;
  return {
    label: c.label,
    loadMs: med(rs.map((r) => r.loadMs)),
    rss: Math.max(...rs.map((r) => r.rss)),
    rows: contexts.map((context, i) => ({ context, prefillTokS: med(rs.map((r) => r.rows[i].prefillTokS)), decodeTokS: med(rs.map((r) => r.rows[i].decodeTokS)) })),
    overheadMs: contexts.map((_, i) => med(rs.map((r) => r.overheadMs[i]))),
    rounds: rs.map((r) => r.rows.map((row) => ({ prefill: +row.prefillTokS.toFixed(2), decode: +row.decodeTokS.toFixed(3) }))),
  };
});
const curvePoints = values['skip-curve']
  ? []
  : [...values.curve.split(',').map((n) => ({ decode: Number(n), prefill: 0 })), { decode: 2, prefill: 8 }, { decode: 2, prefill: 16 }, { decode: 0, prefill: 128 }];
const curves: { int8: string; points: Awaited<ReturnType<typeof stepCurve>> }[] = [];
for (const int8 of curvePoints.length > 0 ? int8Modes : []) {
  const points = await stepCurve(modelDir, threads, curvePoints, Number(values['curve-context']), int8);
  for (const p of points) console.log(`step (int8 ${int8}): ${p.decode} decoding + ${p.prefill} prompt tokens: ${p.ms.toFixed(1)} ms (${p.tokS.toFixed(2)} tok/s)`);
  curves.push({ int8, points });
}

const best = engines.at(-1)!;
const lines = [
  `## Engine benchmark — ${preset} (${info.numLayers} layers, hidden ${info.hiddenSize}), ${new Date().toISOString().slice(0, 10)}`,
  '',
  `threads: ${threads}; decode tokens per run: ${decodeTokens}; one run, same model file; the ratio compares the last engine column with the bare loop.`,
  '',
  `| metric | bare ORT loop | ${engines.map((e) => e.label).join(' | ')} | ${best.label} / bare |`,
  `|---|---|${engines.map(() => '---|').join('')}---|`,
  `| load (s) | ${(bare.loadMs / 1000).toFixed(1)} | ${engines.map((e) => (e.loadMs / 1000).toFixed(1)).join(' | ')} | |`,
  `| peak RSS of this process (GiB) | ${gb(bareRss)} | ${engines.map((e) => `${gb(e.rss)} (worker inside)`).join(' | ')} | |`,
];
for (const [i, context] of contexts.entries()) {
  const b = bare.rows[i];
  const cells = (f: (r: Row) => number, digits: number) => engines.map((e) => f(e.rows[i]).toFixed(digits)).join(' | ');
  lines.push(`| prefill tok/s, ${context}-token prompt | ${b.prefillTokS.toFixed(1)} | ${cells((r) => r.prefillTokS, 1)} | ${(best.rows[i].prefillTokS / b.prefillTokS).toFixed(2)}x |`);
  lines.push(`| decode tok/s at ${context} context | ${b.decodeTokS.toFixed(2)} | ${cells((r) => r.decodeTokS, 2)} | ${(best.rows[i].decodeTokS / b.decodeTokS).toFixed(2)}x |`);
  lines.push(`| engine work outside session.run per decode step (ms), ${context} ctx | | ${engines.map((e) => e.overheadMs[i].toFixed(3)).join(' | ')} | |`);
}
if (values.baseline) {
  const base = engines[0];
  for (const [i, context] of contexts.entries()) {
    lines.push(`| ${best.label} / baseline, decode at ${context} context | | | ${(best.rows[i].decodeTokS / base.rows[i].decodeTokS).toFixed(3)}x |`);
    lines.push(`| ${best.label} / baseline, prefill ${context}-token prompt | | | ${(best.rows[i].prefillTokS / base.rows[i].prefillTokS).toFixed(3)}x |`);
  }
}
if (curves.length > 0) {
  const one = curves[0].points.find((p) => p.decode === 1 && p.prefill === 0);
  lines.push('', `Step-cost curve (batched graph, ${values['curve-context']} positions of context, median of 5 steps; int8 ${curves.map((c) => c.int8).join(' / ')}):`, '');
  lines.push(`| decoding sequences | prompt tokens riding along | ms per step (${curves.map((c) => `int8 ${c.int8}`).join(' / ')}) | tokens/s if every step were this | x a one-token step |`, '|---|---|---|---|---|');
  curves[0].points.forEach((p, i) => {
    const cell = (f: (q: (typeof p)) => string) => curves.map((c) => f(c.points[i])).join(' / ');
    lines.push(`| ${p.decode} | ${p.prefill} | ${cell((q) => q.ms.toFixed(1))} | ${cell((q) => q.tokS.toFixed(2))} | ${one ? (p.ms / one.ms).toFixed(2) : ''} |`);
  });
}
const table = lines.join('\n');
console.log(`\n${table}\n`);
mkdirSync('bench/results', { recursive: true });
writeFileSync(join('bench/results', `engine-${preset}.md`), table + '\n');
writeFileSync(join('bench/results', `engine-${preset}.json`), JSON.stringify({ preset, threads, decodeTokens, rounds, bare, bareRss, engines, curves }, null, 2) + '\n');
