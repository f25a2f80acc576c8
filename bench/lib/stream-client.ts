/**
 * A small streaming client for OpenAI-style SSE responses, on node:http.
 *
 * Why not fetch: undici's fetch aborts when response headers take longer than 300 s, and this
 * server sends its headers only once the first token exists (queue wait + prefill), which for
 * 2,048-token prompts behind a queue can take minutes. node:http has no such limit, and its
 * per-chunk cost is lower and steadier (fewer promise hops between the socket and our clock).
 *
 * Per request it records when each content chunk arrived (relative to just before the request
 * was written), and takes the exact token counts from `stream_options.include_usage`.
 */
import http from 'node:http';
import { SseParser } from './sse.ts';

export interface StreamRequest {
  host: string;
  port: number;
  path: string;
  body: unknown;
  agent?: http.Agent;
  /** Whole-request cap, from writing the request to the end of the stream. */
  timeoutMs: number;
  signal?: AbortSignal;
  headers?: Record<string, string>;
  /** Called with performance.now() as each chunk with content arrives. */
  onContent?: (at: number) => void;
}

export interface StreamMetrics {
  ok: boolean;
  status: number;
  error?: string;
  /** performance.now() just before the request was written. */
  startedAt: number;
  /** Response headers arrived (ms after start). */
  headersMs: number | null;
  /** First chunk with non-empty content (ms after start). */
  ttftMs: number | null;
  /** The stream ended (ms after start). */
  e2eMs: number;
  /** Arrival of every chunk with non-empty content (ms after start), ascending. */
  contentTimesMs: number[];
  textChars: number;
  /** The content received, in order. */
  text: string;
  promptTokens: number | null;
  /** usage.prompt_tokens_details.cached_tokens: prompt tokens served from the prefix cache. */
  cachedTokens: number | null;
  completionTokens: number | null;
  finishReason: string | null;
  sawDone: boolean;
}

/** Content of one chunk of /v1/completions (`text`) or /v1/chat/completions (`delta.content`). */
function chunkContent(choice: Record<string, unknown>): string {
  if (typeof choice.text === 'string') return choice.text;
  const delta = choice.delta as Record<string, unknown> | undefined;
  return delta && typeof delta.content === 'string' ? delta.content : '';
}

export function streamCompletion(req: StreamRequest): Promise<StreamMetrics> {
  return new Promise((resolve) => {
    const payload = JSON.stringify(req.body);
    const m: StreamMetrics = {
      ok: false,
      status: 0,
      startedAt: performance.now(),
      headersMs: null,
      ttftMs: null,
      e2eMs: 0,
      contentTimesMs: [],
      textChars: 0,
      text: '',
      promptTokens: null,
      cachedTokens: null,
      completionTokens: null,
      finishReason: null,
      sawDone: false,
    };
    let settled = false;
    const finish = (error?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
      m.e2eMs = performance.now() - m.startedAt;
      if (error !== undefined) m.error = error;
      m.ok = error === undefined && m.status === 200 && m.sawDone;
      if (m.ok === false && m.error === undefined) m.error = m.sawDone ? `HTTP ${m.status}` : 'stream ended without [DONE]';
      resolve(m);
    };

    const httpReq = http.request({
      host: req.host,
      port: req.port,
      path: req.path,
      method: 'POST',
      agent: req.agent,
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
        accept: 'text/event-stream',
        ...req.headers,
      },
    });
    const timer = setTimeout(() => {
      httpReq.destroy(new Error(`timed out after ${req.timeoutMs} ms`));
    }, req.timeoutMs);
    const onAbort = (): void => void httpReq.destroy(new Error('aborted'));
    req.signal?.addEventListener('abort', onAbort, { once: true });
    if (req.signal?.aborted) onAbort();

    httpReq.on('error', (err) => finish(err.message));
    httpReq.on('response', (res) => {
      m.status = res.statusCode ?? 0;
      m.headersMs = performance.now() - m.startedAt;
      res.setEncoding('utf8'); // a StringDecoder: multi-byte characters split across chunks stay whole
      if (m.status !== 200) {
        let body = '';
        res.on('data', (s: string) => {
          if (body.length < 2000) body += s;
        });
        res.on('end', () => finish(`HTTP ${m.status}: ${body.slice(0, 500)}`));
        res.on('error', (err) => finish(err.message));
        return;
      }
      const parser = new SseParser();
      let streamError: string | undefined;
      const onEvents = (events: ReturnType<SseParser['feed']>, now: number): void => {
        for (const ev of events) {
          if (ev.data === '[DONE]') {
            m.sawDone = true;
            continue;
          }
          let chunk: Record<string, unknown>;
          try {
            chunk = JSON.parse(ev.data) as Record<string, unknown>;
          } catch {
            streamError ??= `unparseable SSE data: ${ev.data.slice(0, 200)}`;
            continue;
          }
          if (chunk.error !== undefined) {
            streamError ??= `in-band error: ${JSON.stringify(chunk.error).slice(0, 300)}`;
            continue;
          }
          const choices = Array.isArray(chunk.choices) ? (chunk.choices as Record<string, unknown>[]) : [];
          for (const choice of choices) {
            const text = chunkContent(choice);
            if (text.length > 0) {
              const t = now - m.startedAt;
              m.ttftMs ??= t;
              m.contentTimesMs.push(t);
              m.textChars += text.length;
              m.text += text;
              req.onContent?.(now);
            }
            if (typeof choice.finish_reason === 'string') m.finishReason = choice.finish_reason;
          }
          const usage = chunk.usage as Record<string, unknown> | null | undefined;
          if (usage && typeof usage.completion_tokens === 'number') {
            m.completionTokens = usage.completion_tokens;
            m.promptTokens = typeof usage.prompt_tokens === 'number' ? usage.prompt_tokens : null;
            const details = usage.prompt_tokens_details as Record<string, unknown> | null | undefined;
            m.cachedTokens = typeof details?.cached_tokens === 'number' ? details.cached_tokens : null;
          }
        }
      };
      res.on('data', (s: string) => onEvents(parser.feed(s), performance.now()));
      res.on('end', () => {
        onEvents(parser.end(), performance.now());
        finish(streamError);
      });
      res.on('error', (err) => finish(err.message));
      res.on('aborted', () => finish('response aborted'));
    });
    httpReq.end(payload);
  });
}

/** Gaps between successive content chunks (ms). */
export function interTokenLatencies(m: Pick<StreamMetrics, 'contentTimesMs'>): number[] {
  const t = m.contentTimesMs;
  const out: number[] = [];
  for (let i = 1; i < t.length; i++) out.push(t[i] - t[i - 1]);
  return out;
}

/** Tokens after the first per second of the time between first and last content chunk. */
export function decodeTokensPerSecond(m: Pick<StreamMetrics, 'contentTimesMs' | 'completionTokens'>): number {
  const t = m.contentTimesMs;
  const n = m.completionTokens ?? t.length;
  if (t.length < 2 || n < 2) return Number.NaN;
  return ((n - 1) * 1000) / (t[t.length - 1] - t[0]);
}

/** GET returning the parsed JSON body (or null) and the status; bounded by timeoutMs. */
export function getJson(host: string, port: number, path: string, timeoutMs: number): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const r = http.get({ host, port, path, agent: false, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (s: string) => (text += s));
      res.on('end', () => {
        let body: unknown = null;
        try {
          body = JSON.parse(text);
        } catch {
          body = text;
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    });
    r.on('timeout', () => r.destroy(new Error(`GET ${path} timed out`)));
    r.on('error', reject);
  });
}
