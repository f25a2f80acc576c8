/**
 * Where the int8 path starts to beat the int4 path on this machine, measured at load on one
 * layer's projections (the export's layer-0 int4 weights and their int8 requantization, in small
 * in-memory graphs): the step-row counts from which the integer GEMM is faster. CPUs differ a
 * lot here (AMX, VNNI only, AVX2), so the crossover is measured, not assumed.
 */
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import onnxProto from 'onnx-proto';
import ort from 'onnxruntime-node';
import type { GraphProto, NodeProto } from '../onnx/graph.ts';
import { tensorReader } from './graphs/derived-model.ts';
import type { IntegerWeights } from './cpu-features.ts';
import { inlineStore, replaceWithIntegerMatMuls } from './graphs/int8-model.ts';
import { intAttribute } from './graphs/graph-edit.ts';

const { onnx } = onnxProto;

export interface Int8Calibration {
  rows: number[];
  int4Ms: number[];
  int8Ms: number[];
  /** The fewest rows from which int8 was faster by MARGIN at every count measured; undefined: never. */
  minRows: number | undefined;
}

/**
 * How much faster one layer's projections must be on int8 for a whole step to be: the rest of the
 * step (attention, norms, the int4 lm_head, the activations' quantization) does not speed up, and a
 * step of 4 sequences measured slower on int8 here where one layer measured 14% faster.
 */
const MARGIN = 1.25;

const ROWS = [1, 2, 4, 8, 16, 32, 64, 128];
const RUNS = 3;

/** The first layer's int4 projections, each fed by an input of its own, with inline weights. */
function layerGraph(modelPath: string): onnxProto.onnx.ModelProto {
  const model = onnx.ModelProto.decode(readFileSync(modelPath));
  const graph = model.graph as GraphProto;
  const read = tensorReader(dirname(modelPath));
  const all = (graph.node ?? []).filter((n) => n.opType === 'MatMulNBits');
  const layer0 = all.filter((n) => /layers\.0\//.test(n.name ?? ''));
  const nodes: NodeProto[] = (layer0.length > 0 ? layer0 : all.slice(0, 5)).map((n, i) => ({ ...n, input: [`x${i}`, ...(n.input ?? []).slice(1)], output: [`y${i}`] }));
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  const weights = nodes.flatMap((n) => (n.input ?? []).slice(1).filter((x) => x !== '')).map((name) => {
    const t = inits.get(name);
    if (!t) throw new Error(`initializer ${name} not found`);
    return { name, dataType: t.dataType, dims: t.dims, rawData: read(t) };
  });
  const tensor = (name: string, dims: (number | string)[]) => ({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  });
  const mini: GraphProto = {
    name: 'layer',
    node: nodes,
    initializer: weights,
    input: nodes.map((n, i) => tensor(`x${i}`, [1, 'rows', intAttribute(n, 'K', 0)])),
    output: nodes.map((n, i) => tensor(`y${i}`, [1, 'rows', intAttribute(n, 'N', 0)])),
  };
  return onnx.ModelProto.create({ irVersion: model.irVersion, opsetImport: model.opsetImport, graph: mini });
}

async function timeRows(session: ort.InferenceSession, ks: number[], rows: number): Promise<number> {
  const feeds: Record<string, ort.Tensor> = {};
  ks.forEach((k, i) => {
    const data = new Float32Array(rows * k);
    for (let j = 0; j < data.length; j++) data[j] = Math.sin(j * 12.9898) * 2;
    feeds[`x${i}`] = new ort.Tensor('float32', data, [1, rows, k]);
  });
  const samples: number[] = [];
  for (let run = 0; run <= RUNS; run++) {
    const t0 = performance.now();
    await session.run(feeds);
    if (run > 0) samples.push(performance.now() - t0);
  }
  return samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)];
}

export async function calibrateInt8(modelPath: string, options: ort.InferenceSession.SessionOptions, weightType: IntegerWeights): Promise<Int8Calibration> {
  const int4 = layerGraph(modelPath);
  const ks = (int4.graph?.input ?? []).map((i) => Number(i.type?.tensorType?.shape?.dim?.[2]?.dimValue));
  const int8 = onnx.ModelProto.decode(onnx.ModelProto.encode(int4).finish());
  replaceWithIntegerMatMuls(int8, (t) => Uint8Array.from(t.rawData ?? []), inlineStore, new Set(), weightType);
  const s4 = await ort.InferenceSession.create(onnx.ModelProto.encode(int4).finish(), options);
  const s8 = await ort.InferenceSession.create(onnx.ModelProto.encode(int8).finish(), options);
  try {
    const int4Ms: number[] = [];
    const int8Ms: number[] = [];
    for (const rows of ROWS) {
      int4Ms.push(await timeRows(s4, ks, rows));
      int8Ms.push(await timeRows(s8, ks, rows));
    }
    let minRows: number | undefined;
    for (let i = ROWS.length - 1; i >= 0 && int8Ms[i] * MARGIN < int4Ms[i]; i--) minRows = ROWS[i];
    return { rows: ROWS, int4Ms, int8Ms, minRows };
  } finally {
    await s4.release();
    await s8.release();
  }
}
