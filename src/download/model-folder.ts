/**
 * The files the server needs by name, checked both in the Hub listing (before spending gigabytes)
 * and in the output folder afterwards.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { MissingModelFilesError } from './errors.ts';
import { REQUIRED_FILES } from './variants.ts';

export function missingRequiredFiles(present: Iterable<string>): string[] {
  const have = new Set(present);
  return REQUIRED_FILES.filter((f) => !have.has(f));
}

/** Throws MissingModelFilesError naming every required file absent from `dir`. */
export function checkModelFolder(dir: string): void {
  const missing = REQUIRED_FILES.filter((f) => !existsSync(path.join(dir, f)));
  if (missing.length > 0) throw new MissingModelFilesError(`the model folder ${dir}`, missing);
}
