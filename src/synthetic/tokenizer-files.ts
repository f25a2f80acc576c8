/** The tokenizer files of a synthetic model folder: each family's real tokenizer, written as save_pretrained lays it out. */
import { writePhi4TokenizerFiles } from './phi4-tokenizer.ts';
import type { ModelFamily } from './presets.ts';
import { writeQwen25TokenizerFiles } from './qwen2-tokenizer.ts';

export { PHI4_CHAT_TEMPLATE, PHI4_SPECIAL_TOKENS } from './phi4-tokenizer.ts';

/** Writes the family's tokenizer files into `dir` (created if missing); Phi-4-mini's by default. */
export function writeTokenizerFiles(dir: string, family: ModelFamily = 'phi3'): Promise<void> {
  return family === 'qwen2' ? writeQwen25TokenizerFiles(dir) : writePhi4TokenizerFiles(dir);
}
