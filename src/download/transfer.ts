/**
 * One file: FILE.part grows until it has every byte, is verified (size, then sha256 or git sha1
 * when the listing has one) and is renamed into place. A final file therefore only ever exists
 * complete and verified, which is why a later run may skip it by size alone.
 */
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { ChecksumMismatchError } from './errors.ts';
import { expectedHash, hashFromDisk, startHash, type HashAlgorithm } from './hashing.ts';
import type { RemoteFile } from './listing.ts';
import { fillPart, sizeOf, type PartContext } from './part-file.ts';

export interface TransferContext extends PartContext {
  outDir: string;
  /** Re-hash files that are already complete instead of trusting their size. */
  verifyExisting: boolean;
}

export type FileOutcome = 'skipped' | 'downloaded' | 'resumed';

export interface FileReport {
  name: string;
  size: number;
  outcome: FileOutcome;
  /** What the bytes were checked against. 'size' alone for files skipped without --verify or listed without a hash. */
  check: HashAlgorithm | 'size';
  /** Bytes that were already in FILE.part when this run picked it up. */
  resumedFrom?: number;
}

export function destinationOf(outDir: string, name: string): string {
  return path.join(outDir, ...name.split('/'));
}

/** Bytes of `file` that are already on disk and count as progress before any transfer. */
export async function bytesOnDisk(outDir: string, file: RemoteFile): Promise<number> {
  const dest = destinationOf(outDir, file.name);
  if ((await sizeOf(dest)) === file.size) return file.size;
  const part = (await sizeOf(`${dest}.part`)) ?? 0;
  return part <= file.size ? part : 0;
}

export async function transferFile(ctx: TransferContext, file: RemoteFile): Promise<FileReport> {
  const dest = destinationOf(ctx.outDir, file.name);
  const part = `${dest}.part`;
  const expected = expectedHash(file);
  ctx.progress.file(file.name);
  await mkdir(path.dirname(dest), { recursive: true });

  if ((await sizeOf(dest)) === file.size) {
    if (!ctx.verifyExisting || !expected) return { name: file.name, size: file.size, outcome: 'skipped', check: 'size' };
    const hash = startHash(expected.algorithm, file.size);
    await hashFromDisk(hash, dest, file.size);
    if (hash.digest('hex') === expected.hex) {
      return { name: file.name, size: file.size, outcome: 'skipped', check: expected.algorithm };
    }
    ctx.progress.log(`${file.name}: the existing file does not match its ${expected.algorithm}; downloading it again`);
    ctx.progress.advance(-file.size);
  }

  let resumeAt = (await sizeOf(part)) ?? 0;
  if (resumeAt > file.size) {
    // Longer than the file can be: left over from another revision. bytesOnDisk counted it as 0.
    await rm(part, { force: true });
    resumeAt = 0;
  }
  try {
    resumeAt = await fillPart(ctx, file, part, expected, resumeAt);
  } catch (err) {
    // A .part from an older revision resumes "fine" and only fails the hash: one clean retry settles it.
    if (!(err instanceof ChecksumMismatchError) || resumeAt === 0) throw err;
    ctx.progress.log(`${file.name}: the resumed file failed its ${err.algorithm} check; downloading it again from the start`);
    await fillPart(ctx, file, part, expected, 0);
    resumeAt = 0;
  }
  await rename(part, dest);
  return {
    name: file.name,
    size: file.size,
    outcome: resumeAt > 0 ? 'resumed' : 'downloaded',
    check: expected?.algorithm ?? 'size',
    ...(resumeAt > 0 ? { resumedFrom: resumeAt } : {}),
  };
}
