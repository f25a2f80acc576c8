/**
 * Content hashes the Hub listing lets us check: sha256 for LFS files, the git blob sha1 for files
 * kept in git. Both are computed while streaming, so a 5 GB file is never held in memory.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { RemoteFile } from './listing.ts';

export type HashAlgorithm = 'sha256' | 'git-sha1';

export interface ExpectedHash {
  algorithm: HashAlgorithm;
  hex: string;
}

export function expectedHash(file: RemoteFile): ExpectedHash | undefined {
  if (file.sha256) return { algorithm: 'sha256', hex: file.sha256 };
  if (file.gitOid) return { algorithm: 'git-sha1', hex: file.gitOid };
  return undefined;
}

/** A fresh hash for a file of `size` bytes; git hashes a "blob SIZE\0" header before the content. */
export function startHash(algorithm: HashAlgorithm, size: number): Hash {
  if (algorithm === 'sha256') return createHash('sha256');
  return createHash('sha1').update(`blob ${size}\0`);
}

/** Feeds the first `bytes` bytes of a file on disk into `hash` (used to resume from a .part). */
export async function hashFromDisk(hash: Hash, filePath: string, bytes: number): Promise<void> {
  if (bytes === 0) return;
  const stream = createReadStream(filePath, { start: 0, end: bytes - 1, highWaterMark: 1 << 20 });
  for await (const chunk of stream) hash.update(chunk as Buffer);
}
