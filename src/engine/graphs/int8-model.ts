/**
 * The batched graph with its int4 projections run by onnxruntime's u8 x s8 integer GEMM: the path
 * for steps with many rows (prompt chunks, large batches). `MatMulNBits` with int4 weights reads
 * half the bytes and wins at a row or two; its kernel does not get faster per row as rows grow,
 * while the integer GEMM (VNNI, AMX) does.
 *
 * Each `MatMulNBits` becomes: per-row asymmetric u8 quantization of its input (one scale and zero
 * point per token, computed in the graph), `MatMulInteger` against the int8 weights (requantized
 * per output column from the export's int4 blocks, int8-weights.ts), and a rescale:
 *   y[r, n] = scale[r] * s[n] * (q[r] . w[n] - zp[r] * sum_k w[k, n])
 * (onnxruntime's MatMulInteger takes only one zero point per tensor, so the per-row zero point is
 * corrected after the product). Where the CPU lacks VNNI the weights are stored as u8 with a zero
 * point of 128 instead (cpu-features.ts: the s8 kernels saturate there). The int8 weights go to the
 * derived graph's own data file. The projections named in `keep` (the logits: a step asks for few
 * logit rows) stay int4.
 */
import onnxProto from 'onnx-proto';
import { DType, GraphBuilder, type NodeProto } from '../../onnx/graph.ts';
import { batchedDerivation, type BatchedIo } from './batched-model.ts';
import type { DataSink, Derivation, DerivationContext, ModelProto } from './derived-model.ts';
import { intAttribute, pruneDeadNodes, sortTopologically, type TensorProto } from './graph-edit.ts';
import type { IntegerWeights } from '../cpu-features.ts';
import { requantizeInt4 } from './int8-weights.ts';

const { onnx } = onnxProto;
const MS = 'com.microsoft';
const NS = '/model/int8';

interface QuantizedInput {
  q: string;
  scale: string;
  /** zero point * scale, per row. */
  zeroScale: string;
}

/** Makes an initializer of new weights: in a data file beside the derived graph, or inline. */
export type TensorStore = (name: string, dataType: number, dims: number[], bytes: Uint8Array) => TensorProto;

export function externalStore(sink: () => DataSink): TensorStore {
  return (name, dataType, dims, bytes) => externalTensor(sink(), name, dataType, dims, bytes);
}

export const inlineStore: TensorStore = (name, dataType, dims, bytes) => ({ name, dataType, dims, rawData: bytes });

function externalTensor(sink: DataSink, name: string, dataType: number, dims: number[], bytes: Uint8Array): TensorProto {
  const offset = sink.append(bytes);
  return {
    name,
    dataType,
    dims,
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: sink.location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(bytes.byteLength) },
    ],
  };
}

const bytesOf = (a: Float32Array | Int8Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Nodes quantizing `input` per row (over its last axis) to u8, with the scale and zero point. */
function quantizeRows(b: GraphBuilder, input: string, index: number): QuantizedInput {
  const p = `${NS}/quantize_${index}`;
  const c = (name: string) => `${NS}/${name}`;
  const high = b.op('Max', `${p}/Max`, [b.op('ReduceMax', `${p}/ReduceMax`, [input, c('last_axis')], { keepdims: 1 }), c('zero')]);
  const low = b.op('Min', `${p}/Min`, [b.op('ReduceMin', `${p}/ReduceMin`, [input, c('last_axis')], { keepdims: 1 }), c('zero')]);
  // The range holds 0, so the zero point is an integer in [0, 255] and 0 is exact.
  const scale = b.op('Max', `${p}/scale`, [b.op('Mul', `${p}/range`, [b.op('Sub', `${p}/Sub`, [high, low]), c('inv255')]), c('tiny')]);
  const zeroPoint = b.op('Round', `${p}/zero_point`, [b.op('Div', `${p}/Div_low`, [b.op('Neg', `${p}/Neg`, [low]), scale])]);
  const shifted = b.op('Add', `${p}/Add`, [b.op('Round', `${p}/Round`, [b.op('Div', `${p}/Div`, [input, scale])]), zeroPoint]);
  const q = b.op('Cast', `${p}/Cast`, [b.op('Clip', `${p}/Clip`, [shifted, c('zero'), c('u8_max')])], { to: DType.UINT8 });
  return { q, scale, zeroScale: b.op('Mul', `${p}/zero_scale`, [zeroPoint, scale]) };
}

function addConstants(b: GraphBuilder): void {
  b.constant(`${NS}/last_axis`, DType.INT64, [1], new BigInt64Array([-1n]));
  b.constant(`${NS}/zero`, DType.FLOAT, [], new Float32Array([0]));
  b.constant(`${NS}/u8_max`, DType.FLOAT, [], new Float32Array([255]));
  b.constant(`${NS}/inv255`, DType.FLOAT, [], new Float32Array([1 / 255]));
  b.constant(`${NS}/tiny`, DType.FLOAT, [], new Float32Array([1e-30]));
}

/**
 * Replaces every int4 MatMulNBits (but those producing `keep`) by the integer GEMM path;
 * `progress` gets the int8 weight bytes made so far after each projection.
 */
export function replaceWithIntegerMatMuls(
  model: ModelProto,
  read: DerivationContext['read'],
  store: TensorStore,
  keep: ReadonlySet<string>,
  weightType: IntegerWeights,
  progress?: DerivationContext['progress'],
): void {
  const graph = model.graph;
  if (!graph) throw new Error('model has no graph');
  const totalBytes = progress ? int8WeightBytes(model, keep) : 0;
  let doneBytes = 0;
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  const b = new GraphBuilder();
  addConstants(b);
  // MatMulInteger's optional inputs: no activation zero point (corrected after), the weights' 128.
  const weightZeroPoint = weightType === 'u8' ? ['', `${NS}/weight_zero_point`] : [];
  if (weightType === 'u8') b.initializers.push(inlineStore(`${NS}/weight_zero_point`, DType.UINT8, [], new Uint8Array([128])));
  const quantized = new Map<string, QuantizedInput>();
  const nodes: NodeProto[] = [];
  let replaced = 0;
  for (const node of graph.node ?? []) {
    const out = node.output?.[0] ?? '';
    if (node.opType !== 'MatMulNBits' || node.domain !== MS || keep.has(out)) {
      nodes.push(node);
      continue;
    }
    const [input = '', blobName = '', scalesName = '', ...extra] = node.input ?? [];
    const name = node.name ?? out;
    if (extra.some((x) => x !== '')) throw new Error(`${name}: MatMulNBits with zero points, g_idx or bias is not supported by the int8 path`);
    if (intAttribute(node, 'bits', 4) !== 4) throw new Error(`${name}: only 4-bit MatMulNBits can be requantized`);
    const k = intAttribute(node, 'K', 0);
    const n = intAttribute(node, 'N', 0);
    const blockSize = intAttribute(node, 'block_size', 0);
    const blob = inits.get(blobName);
    const scales = inits.get(scalesName);
    if (!blob || !scales || !k || !n || !blockSize) throw new Error(`${name}: weights are not constant initializers`);
    const scaleBytes = read(scales);
    const int8 = requantizeInt4(read(blob), new Float32Array(scaleBytes.buffer, scaleBytes.byteOffset, scaleBytes.byteLength / 4), k, n, blockSize);
    const p = `${name}/int8`;
    const correction = int8.columnSums.map((sum, i) => sum * int8.scales[i]);
    b.initializers.push(
      weightType === 'u8'
        ? store(`${p}/weights`, DType.UINT8, [k, n], bytesOf(int8.weights).map((v) => v ^ 0x80)) // two's complement + 128
        : store(`${p}/weights`, onnx.TensorProto.DataType.INT8, [k, n], bytesOf(int8.weights)),
      store(`${p}/scales`, DType.FLOAT, [n], bytesOf(int8.scales)),
      store(`${p}/correction`, DType.FLOAT, [n], bytesOf(correction)),
    );
    let act = quantized.get(input);
    if (!act) {
      act = quantizeRows(b, input, quantized.size);
      quantized.set(input, act);
    }
    const product = b.op('Cast', `${p}/Cast`, [b.op('MatMulInteger', `${p}/MatMulInteger`, [act.q, `${p}/weights`, ...weightZeroPoint])], { to: DType.FLOAT });
    const scaled = b.op('Mul', `${p}/Mul_product`, [product, b.op('Mul', `${p}/Mul_scales`, [act.scale, `${p}/scales`])]);
    b.node('Sub', [scaled, b.op('Mul', `${p}/Mul_correction`, [act.zeroScale, `${p}/correction`])], [out], {}, { name: `${p}/Sub` });
    nodes.push(...b.nodes.splice(0));
    replaced++;
    doneBytes += k * n;
    progress?.(doneBytes, totalBytes);
  }
  if (replaced === 0) throw new Error('no int4 MatMulNBits to requantize');
  graph.node = nodes;
  graph.initializer = [...(graph.initializer ?? []), ...b.initializers];
  sortTopologically(graph);
  pruneDeadNodes(graph);
}

/** Bytes of int8 weights the int8 graph of `model` would hold: K x N of every int4 projection but those producing `keep`. */
export function int8WeightBytes(model: ModelProto, keep: ReadonlySet<string>): number {
  let bytes = 0;
  for (const node of model.graph?.node ?? []) {
    if (node.opType === 'MatMulNBits' && node.domain === MS && !keep.has(node.output?.[0] ?? '')) bytes += intAttribute(node, 'K', 0) * intAttribute(node, 'N', 0);
  }
  return bytes;
}

/** The derived graph's variant name: each weight type gets its own file. */
export function int8Variant(weightType: IntegerWeights): string {
  return weightType === 'u8' ? 'batched-int8-u8' : 'batched-int8';
}

export function int8Derivation(io: BatchedIo, weightType: IntegerWeights): Derivation {
  const batched = batchedDerivation(io);
  return {
    variant: int8Variant(weightType),
    version: 1,
    rewrite: (model, ctx) => {
      batched.rewrite(model, ctx);
      replaceWithIntegerMatMuls(model, ctx.read, externalStore(ctx.data), new Set([io.logits]), weightType, ctx.progress);
    },
  };
}
