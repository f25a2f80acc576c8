/**
 * The export looks tokens up in a 2.46 GB fp32 embedding table with a Gather over memory that
 * ORT maps from the external data file. Each lookup faults in the page around the row and the
 * kernel's read-around pulls in its neighbours, so a 2,048-token prompt leaves ~0.3-0.4 GB of the
 * table resident in the process for a few megabytes of rows. The derived graph takes the
 * embeddings as an input instead, and the engine reads exactly the rows it needs with pread:
 * they pass through the page cache, not through the process's memory.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import onnxProto from 'onnx-proto';
import type { ModelProto } from './derived-model.ts';

const { onnx } = onnxProto;
export const EMBEDDING_METADATA_KEY = 'phi4_server.embedding';
export const INPUTS_EMBEDS = 'inputs_embeds';

/** Where the table's rows are: fp32, row-major, in an external data file beside the model. */
export interface EmbeddingTable {
  location: string;
  offset: number;
  rows: number;
  cols: number;
}

/**
 * Replaces the Gather of `inputIds` into an external fp32 table by a graph input `inputs_embeds`.
 * Returns where the table is, or undefined (graph untouched) when the lookup is not of that form.
 */
export function moveEmbeddingOutOfGraph(model: ModelProto, inputIds: string): EmbeddingTable | undefined {
  const graph = model.graph;
  if (!graph?.node) return undefined;
  const gather = graph.node.find((n) => n.opType === 'Gather' && (n.domain ?? '') === '' && n.input?.[1] === inputIds);
  const tableName = gather?.input?.[0];
  const table = graph.initializer?.find((t) => t.name === tableName);
  const axis = Number(gather?.attribute?.find((a) => a.name === 'axis')?.i ?? 0);
  if (!gather || !table || axis !== 0 || table.dataType !== onnx.TensorProto.DataType.FLOAT || table.dims?.length !== 2) return undefined;
  const ext = (key: string) => table.externalData?.find((e) => e.key === key)?.value ?? undefined;
  const location = ext('location');
  if (table.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL || !location || isAbsolute(location) || location.includes('..')) return undefined;
  const [rows, cols] = table.dims.map(Number);
  const embeds = gather.output?.[0];
  if (!embeds) return undefined;
  graph.node = graph.node.filter((n) => n !== gather);
  for (const n of graph.node) n.input = (n.input ?? []).map((x) => (x === embeds ? INPUTS_EMBEDS : x));
  graph.input = [
    ...(graph.input ?? []),
    {
      name: INPUTS_EMBEDS,
      type: {
        tensorType: {
          elemType: onnx.TensorProto.DataType.FLOAT,
          shape: { dim: [{ dimParam: 'batch_size' }, { dimParam: 'sequence_length' }, { dimValue: cols }] },
        },
      },
    },
  ];
  return { location, offset: Number(ext('offset') ?? 0), rows, cols };
}

/** Reads embedding rows from the external data file into a reused buffer. */
export class EmbeddingReader {
  private readonly fd: number;
  private buffer = new Float32Array(0);

  constructor(
    modelPath: string,
    readonly table: EmbeddingTable,
  ) {
    this.fd = openSync(join(dirname(modelPath), table.location), 'r');
  }

  /** The rows of `tokens`, [tokens.length * cols]; valid until the next call. */
  rows(tokens: readonly number[]): Float32Array {
    const { cols, rows, offset } = this.table;
    const n = tokens.length * cols;
    if (this.buffer.length < n) this.buffer = new Float32Array(Math.max(n, this.buffer.length * 2));
    const bytes = new Uint8Array(this.buffer.buffer, 0, n * 4);
    const rowBytes = cols * 4;
    for (let i = 0; i < tokens.length; i++) {
      const id = tokens[i];
      if (!Number.isInteger(id) || id < 0 || id >= rows) throw new RangeError(`token id ${id} is outside the vocabulary of ${rows}`);
      const got = readSync(this.fd, bytes, i * rowBytes, rowBytes, offset + id * rowBytes);
      if (got !== rowBytes) throw new Error(`short read of embedding row ${id}`);
    }
    return this.buffer.subarray(0, n);
  }

  close(): void {
    closeSync(this.fd);
  }
}
