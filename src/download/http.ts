/**
 * HTTP to the Hub: redirects followed by hand, stall timeouts, and transport errors turned into
 * the "are you offline?" error. Used directly for ranged file GETs and, as a `fetch`, by @huggingface/hub.
 */
import {
  DownloadError,
  HubUnreachableError,
  StallTimeoutError,
  classifyTransportError,
  describeTransportError,
} from './errors.ts';

export interface HubConnection {
  /** e.g. https://huggingface.co, without a trailing slash. */
  endpoint: string;
  /** Sent as a Bearer token, but only to the endpoint's own origin. */
  token?: string;
  /** Named in the offline message as the place to copy the folder to. */
  outDir: string;
  /** Abort a request that receives nothing (headers or body bytes) for this long. */
  stallTimeoutMs: number;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;

export interface StallTimer {
  readonly signal: AbortSignal;
  /** Call on every sign of life (headers, a body chunk). */
  touch(): void;
  clear(): void;
}

export function stallTimer(ms: number): StallTimer {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new StallTimeoutError(ms)), ms);
  // A finished request must not keep the process alive until the timer fires.
  timer.unref();
  return {
    signal: controller.signal,
    touch: () => timer.refresh(),
    clear: () => clearTimeout(timer),
  };
}

interface HopRequest {
  method?: string;
  headers: Headers;
  signal: AbortSignal;
}

/**
 * One request with redirects followed manually. The Hub answers large files with a redirect to a
 * CDN on another origin with a signed URL: the token must not travel there (it would leak, and
 * S3-style stores reject a second auth mechanism), and fetch's own stripping is not guaranteed on
 * every Node 20 release. Connection failures become HubUnreachableError.
 */
export async function hubRequest(conn: HubConnection, url: string, req: HopRequest): Promise<Response> {
  const hubOrigin = new URL(conn.endpoint).origin;
  const auth = req.headers.get('authorization');
  let current = new URL(url);
  let method = req.method ?? 'GET';
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers = new Headers(req.headers);
    if (auth !== null && current.origin === hubOrigin) headers.set('authorization', auth);
    else headers.delete('authorization');
    let res: Response;
    try {
      res = await fetch(current, { method, headers, signal: req.signal, redirect: 'manual' });
    } catch (err) {
      throw connectFailure(conn, current, err);
    }
    const location = res.headers.get('location');
    if (!REDIRECT_STATUSES.has(res.status) || location === null) return res;
    await res.body?.cancel().catch(() => undefined);
    if (res.status === 303) method = 'GET';
    current = new URL(location, current);
  }
  throw new DownloadError(`more than ${MAX_REDIRECTS} redirects starting at ${url}`);
}

/** Errors before any response arrived: unreachable (or silent) hosts get the offline message. */
function connectFailure(conn: HubConnection, url: URL, err: unknown): unknown {
  const kind = classifyTransportError(err);
  const stalled = err instanceof StallTimeoutError;
  if (kind === 'unreachable' || stalled) {
    return new HubUnreachableError(conn.endpoint, conn.outDir, `${describeTransportError(err)} connecting to ${url.host}`, {
      cause: err,
    });
  }
  return err;
}

/**
 * A `fetch` for @huggingface/hub's helpers: same redirect and token rules, plus a timeout. The
 * helpers read small JSON bodies or none, so the timer is not refreshed per chunk.
 */
export function hubLibFetch(conn: HubConnection): typeof fetch {
  return async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const timer = stallTimer(conn.stallTimeoutMs);
    const signal = init?.signal ? AbortSignal.any([init.signal, timer.signal]) : timer.signal;
    return hubRequest(conn, url, { method: init?.method, headers: new Headers(init?.headers), signal });
  };
}

/**
 * GET of a file from byte `start` on. `Accept-Encoding: identity` because offsets must refer to the
 * stored bytes; a CDN compressing on the fly would make them meaningless.
 */
export async function getFrom(conn: HubConnection, url: string, start: number, signal: AbortSignal): Promise<Response> {
  const headers = new Headers({ 'accept-encoding': 'identity' });
  if (start > 0) headers.set('range', `bytes=${start}-`);
  if (conn.token) headers.set('authorization', `Bearer ${conn.token}`);
  return hubRequest(conn, url, { headers, signal });
}

/** Start offset of a 206 answer, from `Content-Range: bytes START-END/TOTAL`; undefined if unparsable. */
export function contentRangeStart(res: Response): number | undefined {
  const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(res.headers.get('content-range')?.trim() ?? '');
  return m ? Number(m[1]) : undefined;
}
