/**
 * The nearest `relativePath` at or above `from`. Files shipped beside the sources (package.json,
 * public/) sit a different number of levels up from src/ (tsx) and from dist/src/ (the build).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

export function findUp(relativePath: string, from: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, relativePath);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}
