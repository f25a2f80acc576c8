/**
 * Streaming parser for tagged tool calls, in two syntaxes (see ToolCallSyntax):
 *
 * - Phi-4-mini answers a tool call as `<|tool_call|>[{"name": ..., "arguments": {...}}]<|/tool_call|>`
 *   (or, untagged, `functools[...]`);
 * - Qwen2.5 (Hermes style) writes one `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`
 *   block per call, blocks separated by a newline.
 *
 * The parser turns output text arriving in arbitrary chunks into content and tool-call events, so the
 * server can stream OpenAI `delta.tool_calls` without ever leaking the tags. Non-streaming responses
 * are built from the same events. A region may hold one call object or a list of them in either syntax.
 *
 * Region text is scanned one character at a time by a small JSON scanner (strings, escapes,
 * nesting depth); text that could still be the start of a marker is held back until it is decided,
 * so any chunking of the same output yields the same content and calls.
 */

export type ToolParseEvent =
  | { type: 'content'; text: string }
  | { type: 'call'; index: number; name: string }
  | { type: 'arguments'; index: number; text: string };

export interface ParsedToolCall {
  name: string;
  arguments: string;
}

/** How a model family tags its calls. */
export interface ToolCallSyntax {
  open: string;
  close: string;
  /** Phi-4's untagged `functools[...]` form is recognised too. */
  functools: boolean;
  /**
   * Whitespace between content and a call, between two calls and after the last one is layout, not
   * content (Qwen2.5 puts a newline around every block).
   */
  trimAroundCalls: boolean;
}

export const PHI4_TOOL_SYNTAX: ToolCallSyntax = Object.freeze({ open: '<|tool_call|>', close: '<|/tool_call|>', functools: true, trimAroundCalls: false });
export const HERMES_TOOL_SYNTAX: ToolCallSyntax = Object.freeze({ open: '<tool_call>', close: '</tool_call>', functools: false, trimAroundCalls: true });

const FUNC = 'functools';
// The marker is `functools` plus whitespace; the `[` stays in the region so it opens the array.
const FUNC_OPEN = /functools\s*(?=\[)/;
const FUNC_HELD = /functools\s*$/;
const WS = /\s/;

/** Scanner state of one JSON value (or key) being read. */
interface Token {
  raw: string;
  /** A bare number/true/false/null: it ends at the first character that is not part of it. */
  primitive: boolean;
  depth: number;
  inStr: boolean;
  esc: boolean;
}

/** One call object `{...}` being read. */
interface CallObject {
  phase: 'key' | 'colon' | 'value';
  tok?: Token;
  key: string;
  role?: 'name' | 'rawArgs' | 'stringArgs';
  /** -1 until the name is known and the call event emitted. */
  index: number;
  /** Arguments text that arrived before the name. */
  pendingArgs: string;
  argsSeen: boolean;
}

interface Region {
  functools: boolean;
  /** Whitespace trimmed off the content before the opening tag: content again if the region is not a call. */
  lead: string;
  /** Region text so far, kept until a call is emitted so a malformed region can become content; null after. */
  raw: string | null;
  started: boolean;
  arrayOpen: boolean;
  obj?: CallObject;
}

function newRegion(marker: string, functools: boolean, lead: string): Region {
  return { functools, lead, raw: marker, started: false, arrayOpen: false };
}

function newObject(): CallObject {
  return { phase: 'key', key: '', index: -1, pendingArgs: '', argsSeen: false };
}

function newToken(ch: string): Token {
  const t: Token = { raw: '', primitive: !'"{['.includes(ch), depth: 0, inStr: false, esc: false };
  scan(t, ch);
  return t;
}

/** Advances a token by one char: 'done' when ch completes it, 'end' when ch lies past a bare primitive. */
function scan(t: Token, ch: string): 'more' | 'done' | 'end' {
  if (t.primitive) {
    if (/[\s,}\]]/.test(ch)) return 'end';
  } else if (t.inStr) {
    if (t.esc) t.esc = false;
    else if (ch === '\\') t.esc = true;
    else if (ch === '"') t.inStr = false;
  } else if (ch === '"') t.inStr = true;
  else if (ch === '{' || ch === '[') t.depth++;
  else if (ch === '}' || ch === ']') t.depth--;
  t.raw += ch;
  return !t.primitive && !t.inStr && t.depth === 0 ? 'done' : 'more';
}

/** Decodes a complete JSON string literal; undefined if it is not one. */
function decode(raw: string): string | undefined {
  try {
    const v: unknown = JSON.parse(raw);
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** The earliest opening marker in content text. */
function findOpen(text: string, syntax: ToolCallSyntax): { at: number; marker: string; functools: boolean } | undefined {
  const tag = text.indexOf(syntax.open);
  const fn = syntax.functools ? FUNC_OPEN.exec(text) : null;
  if (fn && (tag < 0 || fn.index < tag)) return { at: fn.index, marker: fn[0], functools: true };
  return tag < 0 ? undefined : { at: tag, marker: syntax.open, functools: false };
}

/** Where the suffix of content text that could still grow into an opening marker starts. */
function heldFrom(text: string, syntax: ToolCallSyntax): number {
  const fn = syntax.functools ? FUNC_HELD.exec(text) : null;
  if (fn) return fn.index;
  for (let k = Math.max(0, text.length - Math.max(syntax.open.length, FUNC.length) + 1); k < text.length; k++) {
    const tail = text.slice(k);
    if (syntax.open.startsWith(tail) || (syntax.functools && FUNC.startsWith(tail))) return k;
  }
  return text.length;
}

/** Where the run of whitespace that ends `text` starts. */
function trailingSpaceFrom(text: string): number {
  let k = text.length;
  while (k > 0 && WS.test(text[k - 1])) k--;
  return k;
}

export class ToolCallParser {
  private buf = '';
  private region?: Region;
  private finishing = false;
  private events: ToolParseEvent[] = [];
  private readonly parsed: ParsedToolCall[] = [];
  /** A call region closed and no content came after it yet (whitespace there is layout when trimming). */
  private afterCall = false;

  constructor(private readonly syntax: ToolCallSyntax = PHI4_TOOL_SYNTAX) {}

  /** Feeds the next piece of output text; returns the events it completes (text that could still be the start of a marker is held back). */
  push(text: string): ToolParseEvent[] {
    this.buf += text;
    this.drain();
    return this.take();
  }

  /** End of the output: flushes held text, closes a call left open (a missing closing tag is tolerated). */
  finish(): ToolParseEvent[] {
    this.finishing = true;
    this.drain();
    if (this.region) this.closeRegion(this.region, '');
    return this.take();
  }

  /** Calls parsed so far, arguments as the concatenation of their fragments. */
  get calls(): ParsedToolCall[] {
    return this.parsed.map((c) => ({ ...c }));
  }

  private take(): ToolParseEvent[] {
    const events = this.events;
    this.events = [];
    return events;
  }

  private drain(): void {
    let pos = 0;
    for (;;) {
      const region = this.region;
      const next = region ? this.scanRegion(region, pos) : this.scanContent(pos);
      // No progress and no mode switch: the rest waits for more text.
      if (next === pos && region === this.region) break;
      pos = next;
    }
    this.buf = this.buf.slice(pos);
  }

  private scanContent(pos: number): number {
    const text = this.buf.slice(pos);
    const trim = this.syntax.trimAroundCalls;
    const open = findOpen(text, this.syntax);
    if (open) {
      let before = text.slice(0, open.at);
      let lead = '';
      if (trim) {
        if (this.afterCall) before = before.trimStart();
        const end = trailingSpaceFrom(before);
        lead = before.slice(end);
        before = before.slice(0, end);
      }
      this.content(before);
      this.region = newRegion(open.marker, open.functools, lead);
      return pos + open.at + open.marker.length;
    }
    let keep = this.finishing ? text.length : heldFrom(text, this.syntax);
    // Trailing whitespace waits: it is layout if a call follows.
    if (trim && !this.finishing) keep = trailingSpaceFrom(text.slice(0, keep));
    let out = text.slice(0, keep);
    if (trim && this.afterCall) out = out.trimStart();
    this.content(out);
    return pos + keep;
  }

  private scanRegion(r: Region, pos: number): number {
    for (; pos < this.buf.length; pos++) {
      const ch = this.buf[pos];
      // A closing tag counts anywhere outside a JSON string; inside one it is argument text.
      const close = this.syntax.close;
      if (ch === close[0] && !r.obj?.tok?.inStr) {
        if (this.buf.startsWith(close, pos)) {
          this.closeRegion(r, close);
          return pos + close.length;
        }
        if (!this.finishing && close.startsWith(this.buf.slice(pos))) return pos;
      }
      if (!(r.obj ? this.stepObject(r, r.obj, ch) : this.stepTop(r, ch))) {
        // Not a call after all: the region so far is content, and ch is rescanned as content.
        this.content(r.lead + (r.raw ?? ''));
        this.region = undefined;
        return pos;
      }
      if (this.region !== r) return pos + 1;
      if (r.raw !== null) r.raw += ch;
    }
    return pos;
  }

  /** Between call objects. Returns false when the region turns out malformed before any call. */
  private stepTop(r: Region, ch: string): boolean {
    if (WS.test(ch) || (ch === ',' && r.started)) return true;
    if (ch === '{') {
      r.started = true;
      r.obj = newObject();
      return true;
    }
    if (ch === '[' && !r.started) {
      r.started = r.arrayOpen = true;
      return true;
    }
    if (ch === ']' && r.arrayOpen) {
      r.arrayOpen = false;
      if (r.functools) this.closeRegion(r, ']');
      return true;
    }
    // Emitted calls cannot be taken back, so stray text after one is dropped.
    return r.raw === null;
  }

  private stepObject(r: Region, o: CallObject, ch: string): boolean {
    if (o.tok) return this.stepToken(r, o, o.tok, ch);
    if (WS.test(ch)) return true;
    if (o.phase === 'key') {
      if (ch === ',') return true;
      if (ch === '"') {
        o.tok = newToken(ch);
        return true;
      }
      if (ch === '}') {
        this.endCall(o);
        r.obj = undefined;
        return true;
      }
    } else if (o.phase === 'colon') {
      if (ch === ':') {
        o.phase = 'value';
        return true;
      }
    } else if (!',:}]'.includes(ch)) {
      this.startValue(o, ch);
      return true;
    }
    if (r.raw !== null) return false;
    // After a call was emitted, give up on this object and resync between objects.
    this.endCall(o);
    r.obj = undefined;
    return this.stepTop(r, ch);
  }

  private stepToken(r: Region, o: CallObject, t: Token, ch: string): boolean {
    const res = scan(t, ch);
    if (res === 'end') {
      this.endValue(r, o, t);
      return this.stepObject(r, o, ch);
    }
    if (o.phase === 'value' && o.role === 'rawArgs') this.emitArgs(o, ch);
    if (res === 'done' && o.phase === 'key') {
      o.key = decode(t.raw) ?? '';
      o.phase = 'colon';
      o.tok = undefined;
    } else if (res === 'done') this.endValue(r, o, t);
    return true;
  }

  private startValue(o: CallObject, ch: string): void {
    // Only the first arguments/parameters value counts, so the arguments text stays one JSON value.
    const args = (o.key === 'arguments' || o.key === 'parameters') && !o.argsSeen;
    o.argsSeen ||= args;
    o.role = o.key === 'name' ? 'name' : args ? (ch === '"' ? 'stringArgs' : 'rawArgs') : undefined;
    o.tok = newToken(ch);
    if (o.role === 'rawArgs') this.emitArgs(o, ch);
  }

  private endValue(r: Region, o: CallObject, t: Token): void {
    o.tok = undefined;
    o.phase = 'key';
    if (o.role === 'name' && o.index < 0) {
      const name = decode(t.raw);
      if (name !== undefined) this.openCall(r, o, name);
    } else if (o.role === 'stringArgs') {
      this.emitArgs(o, decode(t.raw) ?? t.raw);
    }
  }

  private openCall(r: Region, o: CallObject, name: string): void {
    o.index = this.parsed.length;
    this.parsed.push({ name, arguments: '' });
    r.raw = null;
    this.events.push({ type: 'call', index: o.index, name });
    this.emitArgs(o, o.pendingArgs);
  }

  private emitArgs(o: CallObject, text: string): void {
    if (!text) return;
    if (o.index < 0) {
      o.pendingArgs += text;
      return;
    }
    this.parsed[o.index].arguments += text;
    const last = this.events.at(-1);
    if (last?.type === 'arguments' && last.index === o.index) last.text += text;
    else this.events.push({ type: 'arguments', index: o.index, text });
  }

  /** A call object ended (or was cut off): a call without arguments gets `{}`. */
  private endCall(o: CallObject): void {
    if (o.index >= 0 && this.parsed[o.index].arguments === '') this.emitArgs(o, '{}');
  }

  private closeRegion(r: Region, tail: string): void {
    if (r.obj) this.endCall(r.obj);
    // A region that produced no call is plain text, markers included.
    if (r.raw !== null) this.content(r.lead + r.raw + tail);
    else this.afterCall = true;
    this.region = undefined;
  }

  private content(text: string): void {
    if (!text) return;
    this.afterCall = false;
    const last = this.events.at(-1);
    if (last?.type === 'content') last.text += text;
    else this.events.push({ type: 'content', text });
  }
}
