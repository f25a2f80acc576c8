/** What the families' tokenizer writers share: the added-token layout and save_pretrained's file order. */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** One entry of tokenizer.json's added_tokens. */
export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** HF tooling writes 2-space indented JSON; keeping that makes diffs against a real export readable. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

/** added_tokens.json: save_pretrained writes the map sorted by token string. */
export function addedTokensJson(tokens: Readonly<Record<string, number>>): Record<string, number> {
  const entries = Object.entries(tokens).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return Object.fromEntries(entries);
}

/**
 * Writes the small files, then tokenizer.json via a temp name: a reader that sees tokenizer.json
 * can rely on the rest being there and on the big file being complete.
 */
export async function writeTokenizerFolder(dir: string, small: Record<string, string>, tokenizerJson: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(small)) await writeFile(join(dir, name), text);
  const tmp = join(dir, `tokenizer.json.${process.pid}.tmp`);
  await writeFile(tmp, tokenizerJson);
  await rename(tmp, join(dir, 'tokenizer.json'));
}
