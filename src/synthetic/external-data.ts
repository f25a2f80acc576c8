import { closeSync, openSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import type { WeightFiller } from '../onnx/graph.ts';

// Chunks bound the builder's memory no matter how large a tensor is (the fp32 embedding
// of the real shape is 2.46 GB).
const CHUNK_BYTES = 16 * 1024 * 1024;
// onnxruntime mmaps external data; page alignment keeps every tensor mappable on its own.
const ALIGN = 4096;

/** Appends tensors to a `model.onnx.data` file and tells where each one landed. */
export class ExternalDataWriter {
  readonly fileName: string;
  private fd: number;
  private position = 0;
  private readonly chunk = new Uint8Array(CHUNK_BYTES);

  constructor(
    readonly path: string,
    private readonly onBytes?: (written: number) => void,
  ) {
    this.fileName = basename(path);
    this.fd = openSync(path, 'w');
  }

  write(byteLength: number, fill: WeightFiller): { offset: number; length: number } {
    const pad = (ALIGN - (this.position % ALIGN)) % ALIGN;
    if (pad > 0) {
      writeSync(this.fd, new Uint8Array(pad));
      this.position += pad;
    }
    const offset = this.position;
    for (let start = 0; start < byteLength; start += CHUNK_BYTES) {
      const n = Math.min(CHUNK_BYTES, byteLength - start);
      const view = this.chunk.subarray(0, n);
      fill(view, start);
      writeSync(this.fd, view);
      this.position += n;
      this.onBytes?.(n);
    }
    return { offset, length: byteLength };
  }

  get bytesWritten(): number {
    return this.position;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
