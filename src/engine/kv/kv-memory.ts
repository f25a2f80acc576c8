/**
 * The KV budget: the resident positions of every KV block (running, prefilling and cached
 * sequences) are counted here, and the scheduler asks before it lays anything out wider. A freed
 * buffer is only returned to the system when V8 collects its ArrayBuffer, and nothing allocates
 * on an idle server to prompt that; so once enough has been freed the worker collects garbage
 * itself, and RSS follows the budget's accounting.
 */
import { collectGarbage } from '../gc.ts';
import { bytesPerPosition, type KvFootprint, type KvShape } from './kv-block.ts';

/** Freed bytes that make the next `collect()` run a garbage collection, and the next `collect(true)`. */
const COLLECT_AFTER_BYTES = 64 * 1024 * 1024;
const COLLECT_NOW_AFTER_BYTES = 4 * 1024 * 1024;

export class KvMemory implements KvFootprint {
  private used = 0;
  private freedSinceCollect = 0;
  readonly positionBytes: number;
  /** Positions the whole budget holds. */
  readonly capacity: number;

  constructor(shape: KvShape, budgetBytes: number) {
    this.positionBytes = bytesPerPosition(shape);
    this.capacity = Math.floor(budgetBytes / this.positionBytes);
  }

  get budgetBytes(): number {
    return this.capacity * this.positionBytes;
  }

  get usedPositions(): number {
    return this.used;
  }

  get usedBytes(): number {
    return this.used * this.positionBytes;
  }

  get availablePositions(): number {
    return Math.max(0, this.capacity - this.used);
  }

  grow(positions: number): void {
    this.used += positions;
  }

  shrink(positions: number): void {
    this.used -= positions;
    this.freedSinceCollect += positions * this.positionBytes;
  }

  /**
   * Counts buffers that became garbage outside the KV blocks: onnxruntime-node copies every output
   * of a step (logits, new KV rows) into fresh ArrayBuffers, tens of MB a prompt chunk, and V8 sees
   * them only as small objects.
   */
  discarded(bytes: number): void {
    this.freedSinceCollect += bytes;
  }

  /**
   * Runs a garbage collection if enough KV memory was freed since the last one (call between
   * steps); `soon` lowers the bar, right after a block was reallocated.
   */
  collect(soon = false): void {
    if (this.freedSinceCollect < (soon ? COLLECT_NOW_AFTER_BYTES : COLLECT_AFTER_BYTES)) return;
    this.freedSinceCollect = 0;
    collectGarbage();
  }
}
