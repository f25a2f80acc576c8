/**
 * Prompt text that tokenizes to about N tokens: an instruction line followed by plain English
 * sentences from a fixed word list, different per seed (so no two requests share more than the
 * instruction), cut at a word boundary by binary search on the real tokenizer's count.
 */

export interface TextTokenizer {
  encode(text: string): number[];
}

export interface BuiltPrompt {
  text: string;
  /** Token count under the given tokenizer (what the server should report as prompt_tokens). */
  tokens: number;
}

const WORDS = (
  'time year people way day man thing woman life child world school state family student group country problem hand ' +
  'part place case week company system program question work government number night point home water room mother area ' +
  'money story fact month lot right study book eye job word business issue side kind head house service friend father ' +
  'power hour game line end member law car city community name president team minute idea kid body information back ' +
  'parent face others level office door health person art war history party result change morning reason research girl ' +
  'guy moment air teacher force education foot boy age policy music market sense nation plan college interest death ' +
  'experience effect use class control care field development role effort rate heart drug show leader light voice wife ' +
  'police mind price report decision son view relationship town road arm difference value building action model season ' +
  'society tax director position player record paper space ground form event official matter center couple site project ' +
  'activity star table need court oil situation cost industry figure street image phone data picture practice piece land ' +
  'product doctor wall patient worker news test movie north love support technology step baby computer type attention film ' +
  'tree source organization hair window evidence population site truth river garden bridge engine signal winter summer ' +
  'make take give find tell become leave feel bring begin keep hold write stand hear mean meet include continue learn ' +
  'change lead understand watch follow stop create speak read allow add spend grow open walk win offer remember consider ' +
  'appear buy wait serve send expect build stay fall cut reach remain suggest raise pass sell require report decide pull ' +
  'new good high old great big small large long young important different local social real early only public bad same ' +
  'able late hard major better economic strong possible whole free military true federal international full special easy ' +
  'clear recent certain personal open red difficult available likely short single medical current wrong private past ' +
  'quietly often always never slowly carefully together already almost usually nearly simply probably finally quickly'
).split(/\s+/);

const JOINERS = ['the', 'a', 'of', 'to', 'and', 'in', 'for', 'with', 'on', 'at', 'from', 'by', 'about', 'into', 'over'];

/** mulberry32: small, fast, deterministic. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` words of sentence-shaped text. */
function words(seed: number, count: number): string[] {
  const rnd = seededRandom(seed * 2654435761 + 1);
  const out: string[] = [];
  let inSentence = 0;
  let sentenceLength = 6 + Math.floor(rnd() * 10);
  while (out.length < count) {
    const pool = inSentence > 0 && rnd() < 0.35 ? JOINERS : WORDS;
    let w = pool[Math.floor(rnd() * pool.length)];
    if (inSentence === 0) w = w[0].toUpperCase() + w.slice(1);
    inSentence++;
    if (inSentence >= sentenceLength) {
      w += rnd() < 0.15 ? '?' : '.';
      inSentence = 0;
      sentenceLength = 6 + Math.floor(rnd() * 10);
    }
    out.push(w);
  }
  return out;
}

/**
 * Text of at most `targetTokens` tokens (usually exactly, or one or two fewer where a word
 * boundary forces it). Deterministic for a given (targetTokens, seed, tokenizer).
 */
export function buildPrompt(tok: TextTokenizer, targetTokens: number, seed: number): BuiltPrompt {
  if (!(targetTokens >= 1)) throw new RangeError('targetTokens must be >= 1');
  const head = `Note ${seed}. Summarize the following notes in one paragraph.\n\n`;
  const headTokens = tok.encode(head).length;
  if (headTokens >= targetTokens) {
    // Too short for the instruction: plain words only.
    return fit(tok, '', words(seed, targetTokens * 2), targetTokens);
  }
  // Common English words are mostly one token each; start with a generous word budget.
  let pool = words(seed, Math.ceil(targetTokens * 1.2) + 8);
  while (tok.encode(head + pool.join(' ')).length < targetTokens && pool.length < targetTokens * 8) {
    pool = words(seed, pool.length * 2);
  }
  return fit(tok, head, pool, targetTokens);
}

/** Longest prefix of `pool` (in words) whose text stays within `target` tokens; binary search. */
function fit(tok: TextTokenizer, head: string, pool: string[], target: number): BuiltPrompt {
  const textOf = (n: number) => head + pool.slice(0, n).join(' ');
  let lo = 0; // known to fit (or the head alone)
  let hi = pool.length; // may not fit
  if (tok.encode(textOf(hi)).length <= target) lo = hi;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (tok.encode(textOf(mid)).length <= target) lo = mid;
    else hi = mid;
  }
  const text = textOf(lo);
  return { text, tokens: tok.encode(text).length };
}
