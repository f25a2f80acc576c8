/**
 * The onnxruntime-genai builder's CPU int4 decoder graph, node for node: tied fp32 Gather
 * embedding, (Skip)SimplifiedLayerNormalization, fused-QKV MatMulNBits, GroupQueryAttention with
 * in-kernel rotary (partial rotary via cache width, LongRoPE caches chosen by an If), SiLU-gated
 * MLP and an int4 lm_head over every position. Phi-3-family and Qwen2 models take the same
 * builder code (builders/base.py); Qwen2 differs only by its q/k/v biases, which the builder packs
 * into one `qkv_proj/Add` after the packed MatMulNBits (make_attention_input_proj), and by plain
 * RoPE, whose cos/sin caches are initializers in the external data file like every other tensor.
 */
import { DType, GraphBuilder, inlineTensor, valueInfo, type GraphProto, type WeightFiller } from '../onnx/graph.ts';
import type { ExternalDataWriter } from './external-data.ts';
import { familyOf, rotaryDim, type ModelShape } from './presets.ts';
import { int4Scales, jitteredFloats, quantizedTiedWeights, randomBytes, tensorKey, uniformAt, uniformFloats } from './weights.ts';

const MS = 'com.microsoft';

export const IO_NAMES = {
  inputIds: 'input_ids',
  attentionMask: 'attention_mask',
  pastKey: 'past_key_values.%d.key',
  pastValue: 'past_key_values.%d.value',
  logits: 'logits',
  presentKey: 'present.%d.key',
  presentValue: 'present.%d.value',
} as const;

export const nameAt = (pattern: string, layer: number): string => pattern.replace('%d', String(layer));

/** Rotary caches [rows, rotaryDim/2] as GroupQueryAttention reads them (cos/sin of position·freq). */
export function rotaryCaches(
  shape: ModelShape,
  rows: number,
  factors: number[] | undefined,
  mscale: number,
): { cos: Float32Array; sin: Float32Array } {
  const dim = rotaryDim(shape);
  const half = dim / 2;
  const invFreq = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    invFreq[i] = 1 / ((factors?.[i] ?? 1) * Math.pow(shape.ropeTheta, (2 * i) / dim));
  }
  const cos = new Float32Array(rows * half);
  const sin = new Float32Array(rows * half);
  for (let p = 0; p < rows; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * invFreq[i];
      cos[p * half + i] = Math.cos(angle) * mscale;
      sin[p * half + i] = Math.sin(angle) * mscale;
    }
  }
  return { cos, sin };
}

/** LongRoPE's magnitude correction, sqrt(1 + ln(scale)/ln(original context)). */
export function longRopeMscale(shape: ModelShape): number {
  const scale = shape.contextLength / shape.originalContextLength;
  return scale <= 1 ? 1 : Math.sqrt(1 + Math.log(scale) / Math.log(shape.originalContextLength));
}

function constantCacheBranch(name: string, suffix: string, rows: number, caches: { cos: Float32Array; sin: Float32Array }, width: number): GraphProto {
  const g = new GraphBuilder();
  const cosOut = `cos_cache_${suffix}`;
  const sinOut = `sin_cache_${suffix}`;
  g.node('Constant', [], [cosOut], { value: { tensor: inlineTensor('', DType.FLOAT, [rows, width], caches.cos) } }, { name: `/${suffix}/cos_cache/Constant` });
  g.node('Constant', [], [sinOut], { value: { tensor: inlineTensor('', DType.FLOAT, [rows, width], caches.sin) } }, { name: `/${suffix}/sin_cache/Constant` });
  return {
    name,
    node: g.nodes,
    output: [valueInfo(cosOut, DType.FLOAT, [rows, width]), valueInfo(sinOut, DType.FLOAT, [rows, width])],
  };
}

const rtnKeyName = (matMulName: string) => `${matMulName}.fp32`;
/** Uniform weights in [-a, a] with a = sqrt(3 / k) keep unit-variance activations unit-variance. */
const rtnAmplitude = (k: number) => Math.sqrt(3 / k);

/** The fp32 weights [n, k] (row-major) a `rtnWeights` model's MatMulNBits `name` quantizes. */
export function rtnFp32Weight(shape: ModelShape, name: string, k: number, n: number): Float32Array {
  const key = tensorKey(shape.seed, rtnKeyName(name));
  const amplitude = rtnAmplitude(k);
  const out = new Float32Array(n * k);
  for (let i = 0; i < out.length; i++) out[i] = uniformAt(key, i, amplitude);
  return out;
}

/** Multiplies the gains of the outlier channels (the filler covers the whole [H] vector). */
function withOutliers(fill: WeightFiller, outliers: ModelShape['outliers']): WeightFiller {
  if (!outliers) return fill;
  return (chunk, start) => {
    fill(chunk, start);
    const gains = new Float32Array(chunk.buffer, chunk.byteOffset, chunk.byteLength >>> 2);
    for (const c of outliers.channels) {
      const i = c - (start >>> 2);
      if (i >= 0 && i < gains.length) gains[i] *= outliers.factor;
    }
  };
}

/**
 * The cos/sin caches GroupQueryAttention reads: LongRoPE picks the long cache once the total
 * length passes the original context (an If over two constant branches); plain RoPE has one pair
 * of initializers. The genai builder saves every initializer as external data; the Phi presets
 * keep their plain caches inline (as their fixtures always had them), the Qwen2 family writes
 * them to model.onnx.data as its export does (2 x 4 MB at Qwen2.5's 32k context).
 */
function rotaryCacheInputs(g: GraphBuilder, shape: ModelShape, totalLen64: string): { cos: string; sin: string } {
  const width = rotaryDim(shape) / 2;
  const names = { cos: 'cos_cache', sin: 'sin_cache' };
  if (shape.longRope) {
    const mscale = longRopeMscale(shape);
    const short = rotaryCaches(shape, shape.originalContextLength, shape.longRope.shortFactor, mscale);
    const long = rotaryCaches(shape, shape.contextLength, shape.longRope.longFactor, mscale);
    const ns = '/model/rotemb_caches_subgraph';
    const threshold = g.constant(`${ns}/original_max_position_embeddings`, DType.INT64, [], new BigInt64Array([BigInt(shape.originalContextLength)]));
    const useLong = g.op('Greater', `${ns}/Greater`, [totalLen64, threshold]);
    g.node('If', [useLong], [names.cos, names.sin], {
      then_branch: constantCacheBranch('large_rotemb_caches_graph', 'large', shape.contextLength, long, width),
      else_branch: constantCacheBranch('small_rotemb_caches_graph', 'small', shape.originalContextLength, short, width),
    }, { name: `${ns}/If` });
    return names;
  }
  const caches = rotaryCaches(shape, shape.contextLength, undefined, 1);
  const dims = [shape.contextLength, width];
  for (const [name, data] of [[names.cos, caches.cos], [names.sin, caches.sin]] as const) {
    if (familyOf(shape) === 'phi3') g.initializers.push(inlineTensor(name, DType.FLOAT, dims, data));
    else g.weight(name, DType.FLOAT, dims, data.byteLength, floatsFrom(data));
  }
  return names;
}

/** A filler copying an array computed up front. */
function floatsFrom(data: Float32Array): WeightFiller {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return (chunk, start) => chunk.set(bytes.subarray(start, start + chunk.byteLength));
}

/**
 * The builder's make_add_bias: an Add named `name` whose bias initializer is the node name
 * without its leading slash, dots for slashes, plus `.bias` (model.layers.0.attn.qkv_proj.Add.bias).
 * Random biases of unit amplitude: large enough to move every attention score.
 */
function addBias(g: GraphBuilder, shape: ModelShape, name: string, input: string, size: number): string {
  const biasName = `${name.slice(1).replaceAll('/', '.')}.bias`;
  const bias = g.weight(biasName, DType.FLOAT, [size], size * 4, uniformFloats(tensorKey(shape.seed, biasName), 1));
  return g.op('Add', name, [input, bias]);
}

export function buildDecoderGraph(shape: ModelShape, external: ExternalDataWriter): GraphProto {
  const g = new GraphBuilder(external);
  const { hiddenSize: H, numHeads, numKvHeads, headSize, intermediateSize: F, vocabSize: V, blockSize } = shape;
  const key = (name: string) => tensorKey(shape.seed, name);
  const qkvSize = (numHeads + 2 * numKvHeads) * headSize;
  const attnSize = numHeads * headSize;

  // Inputs and outputs, with the export's dynamic axis names.
  const inputs = [
    valueInfo(IO_NAMES.inputIds, DType.INT64, ['batch_size', 'sequence_length']),
    valueInfo(IO_NAMES.attentionMask, DType.INT64, ['batch_size', 'total_sequence_length']),
  ];
  const outputs = [valueInfo(IO_NAMES.logits, DType.FLOAT, ['batch_size', 'sequence_length', V])];
  for (let i = 0; i < shape.numLayers; i++) {
    const kvShape = ['batch_size', numKvHeads, 'past_sequence_length', headSize];
    inputs.push(valueInfo(nameAt(IO_NAMES.pastKey, i), DType.FLOAT, kvShape));
    inputs.push(valueInfo(nameAt(IO_NAMES.pastValue, i), DType.FLOAT, kvShape));
    const presentShape = ['batch_size', numKvHeads, 'total_sequence_length', headSize];
    outputs.push(valueInfo(nameAt(IO_NAMES.presentKey, i), DType.FLOAT, presentShape));
    outputs.push(valueInfo(nameAt(IO_NAMES.presentValue, i), DType.FLOAT, presentShape));
  }

  // Attention-mask reformatting: seqlens_k = sum(mask) - 1 (int32), total_seq_len = mask.shape[1].
  const maskNs = '/model/attn_mask_reformat/attn_mask_subgraph';
  const one64 = g.constant(`${maskNs}/one`, DType.INT64, [], new BigInt64Array([1n]));
  const axis1 = g.constant(`${maskNs}/axes`, DType.INT64, [1], new BigInt64Array([1n]));
  const reduced = g.op('ReduceSum', `${maskNs}/ReduceSum`, [IO_NAMES.attentionMask, axis1], { keepdims: 0 });
  const minusOne = g.op('Sub', `${maskNs}/Sub`, [reduced, one64]);
  const seqlensK = g.op('Cast', `${maskNs}/Sub/Cast`, [minusOne], { to: DType.INT32 });
  const maskShape = g.op('Shape', `${maskNs}/Shape`, [IO_NAMES.attentionMask]);
  const totalLen64 = g.op('Gather', `${maskNs}/Gather`, [maskShape, one64], { axis: 0 });
  const totalSeqLen = g.op('Cast', `${maskNs}/Gather/Cast`, [totalLen64], { to: DType.INT32 });

  const { cos: cosCache, sin: sinCache } = rotaryCacheInputs(g, shape, totalLen64);

  // Tied embedding: fp32 table for Gather, and its int4 quantization as lm_head.
  const embedAmplitude = shape.logitStd * Math.sqrt(3 / H);
  const embedKey = key('model.embed_tokens.weight');
  const embedding = g.weight('model.embed_tokens.weight', DType.FLOAT, [V, H], V * H * 4, uniformFloats(embedKey, embedAmplitude));
  let hidden = g.op('Gather', '/model/embed_tokens/Gather', [embedding, IO_NAMES.inputIds], { axis: 0 });

  const matMulNBits = (name: string, input: string, k: number, n: number, opts: { weights?: { blob: WeightFiller; scales: WeightFiller }; output?: string } = {}): string => {
    const blocks = k / blockSize;
    const w = opts.weights ?? (shape.rtnWeights ? quantizedTiedWeights(key(rtnKeyName(name)), rtnAmplitude(k)) : { blob: randomBytes(key(`${name}.weight_Q4`)), scales: int4Scales(key(`${name}.weight_scales`), k, 1) });
    const b = g.weight(`${name}.weight_Q4`, DType.UINT8, [n, blocks, blockSize / 2], n * blocks * (blockSize / 2), w.blob);
    const s = g.weight(`${name}.weight_scales`, DType.FLOAT, [n * blocks], n * blocks * 4, w.scales);
    // model.layers.3.mlp.up_proj.MatMul -> /model/layers.3/mlp/up_proj/MatMul, as the builder names nodes.
    const nodeName = '/' + name.split(/\.(?=[a-zA-Z])/).join('/');
    const out = opts.output ?? `${nodeName}/output_0`;
    g.node('MatMulNBits', [input, b, s], [out], { K: k, N: n, bits: 4, block_size: blockSize, accuracy_level: shape.accuracyLevel }, { name: nodeName, domain: MS });
    return out;
  };
  const normWeight = (name: string) => g.weight(name, DType.FLOAT, [H], H * 4, withOutliers(jitteredFloats(key(name), 1, 0.1), shape.outliers));
  const skipNorm = (name: string, input: string, skip: string, weight: string): { out: string; residual: string } => {
    const out = `${name}/output_0`;
    const residual = `${name}/output_3`;
    g.node('SkipSimplifiedLayerNormalization', [input, skip, weight], [out, '', '', residual], { epsilon: { float: shape.rmsNormEps } }, { name, domain: MS });
    return { out, residual };
  };

  let residual = hidden;
  let pendingSkip: string | undefined;
  for (let i = 0; i < shape.numLayers; i++) {
    const p = `model.layers.${i}`;
    const np = `/model/layers.${i}`;
    let normed: string;
    const inNorm = normWeight(`${p}.input_layernorm.weight`);
    if (pendingSkip === undefined) {
      normed = g.op('SimplifiedLayerNormalization', `${np}/input_layernorm/LayerNorm`, [hidden, inNorm], { axis: -1, epsilon: { float: shape.rmsNormEps }, stash_type: 1 });
    } else {
      const r = skipNorm(`${np}/input_layernorm/SkipLayerNorm`, pendingSkip, residual, inNorm);
      normed = r.out;
      residual = r.residual;
    }

    let qkv = matMulNBits(`${p}.attn.qkv_proj.MatMul`, normed, H, qkvSize);
    if (shape.qkvBias) qkv = addBias(g, shape, `${np}/attn/qkv_proj/Add`, qkv, qkvSize);
    const gqaName = `${np}/attn/GroupQueryAttention`;
    const attnOut = `${gqaName}/output_0`;
    g.node('GroupQueryAttention', [qkv, '', '', nameAt(IO_NAMES.pastKey, i), nameAt(IO_NAMES.pastValue, i), seqlensK, totalSeqLen, cosCache, sinCache],
      [attnOut, nameAt(IO_NAMES.presentKey, i), nameAt(IO_NAMES.presentValue, i)], {
        num_heads: numHeads,
        kv_num_heads: numKvHeads,
        scale: { float: 1 / Math.sqrt(headSize) },
        do_rotary: 1,
        rotary_interleaved: 0,
        local_window_size: -1,
        softcap: { float: 0 },
      }, { name: gqaName, domain: MS });
    const oProj = matMulNBits(`${p}.attn.o_proj.MatMul`, attnOut, attnSize, H);

    const post = skipNorm(`${np}/post_attention_layernorm/SkipLayerNorm`, oProj, residual, normWeight(`${p}.post_attention_layernorm.weight`));
    residual = post.residual;
    const gate = matMulNBits(`${p}.mlp.gate_proj.MatMul`, post.out, H, F);
    const up = matMulNBits(`${p}.mlp.up_proj.MatMul`, post.out, H, F);
    const sig = g.op('Sigmoid', `${np}/mlp/act_fn/Sigmoid`, [gate]);
    const silu = g.op('Mul', `${np}/mlp/act_fn/Mul`, [gate, sig]);
    const gated = g.op('Mul', `${np}/mlp/Mul`, [silu, up]);
    pendingSkip = matMulNBits(`${p}.mlp.down_proj.MatMul`, gated, F, H);
    hidden = pendingSkip;
  }

  const finalNorm = skipNorm(`/model/layers.${shape.numLayers}/final_norm_layernorm/SkipLayerNorm`, hidden, residual, normWeight('model.norm.weight'));
  matMulNBits('lm_head.MatMul', finalNorm.out, H, V, { weights: quantizedTiedWeights(embedKey, embedAmplitude), output: IO_NAMES.logits });

  return { name: 'main_graph', node: g.nodes, initializer: g.initializers, input: inputs, output: outputs };
}
