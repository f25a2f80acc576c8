/**
 * int4 weights requantized to int8, for onnxruntime's u8 x s8 integer GEMM.
 *
 * `MatMulNBits` stores weights [N, K] as 4-bit blocks along K: byte j of a block holds elements
 * 2j (low nibble) and 2j + 1 (high nibble), dequantized as (q - 8) * scale[n, block] (no zero
 * points). Here each output column n gets one int8 scale, absmax / 127, and its K weights are
 * rounded to it: a block with a smaller scale than the column's largest loses precision, which is
 * the price of the integer GEMM. Weights come out transposed, [K, N], as MatMulInteger reads B.
 */

export interface Int8Weights {
  /** [K, N] row-major. */
  weights: Int8Array;
  /** [N]: w[k, n] ≈ weights[k, n] * scales[n]. */
  scales: Float32Array;
  /** [N]: the sum over k of weights[k, n], for the activations' zero-point correction. */
  columnSums: Float32Array;
}

/** Columns decoded at a time: their K values fit in cache while they are written out transposed. */
const TILE = 64;

export function requantizeInt4(blob: Uint8Array, blockScales: Float32Array, k: number, n: number, blockSize: number): Int8Weights {
  const blocks = k / blockSize;
  const bytesPerColumn = k / 2;
  if (!Number.isInteger(blocks) || blob.length !== n * bytesPerColumn || blockScales.length !== n * blocks) {
    throw new RangeError(`int4 weights of ${blob.length} bytes and ${blockScales.length} scales do not make a [${n}, ${k}] matrix in blocks of ${blockSize}`);
  }
  const weights = new Int8Array(k * n);
  const scales = new Float32Array(n);
  const columnSums = new Float32Array(n);
  const tile = new Int8Array(TILE * k);
  for (let n0 = 0; n0 < n; n0 += TILE) {
    const width = Math.min(TILE, n - n0);
    for (let c = 0; c < width; c++) scales[n0 + c] = requantizeColumn(blob, blockScales, n0 + c, k, blocks, blockSize, tile.subarray(c * k, (c + 1) * k), columnSums);
    // Row by row, so the writes into the [K, N] matrix are contiguous runs of the tile's width.
    for (let row = 0; row < k; row++) {
      const at = row * n + n0;
      for (let c = 0; c < width; c++) weights[at + c] = tile[c * k + row];
    }
  }
  return { weights, scales, columnSums };
}

/** Decodes column `col` into `out` as int8 at its own scale; returns the scale and adds the column's sum to `sums`. */
function requantizeColumn(blob: Uint8Array, blockScales: Float32Array, col: number, k: number, blocks: number, blockSize: number, out: Int8Array, sums: Float32Array): number {
  const byteBase = col * (k / 2);
  const scaleBase = col * blocks;
  let absmax = 0;
  for (let b = 0; b < blocks; b++) {
    const s = Math.abs(blockScales[scaleBase + b]);
    let qmax = 0;
    const start = byteBase + (b * blockSize) / 2;
    for (let j = 0; j < blockSize / 2; j++) {
      const byte = blob[start + j];
      qmax = Math.max(qmax, Math.abs((byte & 15) - 8), Math.abs((byte >> 4) - 8));
    }
    absmax = Math.max(absmax, qmax * s);
  }
  const scale = absmax > 0 ? absmax / 127 : 1;
  let sum = 0;
  for (let b = 0; b < blocks; b++) {
    const ratio = blockScales[scaleBase + b] / scale;
    const start = byteBase + (b * blockSize) / 2;
    for (let j = 0; j < blockSize / 2; j++) {
      const byte = blob[start + j];
      const lo = clampInt8(Math.round(((byte & 15) - 8) * ratio));
      const hi = clampInt8(Math.round(((byte >> 4) - 8) * ratio));
      out[b * blockSize + 2 * j] = lo;
      out[b * blockSize + 2 * j + 1] = hi;
      sum += lo + hi;
    }
  }
  sums[col] = sum;
  return scale;
}

function clampInt8(v: number): number {
  return v > 127 ? 127 : v < -127 ? -127 : v;
}
