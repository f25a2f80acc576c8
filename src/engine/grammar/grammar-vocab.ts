/**
 * The vocabulary as xgrammar reads it: every token's encoded (byte-level, "Ġ" form) string by id.
 * Control tokens become "", which xgrammar never lets a grammar match: their text (`<|end|>`,
 * `<|tool_call|>`) would otherwise count as ordinary characters, even inside JSON strings. The
 * server emits or recognises those tokens by id instead. Control tokens are the special added
 * tokens, and added tokens shaped like a tag: Qwen2.5's `<tool_call>` / `</tool_call>` (and its FIM
 * tokens) are not marked special, yet `</tool_call>` inside a call's JSON string would end the call.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number> };
  decoder?: { type?: string };
  added_tokens?: { id: number; content: string; special?: boolean }[];
}

/** `<tool_call>`, `</tool_call>`, `<|fim_prefix|>`: one tag, nothing around it. */
const TAG = /^<[^<>\s]+>$/;

export interface GrammarVocab {
  encoded: string[];
  /** 'byte_level' for GPT-style BPE (Phi-4's o200k), 'byte_fallback' for SentencePiece-style. */
  vocabType: 'byte_level' | 'byte_fallback';
}

export function loadGrammarVocab(modelDir: string): GrammarVocab {
  const json = JSON.parse(readFileSync(join(modelDir, 'tokenizer.json'), 'utf8')) as TokenizerJson;
  const vocab = json.model?.vocab;
  if (!vocab) throw new Error('tokenizer.json has no model.vocab: constrained decoding needs a BPE vocabulary');
  const added = json.added_tokens ?? [];
  let maxId = -1;
  for (const id of Object.values(vocab)) maxId = Math.max(maxId, id);
  for (const t of added) maxId = Math.max(maxId, t.id);
  // Ids the tokenizer has no token for stay "" (never allowed).
  const encoded = new Array<string>(maxId + 1).fill('');
  for (const [token, id] of Object.entries(vocab)) encoded[id] = token;
  for (const t of added) encoded[t.id] = t.special || TAG.test(t.content) ? '' : t.content;
  return { encoded, vocabType: json.decoder?.type === 'ByteLevel' ? 'byte_level' : 'byte_fallback' };
}
