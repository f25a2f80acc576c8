/** Small helpers for reading and editing ONNX graphs the derivations share. */
import type onnxProto from 'onnx-proto';
import type { GraphProto, NodeProto } from '../../onnx/graph.ts';

type Attribute = onnxProto.onnx.IAttributeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;

export function attribute(node: NodeProto, name: string): Attribute | undefined {
  return node.attribute?.find((a) => a.name === name) ?? undefined;
}

export function intAttribute(node: NodeProto, name: string, fallback: number): number {
  const a = attribute(node, name);
  return a?.i === undefined || a.i === null ? fallback : Number(a.i);
}

export function floatAttribute(node: NodeProto, name: string, fallback: number): number {
  const a = attribute(node, name);
  return a?.f === undefined || a.f === null ? fallback : a.f;
}

export function floatsOf(t: TensorProto): Float32Array {
  if (t.rawData && t.rawData.length > 0) {
    // Copy: rawData may sit at an offset that is not 4-byte aligned inside the decoded buffer.
    return new Float32Array(Uint8Array.from(t.rawData).buffer);
  }
  return Float32Array.from(t.floatData ?? []);
}

export function int64sOf(t: TensorProto): bigint[] {
  if (t.rawData && t.rawData.length > 0) return [...new BigInt64Array(Uint8Array.from(t.rawData).buffer)];
  return (t.int64Data ?? []).map((x) => BigInt(x.toString()));
}

/** A constant tensor: an initializer or a Constant node's value. */
export function constantTensor(graph: GraphProto, name: string): TensorProto | undefined {
  const init = graph.initializer?.find((t) => t.name === name);
  if (init) return init;
  const producer = graph.node?.find((n) => n.output?.includes(name));
  return producer?.opType === 'Constant' ? (attribute(producer, 'value')?.t ?? undefined) : undefined;
}

export function declaredDim(graph: GraphProto, name: string, axis: number): number | undefined {
  const dim = graph.input?.find((v) => v.name === name)?.type?.tensorType?.shape?.dim?.[axis];
  const value = dim?.dimValue === undefined || dim.dimValue === null ? undefined : Number(dim.dimValue);
  return value && value > 0 ? value : undefined;
}

/** Names a node reads, including those its subgraphs read from the enclosing graph. */
export function nodeReads(n: NodeProto): string[] {
  const sub = (n.attribute ?? []).flatMap((a) => (a.g ? (a.g.node ?? []).flatMap(nodeReads) : []));
  return [...(n.input ?? []), ...sub].filter((x) => x !== '');
}

/** Drops nodes, initializers and graph inputs nothing reads any more. */
export function pruneDeadNodes(graph: GraphProto): void {
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
  graph.input = (graph.input ?? []).filter((i) => live.has(i.name ?? ''));
}

/** Orders nodes so each comes after the producers of what it reads (ORT requires it); stable otherwise. */
export function sortTopologically(graph: GraphProto): void {
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
