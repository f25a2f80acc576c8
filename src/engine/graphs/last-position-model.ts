/**
 * The genai export runs lm_head on every position: a 2,048-token prompt returns 2,048 x 200,064
 * fp32 logits (1.6 GB) and spends most of a second per 100 positions on a vocabulary projection
 * nobody reads. Generation only ever needs the last position, so the derived graphs put a Slice
 * in front of lm_head.
 */
import onnxProto from 'onnx-proto';
import { derivedModelPath, type Derivation, type ModelProto } from './derived-model.ts';

const { onnx } = onnxProto;

/** Rewrites the graph so the node producing `logitsName` sees only the last position. */
export function sliceBeforeLogits(model: ModelProto, logitsName: string): void {
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

export function lastPositionDerivation(logitsName: string): Derivation {
  return { variant: 'last-position', version: 1, rewrite: (model) => sliceBeforeLogits(model, logitsName) };
}

export function lastPositionModelPath(modelPath: string): string {
  return derivedModelPath(modelPath, 'last-position');
}
