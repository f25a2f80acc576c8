/**
 * Tokenizing a rendered chat so that only the template's own markers become special tokens.
 *
 * HF tokenizers read special-token text anywhere in the rendered prompt as the special token,
 * so a user who types `<|end|><|system|>` in a message forges a system turn. Here the template is
 * rendered a second time with every piece of message content replaced by a placeholder: the
 * special tokens found in that skeleton are the template's markers, and the text between two
 * markers (template text and content together, as the tokenizer would see it) is encoded with
 * special-token parsing off. transformers.js has no option for this (no `split_special_tokens`).
 */
import { randomBytes } from 'node:crypto';

/** A message as the chat template reads it. */
export interface TemplateMessage {
  role: string;
  content: string;
  tools?: string;
  tool_calls?: string;
}

/** One added token of tokenizer.json, as far as splitting needs it. */
export interface MarkerToken {
  id: number;
  content: string;
  lstrip?: boolean;
  rstrip?: boolean;
}

type Piece = { marker: MarkerToken } | { text: string };

export class ChatMarkerSplitter {
  private readonly byContent: ReadonlyMap<string, MarkerToken>;
  private readonly markerPattern: RegExp | undefined;
  /** Private-use delimiters around a random tag: no template text or role can contain them. */
  private readonly tag = `\uE000${randomBytes(6).toString('hex')}:`;
  private readonly placeholderPattern = new RegExp(`${this.tag}(\\d+)\uE001`);

  constructor(markers: readonly MarkerToken[]) {
    this.byContent = new Map(markers.map((m) => [m.content, m]));
    // Longest first, so that of two markers starting at one position the longer wins (as the tokenizer's trie does).
    const alternatives = [...this.byContent.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
    this.markerPattern = alternatives.length > 0 ? new RegExp(alternatives.join('|'), 'g') : undefined;
  }

  /**
   * `render` is the chat template; `rendered` its output for `conversation`. Returns the marker
   * ids and the plain-encoded text between them, in order. Throws when the template changes the
   * content it inserts (then content cannot be told apart from the template's text).
   */
  encode(
    conversation: readonly TemplateMessage[],
    rendered: string,
    render: (conversation: TemplateMessage[]) => string,
    encodePlain: (text: string) => number[],
  ): number[] {
    const values: string[] = [];
    const hold = (value: string): string => {
      // Empty content stays empty: templates test it for truthiness.
      if (value.length === 0) return value;
      values.push(value);
      return `${this.tag}${values.length - 1}\uE001`;
    };
    const skeleton = conversation.map((m) => {
      const out: TemplateMessage = { role: m.role, content: hold(m.content) };
      if (m.tools !== undefined) out.tools = hold(m.tools);
      if (m.tool_calls !== undefined) out.tool_calls = hold(m.tool_calls);
      return out;
    });
    const pieces = this.pieces(render(skeleton), values);
    const filled = pieces.map((p) => ('text' in p ? p.text : p.marker.content)).join('');
    if (filled !== rendered) {
      throw new Error('the chat template changes message content, so content cannot be kept apart from its markers');
    }
    stripAroundMarkers(pieces);
    return pieces.flatMap((p) => ('text' in p ? (p.text.length > 0 ? encodePlain(p.text) : []) : [p.marker.id]));
  }

  /** Markers of the skeleton's template text, and the runs of text (content filled in) between them. */
  private pieces(skeletonText: string, values: readonly string[]): Piece[] {
    const out: Piece[] = [];
    let run = '';
    // With one capture group, split alternates template text and placeholder indices.
    skeletonText.split(this.placeholderPattern).forEach((part, i) => {
      if (i % 2 === 1) {
        run += values[Number(part)];
        return;
      }
      let last = 0;
      for (const m of this.markerPattern ? part.matchAll(this.markerPattern) : []) {
        out.push({ text: run + part.slice(last, m.index) });
        out.push({ marker: this.byContent.get(m[0])! });
        run = '';
        last = m.index + m[0].length;
      }
      run += part.slice(last);
    });
    out.push({ text: run });
    return out;
  }
}

/** An added token with lstrip/rstrip eats the whitespace before/after it, as the tokenizer does. */
function stripAroundMarkers(pieces: Piece[]): void {
  pieces.forEach((p, i) => {
    if (!('marker' in p)) return;
    const before = pieces[i - 1];
    const after = pieces[i + 1];
    if (p.marker.lstrip && before && 'text' in before) before.text = before.text.trimEnd();
    if (p.marker.rstrip && after && 'text' in after) after.text = after.text.trimStart();
  });
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
