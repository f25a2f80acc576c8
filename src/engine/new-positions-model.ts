/**
 * onnxruntime-node copies every fetched output into a fresh ArrayBuffer after each run, and
 * GroupQueryAttention's present outputs are the whole KV buffer: in shared-buffer mode every
 * decode step still copies out (and later garbage-collects) the entire cache, ~90 ms a step at
 * 2,048 positions of Phi-4-mini. Inputs, on the other hand, are wrapped without a copy.
 *
 * This derivation rewrites each GroupQueryAttention node as the same attention over plain ops
 * that reads the engine's KV buffers as inputs only and returns just the keys and values of the
 * new positions. The engine writes those few rows into its buffers itself, so a decode step moves
 * kilobytes instead of the cache. The buffers keep GroupQueryAttention's layout
 * [batch, kv_heads, capacity, head_size]; positions past the sequence are masked out, so a buffer
 * may be larger than the sequence it holds.
 */
import onnxProto from 'onnx-proto';
import { DType, GraphBuilder, type GraphProto, type NodeProto } from '../onnx/graph.ts';
import type { Derivation, ModelProto } from './derived-model.ts';
import { EMBEDDING_METADATA_KEY, moveEmbeddingOutOfGraph } from './embedding-input.ts';
import { sliceBeforeLogits } from './last-position-model.ts';

const { onnx } = onnxProto;
const MS = 'com.microsoft';
/** Additive mask value: finite so that a fully masked row could never turn into NaN. */
const MASKED = -3.4028234663852886e38;

/** Name of the output carrying a present output's new positions only. */
export function newPositionsName(presentName: string): string {
  return `${presentName}.new`;
}

export interface NewPositionsIo {
  inputIds: string;
  attentionMask: string;
  logits: string;
}

type Attribute = onnxProto.onnx.IAttributeProto;

function attribute(node: NodeProto, name: string): Attribute | undefined {
  return node.attribute?.find((a) => a.name === name) ?? undefined;
}

function intAttribute(node: NodeProto, name: string, fallback: number): number {
  const a = attribute(node, name);
  return a?.i === undefined || a.i === null ? fallback : Number(a.i);
}

function floatAttribute(node: NodeProto, name: string, fallback: number): number {
  const a = attribute(node, name);
  return a?.f === undefined || a.f === null ? fallback : a.f;
}

const HANDLED_ATTRIBUTES = new Set(['num_heads', 'kv_num_heads', 'scale', 'do_rotary', 'rotary_interleaved', 'local_window_size', 'softcap', 'smooth_softmax']);

type TensorProto = onnxProto.onnx.ITensorProto;

function floatsOf(t: TensorProto): Float32Array {
  if (t.rawData && t.rawData.length > 0) {
    // Copy: rawData may sit at an offset that is not 4-byte aligned inside the decoded buffer.
    return new Float32Array(Uint8Array.from(t.rawData).buffer);
  }
  return Float32Array.from(t.floatData ?? []);
}

/** A constant tensor: an initializer or a Constant node's value. */
function constantTensor(graph: GraphProto, name: string): TensorProto | undefined {
  const init = graph.initializer?.find((t) => t.name === name);
  if (init) return init;
  const producer = graph.node?.find((n) => n.output?.includes(name));
  return producer?.opType === 'Constant' ? (attribute(producer, 'value')?.t ?? undefined) : undefined;
}

/**
 * The rotary caches a GroupQueryAttention node reads, as tables RotaryEmbedding can index.
 * LongRoPE exports pick a short or a long cache with an If on the total length. ORT cannot save
 * an optimized copy of a graph whose If branches hold constants (it duplicates their names), so
 * both caches go into one table, short rows first, and the condition becomes a row offset.
 */
interface RotaryTables {
  cos: string;
  sin: string;
  width: number;
  /** Scalar int64 added to the position ids (the long cache's first row when it applies), if any. */
  offset?: string;
}

function rotaryTables(graph: GraphProto, b: GraphBuilder, cos: string, sin: string, zero: string): RotaryTables {
  const cosInit = constantTensor(graph, cos);
  const sinInit = constantTensor(graph, sin);
  if (cosInit?.dims && sinInit) return { cos, sin, width: Number(cosInit.dims[1]) };
  const producer = graph.node?.find((n) => n.output?.includes(cos));
  if (producer?.opType !== 'If' || !producer.output?.includes(sin)) throw new Error(`rotary caches ${cos}/${sin} are neither constants nor chosen by an If`);
  const thenBranch = attribute(producer, 'then_branch')?.g;
  const elseBranch = attribute(producer, 'else_branch')?.g;
  const pick = (branch: GraphProto | null | undefined, output: string): TensorProto => {
    const index = producer.output?.indexOf(output) ?? -1;
    const t = branch ? constantTensor(branch, branch.output?.[index]?.name ?? '') : undefined;
    if (!t?.dims || t.dims.length !== 2) throw new Error(`rotary cache ${output}: If branches are not constants`);
    return t;
  };
  const table = (output: string): { name: string; width: number; shortRows: number } => {
    const short = pick(elseBranch, output);
    const long = pick(thenBranch, output);
    const width = Number(short.dims![1]);
    if (Number(long.dims![1]) !== width) throw new Error(`rotary cache ${output}: branch widths differ`);
    const shortRows = Number(short.dims![0]);
    const rows = shortRows + Number(long.dims![0]);
    const data = new Float32Array(rows * width);
    data.set(floatsOf(short));
    data.set(floatsOf(long), shortRows * width);
    const name = b.constant(`/model/new_positions/rotary/${output}_table`, DType.FLOAT, [rows, width], data);
    return { name, width, shortRows };
  };
  const cosTable = table(cos);
  const sinTable = table(sin);
  const condition = producer.input?.[0];
  if (!condition) throw new Error('If without a condition');
  const longStart = b.constant('/model/new_positions/rotary/long_start', DType.INT64, [], new BigInt64Array([BigInt(cosTable.shortRows)]));
  const offset = b.op('Where', '/model/new_positions/rotary/offset/Where', [condition, longStart, zero]);
  return { cos: cosTable.name, sin: sinTable.name, width: cosTable.width, offset };
}

function declaredDim(graph: GraphProto, name: string, axis: number): number | undefined {
  const dim = graph.input?.find((v) => v.name === name)?.type?.tensorType?.shape?.dim?.[axis];
  const value = dim?.dimValue === undefined || dim.dimValue === null ? undefined : Number(dim.dimValue);
  return value && value > 0 ? value : undefined;
}

/** Drops nodes and initializers nothing reads any more (the mask reformatting GQA consumed). */
function pruneDeadNodes(graph: GraphProto): void {
  const live = new Set((graph.output ?? []).map((o) => o.name ?? ''));
  const nodes = graph.node ?? [];
  const kept: NodeProto[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    if (!(n.output ?? []).some((o) => o !== '' && live.has(o))) continue;
    kept.push(n);
    for (const input of nodeReads(n)) live.add(input);
  }
  graph.node = kept.reverse();
  graph.initializer = (graph.initializer ?? []).filter((t) => live.has(t.name ?? ''));
}

/** Names a node reads, including those its subgraphs read from the enclosing graph. */
function nodeReads(n: NodeProto): string[] {
  const sub = (n.attribute ?? []).flatMap((a) => (a.g ? (a.g.node ?? []).flatMap(nodeReads) : []));
  return [...(n.input ?? []), ...sub].filter((x) => x !== '');
}

/** Orders nodes so each comes after the producers of what it reads (ORT requires it); stable otherwise. */
function sortTopologically(graph: GraphProto): void {
  const nodes = graph.node ?? [];
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => (n.output ?? []).forEach((o) => o && producer.set(o, i)));
  const done = new Array<boolean>(nodes.length).fill(false);
  const sorted: NodeProto[] = [];
  const visit = (i: number, depth: number) => {
    if (done[i]) return;
    if (depth > nodes.length) throw new Error('graph has a cycle');
    for (const input of nodeReads(nodes[i])) {
      const j = producer.get(input);
      if (j !== undefined && j !== i) visit(j, depth + 1);
    }
    if (!done[i]) {
      done[i] = true;
      sorted.push(nodes[i]);
    }
  };
  nodes.forEach((_, i) => visit(i, 0));
  graph.node = sorted;
}

/**
 * Rewrites every GroupQueryAttention node. Throws when the graph uses a feature the rewrite does
 * not reproduce (sliding window, softcap, extra inputs), so the caller keeps the export's attention.
 */
export function rewriteAttentionForNewPositions(model: ModelProto, io: NewPositionsIo): void {
  const graph = model.graph;
  if (!graph) throw new Error('model has no graph');
  const nodes = graph.node ?? [];
  const attentions = nodes.filter((n) => n.opType === 'GroupQueryAttention' && n.domain === MS);
  if (attentions.length === 0) throw new Error('no GroupQueryAttention node to rewrite');

  const b = new GraphBuilder();
  const ns = '/model/new_positions';
  const constants = new Set<string>();
  // Shape constants recur in every layer: one initializer each.
  const i64 = (name: string, values: bigint[], dims: number[] = [values.length]): string => {
    const full = `${ns}/${name}`;
    if (!constants.has(full)) b.constant(full, DType.INT64, dims, new BigInt64Array(values));
    constants.add(full);
    return full;
  };
  const zero = i64('zero', [0n], []);
  const one = i64('one', [1n], []);
  const axis0 = i64('axis0', [0n]);
  const axis1 = i64('axis1', [1n]);
  const zeroF = b.constant(`${ns}/zero_f`, DType.FLOAT, [], new Float32Array([0]));
  const maskedF = b.constant(`${ns}/masked_f`, DType.FLOAT, [], new Float32Array([MASKED]));

  // Lengths: new positions S, total T from attention_mask, past P = T - S, and the capacity of the
  // KV buffers that were fed in.
  const firstPastKey = attentions[0].input?.[3];
  if (!firstPastKey) throw new Error('GroupQueryAttention without past_key');
  const scalarAt = (tensor: string, axis: number, name: string) => b.op('Gather', `${ns}/${name}/Gather`, [b.op('Shape', `${ns}/${name}/Shape`, [tensor]), i64(`axis_index_${axis}`, [BigInt(axis)], [])], { axis: 0 });
  // The new length from the first attention's query [batch, new, ...]: it holds whether the graph
  // starts from input_ids or from embeddings.
  const newLen = scalarAt(attentions[0].input?.[0] ?? '', 1, 'new_length');
  const totalLen = scalarAt(io.attentionMask, 1, 'total_length');
  const pastLen = b.op('Sub', `${ns}/past_length/Sub`, [totalLen, newLen]);
  const capacity = scalarAt(firstPastKey, 2, 'capacity');
  const positionIds = b.op('Unsqueeze', `${ns}/position_ids/Unsqueeze`, [b.op('Range', `${ns}/position_ids/Range`, [pastLen, totalLen, one]), axis0]);
  // Buffer rows at or past P hold no position of this sequence yet. Scores are laid out
  // [key positions, query columns], so this is a column.
  const pastMask = b.op('Unsqueeze', `${ns}/past_mask/Unsqueeze`, [
    b.op('Where', `${ns}/past_mask/Where`, [
      b.op('Less', `${ns}/past_mask/Less`, [b.op('Range', `${ns}/past_mask/Range`, [zero, capacity, one]), pastLen]), zeroF, maskedF,
    ]),
    axis1,
  ]);
  const newRange = b.op('Range', `${ns}/causal_mask/Range`, [zero, newLen, one]);
  // [new key position j, new query position s]: masked where j comes after s.
  const future = b.op('Greater', `${ns}/causal_mask/Greater`, [
    b.op('Unsqueeze', `${ns}/causal_mask/Unsqueeze_keys`, [newRange, axis1]),
    b.op('Unsqueeze', `${ns}/causal_mask/Unsqueeze_queries`, [newRange, axis0]),
  ]);
  const causalMask = b.op('Where', `${ns}/causal_mask/Where`, [future, maskedF, zeroF]);
  const splitSizes = b.op('Concat', `${ns}/split_sizes/Concat`, [
    b.op('Unsqueeze', `${ns}/split_sizes/Unsqueeze_capacity`, [capacity, axis0]),
    b.op('Unsqueeze', `${ns}/split_sizes/Unsqueeze_new`, [newLen, axis0]),
  ], { axis: 0 });
  const commonNodes = b.nodes.splice(0);
  // The past mask expanded to the scores' trailing shape [capacity, groups * new] once per step: a
  // [capacity, 1] column broadcast over a last axis of 3 took ORT's slow broadcast path in every layer.
  const pastMasks = new Map<number, string>();
  const pastMaskFor = (groups: number): string => {
    let m = pastMasks.get(groups);
    if (!m) {
      const columns = b.op('Mul', `${ns}/past_mask/Mul_${groups}`, [newLen, i64(`groups_${groups}`, [BigInt(groups)], [])]);
      const shape = b.op('Concat', `${ns}/past_mask/Concat_${groups}`, [
        b.op('Unsqueeze', `${ns}/past_mask/Unsqueeze_capacity_${groups}`, [capacity, axis0]),
        b.op('Unsqueeze', `${ns}/past_mask/Unsqueeze_columns_${groups}`, [columns, axis0]),
      ], { axis: 0 });
      m = b.op('Expand', `${ns}/past_mask/Expand_${groups}`, [pastMask, shape]);
      // Only these nodes: layer nodes may be pending in the builder.
      commonNodes.push(...b.nodes.splice(b.nodes.length - 5));
      pastMasks.set(groups, m);
    }
    return m;
  };
  // Query columns are ordered (group, position): the causal mask repeats once per group.
  const groupMasks = new Map<number, string>();
  const causalFor = (groups: number): string => {
    let m = groupMasks.get(groups);
    if (!m) {
      m = b.op('Tile', `${ns}/causal_mask/Tile_${groups}`, [causalMask, i64(`tile_${groups}`, [1n, BigInt(groups)])]);
      // Only the Tile node: layer nodes may be pending in the builder.
      commonNodes.push(b.nodes.pop() as NodeProto);
      groupMasks.set(groups, m);
    }
    return m;
  };

  const outputs = graph.output ?? [];
  const rewritten: NodeProto[] = [];
  // Every layer reads the same caches: one table and one set of position ids for all.
  const rotaryByCache = new Map<string, RotaryTables & { positionIds: string }>();
  for (const node of nodes) {
    if (!attentions.includes(node)) {
      rewritten.push(node);
      continue;
    }
    const name = node.name ?? 'GroupQueryAttention';
    for (const a of node.attribute ?? []) {
      if (!HANDLED_ATTRIBUTES.has(a.name ?? '')) throw new Error(`${name}: attribute ${a.name} is not supported by the new-positions rewrite`);
    }
    if (intAttribute(node, 'local_window_size', -1) !== -1) throw new Error(`${name}: sliding-window attention is not supported by the new-positions rewrite`);
    if (floatAttribute(node, 'softcap', 0) !== 0) throw new Error(`${name}: softcap is not supported by the new-positions rewrite`);
    if (intAttribute(node, 'smooth_softmax', 0) !== 0) throw new Error(`${name}: smooth_softmax is not supported by the new-positions rewrite`);
    const [query, key = '', value = '', pastKey = '', pastValue = '', , , cos = '', sin = '', ...extra] = node.input ?? [];
    if (extra.some((x) => x !== '')) throw new Error(`${name}: extra GroupQueryAttention inputs are not supported by the new-positions rewrite`);
    const [attnOut, presentKey, presentValue] = node.output ?? [];
    if (!pastKey || !pastValue || !presentKey || !presentValue) throw new Error(`${name}: past and present KV are required`);
    if (!outputs.some((o) => o.name === presentKey) || !outputs.some((o) => o.name === presentValue)) {
      throw new Error(`${name}: present KV must be graph outputs`);
    }
    const numHeads = intAttribute(node, 'num_heads', 0);
    const kvHeads = intAttribute(node, 'kv_num_heads', 0);
    const headSize = declaredDim(graph, pastKey, 3);
    if (!numHeads || !kvHeads || numHeads % kvHeads !== 0 || !headSize) throw new Error(`${name}: unknown head layout`);
    const groups = numHeads / kvHeads;
    const scale = floatAttribute(node, 'scale', 0) || 1 / Math.sqrt(headSize);
    const p = `${name}/new_positions`;
    const shape = (label: string, dims: number[]) => i64(`${label}_${dims.join('x').replace(/-/g, 'm')}`, dims.map(BigInt));

    // Shared rotary nodes first, while the builder holds none of this layer's nodes.
    if (intAttribute(node, 'do_rotary', 0) === 1 && !rotaryByCache.has(`${cos}|${sin}`)) {
      const found = rotaryTables(graph, b, cos, sin, zero);
      const ids = found.offset ? b.op('Add', `${ns}/rotary_position_ids/Add_${rotaryByCache.size}`, [positionIds, found.offset]) : positionIds;
      commonNodes.push(...b.nodes.splice(0));
      rotaryByCache.set(`${cos}|${sin}`, { ...found, positionIds: ids });
    }
    let q = query;
    let k = key;
    let v = value;
    if (!key) {
      const parts = [`${p}/Split/output_0`, `${p}/Split/output_1`, `${p}/Split/output_2`];
      b.node('Split', [query, shape('qkv_sizes', [numHeads * headSize, kvHeads * headSize, kvHeads * headSize])], parts, { axis: -1 }, { name: `${p}/Split` });
      [q, k, v] = parts;
    }
    if (intAttribute(node, 'do_rotary', 0) === 1) {
      const { width, positionIds: rotaryIds, cos: cosTable, sin: sinTable } = rotaryByCache.get(`${cos}|${sin}`)!;
      const rotary = (x: string, heads: number, label: string) =>
        b.op('RotaryEmbedding', `${p}/${label}/RotaryEmbedding`, [x, rotaryIds, cosTable, sinTable], {
          interleaved: intAttribute(node, 'rotary_interleaved', 0),
          num_heads: heads,
          rotary_embedding_dim: 2 * width,
        }, MS);
      q = rotary(q, numHeads, 'q');
      k = rotary(k, kvHeads, 'k');
    }
    // The new positions in the buffers' layouts: these are the outputs. Keys as GroupQueryAttention
    // keeps them, [batch, kv_heads, new, head_size]; values transposed, [batch, kv_heads, head_size, new],
    // so that both products below stream a whole buffer as their left operand.
    const newKey = newPositionsName(presentKey);
    const newValue = newPositionsName(presentValue);
    const heads = (x: string, out: string, label: string, perm: number[]) =>
      b.node('Transpose', [b.op('Reshape', `${p}/${label}/Reshape`, [x, shape('bsnh', [0, 0, kvHeads, headSize])])], [out], { perm }, { name: `${p}/${label}/Transpose` });
    heads(k, newKey, 'k', [0, 2, 1, 3]);
    heads(v, newValue, 'v', [0, 2, 3, 1]);

    // Queries as columns grouped by the KV head they share: [batch, kv_heads, head_size, groups * new].
    const q5 = b.op('Reshape', `${p}/q/Reshape_groups`, [q, shape('bsngh', [0, 0, kvHeads, groups, headSize])]);
    const queries = b.op('Reshape', `${p}/q/Reshape_columns`, [
      b.op('Transpose', `${p}/q/Transpose`, [q5], { perm: [0, 2, 4, 3, 1] }),
      shape('columns', [0, 0, headSize, -1]),
    ]);
    // Scores [batch, kv_heads, key positions, query columns]: keys @ queries.
    const scores = (keys: string, mask: string, label: string) =>
      b.op('Add', `${p}/${label}/Add_mask`, [
        b.op('FusedMatMul', `${p}/${label}/FusedMatMul`, [keys, queries], { alpha: { float: scale }, transA: 0, transB: 0 }, MS),
        mask,
      ]);
    const probs = b.op('Softmax', `${p}/Softmax`, [
      b.op('Concat', `${p}/scores/Concat`, [scores(pastKey, pastMaskFor(groups), 'past_scores'), scores(newKey, causalFor(groups), 'new_scores')], { axis: 2 }),
    ], { axis: 2 });
    const pPast = `${p}/probs/Split/output_0`;
    const pNew = `${p}/probs/Split/output_1`;
    b.node('Split', [probs, splitSizes], [pPast, pNew], { axis: 2 }, { name: `${p}/probs/Split` });
    // [batch, kv_heads, head_size, query columns]: transposed values @ probabilities.
    const context = b.op('Add', `${p}/context/Add`, [
      b.op('MatMul', `${p}/context/MatMul_past`, [pastValue, pPast]),
      b.op('MatMul', `${p}/context/MatMul_new`, [newValue, pNew]),
    ]);
    // Back to GroupQueryAttention's output layout [batch, new, num_heads * head_size].
    const back = b.op('Transpose', `${p}/context/Transpose`, [
      b.op('Reshape', `${p}/context/Reshape_groups`, [context, shape('bnhgs', [0, 0, headSize, groups, -1])]),
    ], { perm: [0, 4, 1, 3, 2] });
    b.node('Reshape', [back, shape('bsd', [0, 0, -1])], [attnOut], {}, { name: `${p}/context/Reshape_out` });
    rewritten.push(...b.nodes.splice(0));

    const dim = (d: number | string) => onnx.TensorShapeProto.Dimension.create(typeof d === 'number' ? { dimValue: d } : { dimParam: d });
    for (const [present, fresh, dims] of [
      [presentKey, newKey, ['batch_size', kvHeads, 'sequence_length', headSize]],
      [presentValue, newValue, ['batch_size', kvHeads, headSize, 'sequence_length']],
    ] as const) {
      const out = outputs.find((o) => o.name === present);
      if (!out?.type?.tensorType) continue;
      out.name = fresh;
      out.type.tensorType.shape = { dim: dims.map(dim) };
    }
    // The value buffers are fed transposed: declare them so, or ORT rejects the shape.
    const pastValueInfo = graph.input?.find((i) => i.name === pastValue);
    if (pastValueInfo?.type?.tensorType) {
      pastValueInfo.type.tensorType.shape = { dim: ['batch_size', kvHeads, headSize, 'past_sequence_length'].map(dim) };
    }
  }
  graph.node = [...commonNodes, ...rewritten];
  graph.initializer = [...(graph.initializer ?? []), ...b.initializers];
  // Sorted first: pruning walks the nodes backwards from the outputs.
  sortTopologically(graph);
  pruneDeadNodes(graph);
}

export function newPositionsDerivation(io: NewPositionsIo): Derivation {
  return {
    variant: 'new-positions',
    version: 5,
    rewrite: (model) => {
      const embedding = moveEmbeddingOutOfGraph(model, io.inputIds);
      rewriteAttentionForNewPositions(model, io);
      sliceBeforeLogits(model, io.logits);
      if (embedding) {
        // input_ids now only sized things the rewrite no longer reads.
        model.graph!.input = (model.graph!.input ?? []).filter((i) => i.name !== io.inputIds || (model.graph!.node ?? []).some((n) => nodeReads(n).includes(io.inputIds)));
        model.metadataProps.push(onnx.StringStringEntryProto.create({ key: EMBEDDING_METADATA_KEY, value: JSON.stringify(embedding) }));
      }
    },
  };
}
