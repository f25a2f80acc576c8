/**
 * The genai export runs lm_head on every position: a 2,048-token prompt returns 2,048 x 200,064
 * fp32 logits (1.6 GB) and spends most of a second per 100 positions on a vocabulary projection
 * nobody reads. Generation only ever needs the last position, so we derive a copy of the graph
 * with a Slice in front of lm_head. The copy lives beside the original (its external data paths
 * stay valid, nothing is duplicated) and the original file is never touched.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, statSync, writeFileSync, readFileSync, renameSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
const STAMP_KEY = 'phi4_server.derived_from';

export interface DerivedModel {
  path: string;
  /** Why the original is used instead, when it is. */
  fallbackReason?: string;
}

export function lastPositionModelPath(modelPath: string): string {
  return join(dirname(modelPath), basename(modelPath).replace(/\.onnx$/, '') + '.last-position.onnx');
}

function sourceStamp(modelPath: string): string {
  const st = statSync(modelPath);
  return `${basename(modelPath)}:${st.size}:${Math.round(st.mtimeMs)}`;
}

function readStamp(path: string): string | undefined {
  try {
    // Only the metadata is needed, but protobuf has no partial decode; the graph file is small
    // next to the external weights, so decoding it is acceptable at load time.
    const model = onnx.ModelProto.decode(readFileSync(path));
    return model.metadataProps.find((p) => p.key === STAMP_KEY)?.value ?? undefined;
  } catch {
    return undefined;
  }
}

/** Rewrites the graph so the node producing `logitsName` sees only the last position. */
export function sliceBeforeLogits(model: onnxProto.onnx.ModelProto, logitsName: string): void {
  const graph = model.graph;
  if (!graph) throw new Error('model has no graph');
  const nodes = (graph.node ??= []);
  const index = nodes.findIndex((n) => n.output?.includes(logitsName));
  if (index < 0) throw new Error(`no node produces "${logitsName}"`);
  const head = nodes[index];
  const headInputs = (head.input ??= []);
  const hidden = headInputs[0];
  const prefix = '/model/last_position';
  const int64 = (name: string, value: bigint) =>
    onnx.TensorProto.create({
      name,
      dataType: onnx.TensorProto.DataType.INT64,
      dims: [1],
      rawData: new Uint8Array(new BigInt64Array([value]).buffer),
    });
  (graph.initializer ??= []).push(int64(`${prefix}/starts`, -1n), int64(`${prefix}/ends`, 9223372036854775807n), int64(`${prefix}/axes`, 1n));
  const sliced = `${prefix}/Slice/output_0`;
  const slice = onnx.NodeProto.create({
    name: `${prefix}/Slice`,
    opType: 'Slice',
    input: [hidden, `${prefix}/starts`, `${prefix}/ends`, `${prefix}/axes`],
    output: [sliced],
  });
  headInputs[0] = sliced;
  nodes.splice(index, 0, slice);
  const out = graph.output?.find((o) => o.name === logitsName);
  const dims = out?.type?.tensorType?.shape?.dim;
  if (dims && dims.length === 3) dims[1] = onnx.TensorShapeProto.Dimension.create({ dimValue: 1 });
}

/**
 * Returns the path of the last-position model, deriving it when missing or stale. Falls back to
 * the original (with the reason) when the folder is read-only or the graph has an unknown shape.
 */
export function ensureLastPositionModel(modelPath: string, logitsName: string): DerivedModel {
  const derivedPath = lastPositionModelPath(modelPath);
  const stamp = sourceStamp(modelPath);
  if (existsSync(derivedPath) && readStamp(derivedPath) === stamp) return { path: derivedPath };
  try {
    const model = onnx.ModelProto.decode(readFileSync(modelPath));
    sliceBeforeLogits(model, logitsName);
    model.metadataProps = model.metadataProps.filter((p) => p.key !== STAMP_KEY);
    model.metadataProps.push(onnx.StringStringEntryProto.create({ key: STAMP_KEY, value: stamp }));
    // Unique per writer: replicas sharing a volume all run as pid 1 in their containers.
    const tmp = `${derivedPath}.tmp-${randomUUID()}`;
    writeFileSync(tmp, onnx.ModelProto.encode(model).finish());
    renameSync(tmp, derivedPath);
    return { path: derivedPath };
  } catch (err) {
    return { path: modelPath, fallbackReason: (err as Error).message };
  }
}
