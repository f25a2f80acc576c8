/**
 * The batched graph: one model step over many sequences. The export runs one sequence, computes
 * attention with GroupQueryAttention over a KV buffer it also returns whole (onnxruntime-node then
 * copies it out after every step), and projects every position onto the vocabulary.
 *
 * Here the step's tokens are flattened into rows [1, N, hidden]: first one row per decoding
 * sequence (the decode batch, in slot order), then the prompt chunk of at most one prefilling
 * sequence. The dense work (projections, MLP, norms) runs once over all rows. Each
 * GroupQueryAttention node becomes two attentions over plain ops:
 * - the decode batch reads one KV block of B slots, [B, kv_heads, capacity, head_size] (values
 *   transposed, [B, kv_heads, head_size, capacity]), where slot b holds sequence b and every
 *   position at or past its `decode_past_lengths[b]` is masked;
 * - the prefill chunk reads its sequence's own KV buffer [1, kv_heads, capacity, head_size] with
 *   `prefill_past_length` positions written, causal within the chunk.
 * KV buffers are plain inputs (wrapped by onnxruntime-node without a copy) and the graph returns
 * only the keys and values of the step's new rows; the engine writes them into its buffers.
 * `logits_indices` picks the rows whose logits are wanted: lm_head runs on those only.
 */
import onnxProto from 'onnx-proto';
import { DType, GraphBuilder, type GraphProto, type NodeProto } from '../../onnx/graph.ts';
import type { Derivation, ModelProto } from './derived-model.ts';
import { EMBEDDING_METADATA_KEY, moveEmbeddingOutOfGraph } from './embedding-input.ts';
import { declaredDim, floatAttribute, intAttribute, pruneDeadNodes, sortTopologically } from './graph-edit.ts';
import { rotaryTables, type RopeSwitch, type RotaryTables } from './rotary-tables.ts';

const { onnx } = onnxProto;
const MS = 'com.microsoft';
/** Additive mask value: finite so that a fully masked row could never turn into NaN. */
const MASKED = -3.4028234663852886e38;
const NS = '/model/batched';

export const BATCHED_INPUTS = {
  /** [1, N] int64: the row of the rotary table for each token (position, plus LongRoPE's offset). */
  positionIds: 'position_ids',
  /** [B] int64: positions already in each decode slot. */
  decodePastLengths: 'decode_past_lengths',
  /** [1] int64: positions already in the prefilling sequence's buffer. */
  prefillPastLength: 'prefill_past_length',
  /** [R] int64: rows whose logits the step returns, in that order. */
  logitsIndices: 'logits_indices',
} as const;

export const BATCHED_METADATA_KEY = 'phi4_server.batched';

/** What the engine must know to feed the graph, recorded in the derived file's metadata. */
export interface BatchedGraphInfo {
  /** LongRoPE's switch to the long cache, when the export has one. */
  ropeSwitch?: RopeSwitch;
}

/** Name of the output carrying a present output's new rows only. */
export function newRowsName(presentName: string): string {
  return `${presentName}.new`;
}

/** Name of the prefilling sequence's KV input beside a decode-batch KV input. */
export function prefillInputName(pastName: string): string {
  return `${pastName}.prefill`;
}

export interface BatchedIo {
  inputIds: string;
  logits: string;
  /** The model's context length (genai_config.json): a sliding window at least this wide never slides. */
  contextLength?: number;
}

const HANDLED_ATTRIBUTES = new Set(['num_heads', 'kv_num_heads', 'scale', 'do_rotary', 'rotary_interleaved', 'local_window_size', 'softcap', 'smooth_softmax']);

/**
 * Throws when the node uses a feature the rewrite does not reproduce, so the caller keeps the
 * export's attention. The builder writes config.json's `sliding_window` as `local_window_size`
 * even when the model does not use it (Qwen2 configs saved by transformers before 4.44 carry
 * `sliding_window: 32768` with `use_sliding_window: false`); a window as wide as the context never
 * drops a position, so it is full attention.
 */
function checkSupported(node: NodeProto, contextLength = Infinity): void {
  const name = node.name ?? 'GroupQueryAttention';
  for (const a of node.attribute ?? []) {
    if (!HANDLED_ATTRIBUTES.has(a.name ?? '')) throw new Error(`${name}: attribute ${a.name} is not supported by the batched rewrite`);
  }
  const window = intAttribute(node, 'local_window_size', -1);
  if (window !== -1 && window < contextLength) throw new Error(`${name}: sliding-window attention is not supported by the batched rewrite`);
  if (floatAttribute(node, 'softcap', 0) !== 0) throw new Error(`${name}: softcap is not supported by the batched rewrite`);
  if (intAttribute(node, 'smooth_softmax', 0) !== 0) throw new Error(`${name}: smooth_softmax is not supported by the batched rewrite`);
}

/** Builds nodes into `b`, with one initializer per distinct int64 constant. */
class Ops {
  private readonly constants = new Set<string>();
  readonly zero: string;
  readonly one: string;
  readonly zeroF: string;
  readonly maskedF: string;

  constructor(readonly b: GraphBuilder) {
    this.zero = this.i64('zero', [0n], []);
    this.one = this.i64('one', [1n], []);
    this.zeroF = b.constant(`${NS}/zero_f`, DType.FLOAT, [], new Float32Array([0]));
    this.maskedF = b.constant(`${NS}/masked_f`, DType.FLOAT, [], new Float32Array([MASKED]));
  }

  i64(name: string, values: bigint[], dims: number[] = [values.length]): string {
    const full = `${NS}/${name}`;
    if (!this.constants.has(full)) this.b.constant(full, DType.INT64, dims, new BigInt64Array(values));
    this.constants.add(full);
    return full;
  }

  shape(dims: number[]): string {
    return this.i64(`shape_${dims.join('x').replace(/-/g, 'm')}`, dims.map(BigInt));
  }

  axes(...axes: number[]): string {
    return this.i64(`axes_${axes.join('_')}`, axes.map(BigInt));
  }

  /** Dimension `axis` of `tensor` as an int64 scalar. */
  dim(tensor: string, axis: number, name: string): string {
    return this.b.op('Gather', `${NS}/${name}/Gather`, [this.b.op('Shape', `${NS}/${name}/Shape`, [tensor]), this.i64(`index_${axis}`, [BigInt(axis)], [])], { axis: 0 });
  }

  /** A 1-D int64 tensor from int64 scalars in the graph and numbers known now (for Expand and Slice bounds). */
  vector(name: string, items: (string | number)[]): string {
    const parts = items.map((x, i) => (typeof x === 'number' ? this.shape([x]) : this.b.op('Unsqueeze', `${name}/Unsqueeze_${i}`, [x, this.axes(0)])));
    return parts.length === 1 ? parts[0] : this.b.op('Concat', `${name}/Concat`, parts, { axis: 0 });
  }

  /** x[start:end] along `axis`; start and end are int64 scalars. */
  slice(name: string, x: string, start: string, end: string, axis: number): string {
    return this.b.op('Slice', `${name}/Slice`, [x, this.vector(`${name}/starts`, [start]), this.vector(`${name}/ends`, [end]), this.axes(axis)]);
  }
}

/** Step-wide values every layer reads. */
interface StepValues {
  /** Scalars: rows in the step, decode slots, prefill rows. */
  rows: string;
  slots: string;
  prefillRows: string;
  decodeCapacity: string;
  prefillCapacity: string;
  /** [B, capacity] additive mask of the decode batch's past. */
  decodeMask: string;
  /** [capacity, 1] additive mask of the prefilling sequence's past (a column over its queries). */
  prefillPastMask: string;
  /** [S, S] additive causal mask of the chunk: masked where a key comes after its query. */
  causalMask: string;
}

function stepValues(o: Ops, firstQuery: string, firstPastKey: string): StepValues {
  const b = o.b;
  const rows = o.dim(firstQuery, 1, 'rows');
  const slots = o.dim(BATCHED_INPUTS.decodePastLengths, 0, 'slots');
  const prefillRows = b.op('Sub', `${NS}/prefill_rows/Sub`, [rows, slots]);
  const decodeCapacity = o.dim(firstPastKey, 2, 'decode_capacity');
  const prefillCapacity = o.dim(prefillInputName(firstPastKey), 2, 'prefill_capacity');
  const masked = (name: string, visible: string) => b.op('Where', `${NS}/${name}/Where`, [visible, o.zeroF, o.maskedF]);
  const range = (name: string, n: string) => b.op('Range', `${NS}/${name}/Range`, [o.zero, n, o.one]);

  // [B, capacity]: position p of slot b is visible while p < decode_past_lengths[b].
  const decodeMask = masked('decode_mask', b.op('Less', `${NS}/decode_mask/Less`, [
    b.op('Unsqueeze', `${NS}/decode_mask/Unsqueeze_positions`, [range('decode_mask', decodeCapacity), o.axes(0)]),
    b.op('Unsqueeze', `${NS}/decode_mask/Unsqueeze_lengths`, [BATCHED_INPUTS.decodePastLengths, o.axes(1)]),
  ]));
  const prefillPast = b.op('Squeeze', `${NS}/prefill_past/Squeeze`, [BATCHED_INPUTS.prefillPastLength, o.axes(0)]);
  const prefillPastMask = b.op('Unsqueeze', `${NS}/prefill_mask/Unsqueeze`, [
    masked('prefill_mask', b.op('Less', `${NS}/prefill_mask/Less`, [range('prefill_mask', prefillCapacity), prefillPast])),
    o.axes(1),
  ]);
  const chunk = range('causal_mask', prefillRows);
  const causalMask = masked('causal_mask', b.op('LessOrEqual', `${NS}/causal_mask/LessOrEqual`, [
    b.op('Unsqueeze', `${NS}/causal_mask/Unsqueeze_keys`, [chunk, o.axes(1)]),
    b.op('Unsqueeze', `${NS}/causal_mask/Unsqueeze_queries`, [chunk, o.axes(0)]),
  ]));
  return { rows, slots, prefillRows, decodeCapacity, prefillCapacity, decodeMask, prefillPastMask, causalMask };
}

/**
 * Masks expanded once per step to the scores' full shape: broadcasting a mask over a short last
 * axis took ORT's slow broadcast path (12 ms a step at 2,048 positions).
 */
class ExpandedMasks {
  private readonly cache = new Map<string, string>();
  constructor(
    private readonly o: Ops,
    private readonly step: StepValues,
    /** Nodes that belong before every layer (they are built while a layer's nodes are pending). */
    private readonly common: NodeProto[],
  ) {}

  private once(key: string, build: () => string): string {
    let name = this.cache.get(key);
    if (!name) {
      const pending = this.o.b.nodes.length;
      name = build();
      this.common.push(...this.o.b.nodes.splice(pending));
      this.cache.set(key, name);
    }
    return name;
  }

  /** [B, kv_heads, capacity, groups]. */
  decode(kvHeads: number, groups: number): string {
    return this.once(`decode_${kvHeads}_${groups}`, () => {
      const { b } = this.o;
      const s = this.step;
      const p = `${NS}/decode_mask/${kvHeads}x${groups}`;
      const shape = this.o.vector(`${p}/shape`, [s.slots, kvHeads, s.decodeCapacity, groups]);
      return b.op('Expand', `${p}/Expand`, [b.op('Unsqueeze', `${p}/Unsqueeze`, [s.decodeMask, this.o.axes(1, 3)]), shape]);
    });
  }

  /** Past [capacity, groups * S] and chunk [S, groups * S]; query columns are ordered (group, position). */
  prefill(groups: number): { past: string; causal: string } {
    const past = this.once(`prefill_past_${groups}`, () => {
      const { b } = this.o;
      const s = this.step;
      const p = `${NS}/prefill_mask/${groups}`;
      const columns = b.op('Mul', `${p}/Mul`, [s.prefillRows, this.o.i64(`groups_${groups}`, [BigInt(groups)], [])]);
      return b.op('Expand', `${p}/Expand`, [s.prefillPastMask, this.o.vector(`${p}/shape`, [s.prefillCapacity, columns])]);
    });
    const causal = this.once(`causal_${groups}`, () =>
      this.o.b.op('Tile', `${NS}/causal_mask/Tile_${groups}`, [this.step.causalMask, this.o.shape([1, groups])]),
    );
    return { past, causal };
  }
}

interface LayerAttention {
  name: string;
  q: string;
  k: string;
  v: string;
  pastKey: string;
  pastValue: string;
  kvHeads: number;
  groups: number;
  headSize: number;
  scale: number;
}

/** The decode batch: one query row per slot against its own past and its own new key. Returns [1, B, heads * head_size]. */
function decodeAttention(o: Ops, step: StepValues, masks: ExpandedMasks, a: LayerAttention): string {
  const { b } = o;
  const p = `${a.name}/batched/decode`;
  const rows = (x: string, label: string) => o.slice(`${p}/${label}`, x, o.zero, step.slots, 1);
  // Per slot a row is [kv_heads, groups, head_size] queries, [kv_heads, head_size] keys and values.
  const queries = b.op('Transpose', `${p}/q/Transpose`, [b.op('Reshape', `${p}/q/Reshape`, [rows(a.q, 'q'), o.shape([-1, a.kvHeads, a.groups, a.headSize])])], { perm: [0, 1, 3, 2] });
  const key = b.op('Reshape', `${p}/k/Reshape`, [rows(a.k, 'k'), o.shape([-1, a.kvHeads, 1, a.headSize])]);
  const value = b.op('Reshape', `${p}/v/Reshape`, [rows(a.v, 'v'), o.shape([-1, a.kvHeads, a.headSize, 1])]);
  const product = (keys: string, label: string) => b.op('FusedMatMul', `${p}/${label}/FusedMatMul`, [keys, queries], { alpha: { float: a.scale }, transA: 0, transB: 0 }, MS);
  const past = b.op('Add', `${p}/past_scores/Add_mask`, [product(a.pastKey, 'past_scores'), masks.decode(a.kvHeads, a.groups)]);
  const probs = b.op('Softmax', `${p}/Softmax`, [b.op('Concat', `${p}/scores/Concat`, [past, product(key, 'new_scores')], { axis: 2 })], { axis: 2 });
  const capacity = step.decodeCapacity;
  const end = b.op('Add', `${p}/probs/end`, [capacity, o.one]);
  const context = b.op('Add', `${p}/context/Add`, [
    b.op('MatMul', `${p}/context/MatMul_past`, [a.pastValue, o.slice(`${p}/probs/past`, probs, o.zero, capacity, 2)]),
    b.op('MatMul', `${p}/context/MatMul_new`, [value, o.slice(`${p}/probs/new`, probs, capacity, end, 2)]),
  ]);
  // [B, kv_heads, head_size, groups] -> [1, B, heads * head_size].
  const back = b.op('Transpose', `${p}/context/Transpose`, [context], { perm: [0, 1, 3, 2] });
  return b.op('Reshape', `${p}/context/Reshape`, [back, o.shape([1, -1, a.kvHeads * a.groups * a.headSize])]);
}

/** The prefill chunk: S query rows of one sequence against its past and causally within the chunk. Returns [1, S, heads * head_size]. */
function prefillAttention(o: Ops, step: StepValues, masks: ExpandedMasks, a: LayerAttention): string {
  const { b } = o;
  const p = `${a.name}/batched/prefill`;
  const rows = (x: string, label: string) => o.slice(`${p}/${label}`, x, step.slots, step.rows, 1);
  const heads = (x: string, label: string, perm: number[]) =>
    b.op('Transpose', `${p}/${label}/Transpose`, [b.op('Reshape', `${p}/${label}/Reshape`, [rows(x, label), o.shape([0, 0, a.kvHeads, a.headSize])])], { perm });
  const key = heads(a.k, 'k', [0, 2, 1, 3]);
  const value = heads(a.v, 'v', [0, 2, 3, 1]);
  // Queries as columns grouped by the KV head they share: [1, kv_heads, head_size, groups * S].
  const q5 = b.op('Reshape', `${p}/q/Reshape_groups`, [rows(a.q, 'q'), o.shape([0, 0, a.kvHeads, a.groups, a.headSize])]);
  const queries = b.op('Reshape', `${p}/q/Reshape_columns`, [b.op('Transpose', `${p}/q/Transpose`, [q5], { perm: [0, 2, 4, 3, 1] }), o.shape([0, 0, a.headSize, -1])]);
  const { past: pastMask, causal } = masks.prefill(a.groups);
  const scores = (keys: string, mask: string, label: string) =>
    b.op('Add', `${p}/${label}/Add_mask`, [b.op('FusedMatMul', `${p}/${label}/FusedMatMul`, [keys, queries], { alpha: { float: a.scale }, transA: 0, transB: 0 }, MS), mask]);
  const probs = b.op('Softmax', `${p}/Softmax`, [b.op('Concat', `${p}/scores/Concat`, [scores(a.pastKey, pastMask, 'past_scores'), scores(key, causal, 'new_scores')], { axis: 2 })], { axis: 2 });
  const capacity = step.prefillCapacity;
  const end = b.op('Add', `${p}/probs/end`, [capacity, step.prefillRows]);
  const context = b.op('Add', `${p}/context/Add`, [
    b.op('MatMul', `${p}/context/MatMul_past`, [a.pastValue, o.slice(`${p}/probs/past`, probs, o.zero, capacity, 2)]),
    b.op('MatMul', `${p}/context/MatMul_new`, [value, o.slice(`${p}/probs/new`, probs, capacity, end, 2)]),
  ]);
  // [1, kv_heads, head_size, groups * S] -> [1, S, heads * head_size].
  const back = b.op('Transpose', `${p}/context/Transpose`, [b.op('Reshape', `${p}/context/Reshape_groups`, [context, o.shape([0, 0, a.headSize, a.groups, -1])])], { perm: [0, 4, 1, 3, 2] });
  // No -1 here: with an empty chunk the other dimensions multiply to 0 and ORT cannot infer it.
  return b.op('Reshape', `${p}/context/Reshape_out`, [back, o.shape([0, 0, a.kvHeads * a.groups * a.headSize])]);
}

const dim = (d: number | string) => onnx.TensorShapeProto.Dimension.create(typeof d === 'number' ? { dimValue: d } : { dimParam: d });

function declareInput(graph: GraphProto, name: string, elemType: number, dims: (number | string)[]): void {
  const existing = graph.input?.find((i) => i.name === name);
  const type = { tensorType: { elemType, shape: { dim: dims.map(dim) } } };
  if (existing) existing.type = type;
  else (graph.input ??= []).push({ name, type });
}

function declareOutput(graph: GraphProto, from: string, to: string, dims: (number | string)[]): void {
  const out = graph.output?.find((o) => o.name === from);
  if (!out?.type?.tensorType) throw new Error(`output ${from} is not a tensor`);
  out.name = to;
  out.type.tensorType.shape = { dim: dims.map(dim) };
}

/** Rewrites every GroupQueryAttention node; see the file comment. Returns what the engine must know. */
export function rewriteForBatches(model: ModelProto, io: BatchedIo): BatchedGraphInfo {
  const graph = model.graph;
  if (!graph) throw new Error('model has no graph');
  const nodes = graph.node ?? [];
  const attentions = nodes.filter((n) => n.opType === 'GroupQueryAttention' && n.domain === MS);
  if (attentions.length === 0) throw new Error('no GroupQueryAttention node to rewrite');
  for (const node of attentions) checkSupported(node, io.contextLength);
  const firstPastKey = attentions[0].input?.[3];
  if (!firstPastKey) throw new Error('GroupQueryAttention without past_key');

  const o = new Ops(new GraphBuilder());
  const b = o.b;
  const step = stepValues(o, attentions[0].input?.[0] ?? '', firstPastKey);
  const common = b.nodes.splice(0);
  const masks = new ExpandedMasks(o, step, common);
  const outputs = graph.output ?? [];
  const rewritten: NodeProto[] = [];
  // Every layer reads the same caches: one table for all.
  const rotaryByCache = new Map<string, RotaryTables>();
  let ropeSwitch: RopeSwitch | undefined;
  for (const node of nodes) {
    if (!attentions.includes(node)) {
      rewritten.push(node);
      continue;
    }
    const name = node.name ?? 'GroupQueryAttention';
    const [query, key = '', value = '', pastKey = '', pastValue = '', , , cos = '', sin = '', ...extra] = node.input ?? [];
    if (extra.some((x) => x !== '')) throw new Error(`${name}: extra GroupQueryAttention inputs are not supported by the batched rewrite`);
    const [attnOut, presentKey, presentValue] = node.output ?? [];
    if (!pastKey || !pastValue || !presentKey || !presentValue) throw new Error(`${name}: past and present KV are required`);
    if (!outputs.some((x) => x.name === presentKey) || !outputs.some((x) => x.name === presentValue)) throw new Error(`${name}: present KV must be graph outputs`);
    const numHeads = intAttribute(node, 'num_heads', 0);
    const kvHeads = intAttribute(node, 'kv_num_heads', 0);
    const headSize = declaredDim(graph, pastKey, 3);
    if (!numHeads || !kvHeads || numHeads % kvHeads !== 0 || !headSize) throw new Error(`${name}: unknown head layout`);
    const p = `${name}/batched`;
    const rotary = intAttribute(node, 'do_rotary', 0) === 1;
    if (rotary && !rotaryByCache.has(`${cos}|${sin}`)) {
      // Shared nodes first, while the builder holds none of this layer's nodes.
      const tables = rotaryTables(graph, b, cos, sin, NS);
      common.push(...b.nodes.splice(0));
      rotaryByCache.set(`${cos}|${sin}`, tables);
      ropeSwitch ??= tables.switch;
    }
    let [q, k, v] = [query, key, value];
    if (!key) {
      [q, k, v] = [`${p}/Split/output_0`, `${p}/Split/output_1`, `${p}/Split/output_2`];
      b.node('Split', [query, o.shape([numHeads * headSize, kvHeads * headSize, kvHeads * headSize])], [q, k, v], { axis: -1 }, { name: `${p}/Split` });
    }
    if (rotary) {
      const { width, cos: cosTable, sin: sinTable } = rotaryByCache.get(`${cos}|${sin}`)!;
      const rotate = (x: string, heads: number, label: string) =>
        b.op('RotaryEmbedding', `${p}/${label}/RotaryEmbedding`, [x, BATCHED_INPUTS.positionIds, cosTable, sinTable], {
          interleaved: intAttribute(node, 'rotary_interleaved', 0),
          num_heads: heads,
          rotary_embedding_dim: 2 * width,
        }, MS);
      q = rotate(q, numHeads, 'q');
      k = rotate(k, kvHeads, 'k');
    }
    // The step's new rows in the buffers' layouts are the outputs: keys [1, kv_heads, N, head_size],
    // values transposed [1, kv_heads, head_size, N].
    const perRow = (x: string, label: string) => b.op('Reshape', `${p}/${label}/Reshape_rows`, [x, o.shape([0, 0, kvHeads, headSize])]);
    b.node('Transpose', [perRow(k, 'k')], [newRowsName(presentKey)], { perm: [0, 2, 1, 3] }, { name: `${p}/k/Transpose_rows` });
    b.node('Transpose', [perRow(v, 'v')], [newRowsName(presentValue)], { perm: [0, 2, 3, 1] }, { name: `${p}/v/Transpose_rows` });

    const groups = numHeads / kvHeads;
    const scale = floatAttribute(node, 'scale', 0) || 1 / Math.sqrt(headSize);
    const layer: LayerAttention = { name, q, k, v, pastKey, pastValue, kvHeads, groups, headSize, scale };
    const decoded = decodeAttention(o, step, masks, layer);
    const prefilled = prefillAttention(o, step, masks, { ...layer, pastKey: prefillInputName(pastKey), pastValue: prefillInputName(pastValue) });
    b.node('Concat', [decoded, prefilled], [attnOut], { axis: 1 }, { name: `${p}/Concat_rows` });
    rewritten.push(...b.nodes.splice(0));

    declareOutput(graph, presentKey, newRowsName(presentKey), [1, kvHeads, 'step_rows', headSize]);
    declareOutput(graph, presentValue, newRowsName(presentValue), [1, kvHeads, headSize, 'step_rows']);
    declareInput(graph, pastKey, DType.FLOAT, ['decode_slots', kvHeads, 'decode_capacity', headSize]);
    declareInput(graph, pastValue, DType.FLOAT, ['decode_slots', kvHeads, headSize, 'decode_capacity']);
    declareInput(graph, prefillInputName(pastKey), DType.FLOAT, [1, kvHeads, 'prefill_capacity', headSize]);
    declareInput(graph, prefillInputName(pastValue), DType.FLOAT, [1, kvHeads, headSize, 'prefill_capacity']);
  }
  declareInput(graph, BATCHED_INPUTS.positionIds, DType.INT64, [1, 'step_rows']);
  declareInput(graph, BATCHED_INPUTS.decodePastLengths, DType.INT64, ['decode_slots']);
  declareInput(graph, BATCHED_INPUTS.prefillPastLength, DType.INT64, [1]);
  graph.node = [...common, ...rewritten];
  graph.initializer = [...(graph.initializer ?? []), ...b.initializers];
  gatherBeforeLogits(graph, io.logits);
  // Sorted first: pruning walks the nodes backwards from the outputs.
  sortTopologically(graph);
  pruneDeadNodes(graph);
  return ropeSwitch ? { ropeSwitch } : {};
}

/** lm_head sees only the rows `logits_indices` names. */
function gatherBeforeLogits(graph: GraphProto, logits: string): void {
  const nodes = graph.node ?? [];
  const head = nodes.find((n) => n.output?.includes(logits));
  if (!head?.input?.[0]) throw new Error(`no node produces "${logits}"`);
  const gathered = `${NS}/logits_rows/Gather/output_0`;
  nodes.push({ name: `${NS}/logits_rows/Gather`, opType: 'Gather', domain: '', input: [head.input[0], BATCHED_INPUTS.logitsIndices], output: [gathered], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }] });
  head.input[0] = gathered;
  declareInput(graph, BATCHED_INPUTS.logitsIndices, DType.INT64, ['logit_rows']);
  const out = graph.output?.find((x) => x.name === logits);
  const dims = out?.type?.tensorType?.shape?.dim;
  if (dims && dims.length === 3) dims[1] = dim('logit_rows');
}

export function batchedDerivation(io: BatchedIo): Derivation {
  return {
    variant: 'batched',
    version: 1,
    rewrite: (model) => {
      const embedding = moveEmbeddingOutOfGraph(model, io.inputIds);
      const info = rewriteForBatches(model, io);
      if (embedding) model.metadataProps.push(onnx.StringStringEntryProto.create({ key: EMBEDDING_METADATA_KEY, value: JSON.stringify(embedding) }));
      model.metadataProps.push(onnx.StringStringEntryProto.create({ key: BATCHED_METADATA_KEY, value: JSON.stringify(info) }));
    },
  };
}
