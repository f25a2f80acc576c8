/**
 * A small typed layer over the ONNX protobuf messages, enough to emit decoder graphs
 * the way onnxruntime-genai's builder does: named nodes, initializers in external data,
 * Constant-valued subgraphs and symbolic dimensions.
 */
import onnxProto from 'onnx-proto';
import type { ExternalDataWriter } from '../synthetic/external-data.ts';

export const { onnx } = onnxProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type GraphProto = onnxProto.onnx.IGraphProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;

export const DType = {
  FLOAT: onnx.TensorProto.DataType.FLOAT,
  UINT8: onnx.TensorProto.DataType.UINT8,
  INT32: onnx.TensorProto.DataType.INT32,
  INT64: onnx.TensorProto.DataType.INT64,
  BOOL: onnx.TensorProto.DataType.BOOL,
} as const;
export type DType = (typeof DType)[keyof typeof DType];

export type AttrValue = number | string | number[] | GraphProto | { float: number } | { tensor: TensorProto };
const AT = onnx.AttributeProto.AttributeType;

function attribute(name: string, value: AttrValue): AttributeProto {
  if (typeof value === 'number') {
    return Number.isInteger(value) ? { name, type: AT.INT, i: value } : { name, type: AT.FLOAT, f: value };
  }
  if (typeof value === 'string') return { name, type: AT.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: AT.INTS, ints: value };
  if ('float' in value) return { name, type: AT.FLOAT, f: value.float };
  if ('tensor' in value) return { name, type: AT.TENSOR, t: value.tensor };
  return { name, type: AT.GRAPH, g: value };
}

export function valueInfo(name: string, elemType: DType, shape: (number | string)[]): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

export function bytesOf(data: Float32Array | Int32Array | BigInt64Array | Uint8Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export function inlineTensor(
  name: string,
  elemType: DType,
  dims: number[],
  data: Float32Array | Int32Array | BigInt64Array | Uint8Array,
): TensorProto {
  return { name, dataType: elemType, dims, rawData: bytesOf(data) };
}

/**
 * Collects nodes and initializers of one graph. Large initializers are streamed to the
 * external data file as they are produced, so a multi-gigabyte model never sits in memory.
 */
export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];

  constructor(private readonly external?: ExternalDataWriter) {}

  node(
    opType: string,
    inputs: string[],
    outputs: string[],
    attrs: Record<string, AttrValue> = {},
    opts: { name: string; domain?: string },
  ): NodeProto {
    const node: NodeProto = {
      name: opts.name,
      opType,
      domain: opts.domain ?? '',
      input: inputs,
      output: outputs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    };
    this.nodes.push(node);
    return node;
  }

  /** A node whose single output is named `${name}/output_0`, as the genai builder names them. */
  op(opType: string, name: string, inputs: string[], attrs: Record<string, AttrValue> = {}, domain?: string): string {
    const out = `${name}/output_0`;
    this.node(opType, inputs, [out], attrs, { name, domain });
    return out;
  }

  /** A small constant tensor as an initializer. */
  constant(name: string, elemType: DType, dims: number[], data: Float32Array | Int32Array | BigInt64Array): string {
    this.initializers.push(inlineTensor(name, elemType, dims, data));
    return name;
  }

  /**
   * A weight: `fill` writes its bytes chunk by chunk; they go to external data when a writer
   * is attached and the tensor is big enough to matter, inline otherwise.
   */
  weight(name: string, elemType: DType, dims: number[], byteLength: number, fill: WeightFiller): string {
    if (this.external && byteLength >= 1024) {
      const { offset, length } = this.external.write(byteLength, fill);
      this.initializers.push({
        name,
        dataType: elemType,
        dims,
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: this.external.fileName },
          { key: 'offset', value: String(offset) },
          { key: 'length', value: String(length) },
        ],
      });
    } else {
      const buf = new Uint8Array(byteLength);
      fill(buf, 0);
      this.initializers.push({ name, dataType: elemType, dims, rawData: buf });
    }
    return name;
  }
}

/** Writes the bytes [start, start + chunk.length) of a tensor into `chunk`. */
export type WeightFiller = (chunk: Uint8Array, start: number) => void;

export interface ModelSpec {
  graph: GraphProto;
  opsets: { domain: string; version: number }[];
  irVersion: number;
  producerName: string;
  producerVersion?: string;
}

export function encodeModel(spec: ModelSpec): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: spec.irVersion,
    producerName: spec.producerName,
    producerVersion: spec.producerVersion ?? '',
    opsetImport: spec.opsets,
    graph: spec.graph,
  });
  return onnx.ModelProto.encode(model).finish();
}
