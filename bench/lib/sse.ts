/**
 * An incremental server-sent-events parser (WHATWG "event stream interpretation"): feed it text
 * as it arrives, in any split, and it returns the events completed by that text.
 *
 * Lines end in LF, CRLF or CR (a CR at the end of a chunk waits for the next one, in case an LF
 * follows). `data:` lines accumulate (joined by LF), a blank line dispatches, `:` lines are
 * comments, one space after the colon is dropped, and an event cut off by the end of the stream
 * is discarded, as browsers do. Bytes must be decoded with a streaming UTF-8 decoder before
 * feeding (a multi-byte character may be split across network chunks).
 */

export interface SseEvent {
  /** The `event:` field, "message" when absent. */
  event: string;
  data: string;
  id?: string;
}

export class SseParser {
  private buffer = '';
  private dataLines: string[] = [];
  private hasData = false;
  private eventType = '';
  private lastId: string | undefined;

  /** Parses `text` and returns the events it completed, in order. */
  feed(text: string): SseEvent[] {
    this.buffer += text;
    const out: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const c = this.buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      if (c === 13 && i === this.buffer.length - 1) break; // CR at the end: maybe CRLF, wait.
      this.line(this.buffer.slice(start, i), out);
      if (c === 13 && this.buffer.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
    return out;
  }

  /** The stream ended: a pending CR still ends its line; an undispatched event is dropped. */
  end(): SseEvent[] {
    const out: SseEvent[] = [];
    if (this.buffer.endsWith('\r')) this.line(this.buffer.slice(0, -1), out);
    this.buffer = '';
    this.dataLines = [];
    this.hasData = false;
    this.eventType = '';
    return out;
  }

  private line(line: string, out: SseEvent[]): void {
    if (line.length === 0) {
      if (this.hasData) {
        const ev: SseEvent = { event: this.eventType || 'message', data: this.dataLines.join('\n') };
        if (this.lastId !== undefined) ev.id = this.lastId;
        out.push(ev);
      }
      this.dataLines = [];
      this.hasData = false;
      this.eventType = '';
      return;
    }
    if (line.charCodeAt(0) === 58) return; // ':' comment
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    switch (field) {
      case 'data':
        this.dataLines.push(value);
        this.hasData = true;
        break;
      case 'event':
        this.eventType = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastId = value;
        break;
      default:
        break; // 'retry' and unknown fields do not matter to a benchmark client
    }
  }
}
