/**
 * The rotary caches a GroupQueryAttention node reads, as one table RotaryEmbedding can index.
 * LongRoPE exports pick a short or a long cache with an If on the step's total length. In a batch
 * every sequence has its own length, so both caches go into one table, short rows first, and the
 * engine adds the long cache's first row to the positions of a sequence past the threshold. (ORT
 * also cannot save an optimized copy of an If whose branches hold constants.)
 */
import { DType, type GraphBuilder, type GraphProto, type NodeProto } from '../../onnx/graph.ts';
import { attribute, constantTensor, floatsOf, int64sOf, type TensorProto } from './graph-edit.ts';

/** How the engine picks rows of the combined table: `longOffset` is added once a sequence's length passes `threshold`. */
export interface RopeSwitch {
  threshold: number;
  longOffset: number;
}

export interface RotaryTables {
  cos: string;
  sin: string;
  /** Columns: half the rotary dimension. */
  width: number;
  switch?: RopeSwitch;
}

function producerOf(graph: GraphProto, name: string): NodeProto | undefined {
  return graph.node?.find((n) => n.output?.includes(name));
}

/** The constant a LongRoPE condition compares the total length with: `Greater(total, threshold)`. */
function switchThreshold(graph: GraphProto, condition: string): number {
  const greater = producerOf(graph, condition);
  const bound = greater?.opType === 'Greater' ? constantTensor(graph, greater.input?.[1] ?? '') : undefined;
  const values = bound ? int64sOf(bound) : [];
  if (values.length !== 1) throw new Error(`rotary cache switch ${condition} is not Greater(total length, constant)`);
  return Number(values[0]);
}

export function rotaryTables(graph: GraphProto, b: GraphBuilder, cos: string, sin: string, ns: string): RotaryTables {
  const cosInit = constantTensor(graph, cos);
  const sinInit = constantTensor(graph, sin);
  if (cosInit?.dims && sinInit) return { cos, sin, width: Number(cosInit.dims[1]) };
  const producer = producerOf(graph, cos);
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
    const name = b.constant(`${ns}/rotary/${output}_table`, DType.FLOAT, [rows, width], data);
    return { name, width, shortRows };
  };
  const condition = producer.input?.[0];
  if (!condition) throw new Error('If without a condition');
  const threshold = switchThreshold(graph, condition);
  const cosTable = table(cos);
  const sinTable = table(sin);
  return { cos: cosTable.name, sin: sinTable.name, width: cosTable.width, switch: { threshold, longOffset: cosTable.shortRows } };
}
