/**
 * HTTP/1.1 written by hand on a plain socket, for what a client library would normalise or refuse
 * to send (percent-encoded, absolute-form or dot-segment targets, malformed headers) and to see
 * exactly what the server writes back.
 */
import net from 'node:net';

export interface RawResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: string;
  /** What the server sent, one char per byte. */
  raw: string;
}

/** Writes `bytes`, then collects everything the server sends until it closes the connection. */
export function exchange(url: string, bytes: string | Buffer, capMs = 30_000): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    let data = '';
    const socket = net.connect(Number(port), '127.0.0.1', () => socket.write(bytes));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${capMs} ms; received: ${JSON.stringify(data.slice(0, 200))}`));
    }, capMs);
    socket.on('data', (d) => (data += d.toString('latin1')));
    // A reset after the server wrote its answer still ends the exchange.
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(data);
    });
  });
}

function dechunk(body: string): string {
  let out = '';
  let at = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', at);
    if (lineEnd < 0) return out;
    const size = parseInt(body.slice(at, lineEnd), 16);
    if (!(size > 0)) return out;
    out += body.slice(lineEnd + 2, lineEnd + 2 + size);
    at = lineEnd + 2 + size + 2;
  }
}

export function parseResponse(raw: string): RawResponse {
  const headEnd = raw.indexOf('\r\n\r\n');
  if (headEnd < 0) throw new Error(`no complete response head in ${JSON.stringify(raw.slice(0, 200))}`);
  const [statusLine, ...lines] = raw.slice(0, headEnd).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!m) throw new Error(`not a status line: ${statusLine}`);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const rest = raw.slice(headEnd + 4);
  // `raw` holds one char per byte (latin1), so chunk sizes count right; the body is UTF-8.
  const bytes = headers['transfer-encoding'] === 'chunked' ? dechunk(rest) : rest;
  return { status: Number(m[1]), headers, body: Buffer.from(bytes, 'latin1').toString('utf8'), raw };
}

export interface RawRequestOptions {
  headers?: Record<string, string>;
  /** Sent as JSON text when not a string. */
  body?: unknown;
}

/** One request with `Connection: close`; `target` goes on the request line exactly as given. */
export async function rawRequest(url: string, method: string, target: string, opts: RawRequestOptions = {}): Promise<RawResponse> {
  const body = opts.body === undefined ? '' : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  const headers: Record<string, string> = { host: 'localhost', connection: 'close', ...opts.headers };
  if (opts.body !== undefined) {
    headers['content-type'] ??= 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  const head = [`${method} ${target} HTTP/1.1`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
  return parseResponse(await exchange(url, Buffer.from(`${head}\r\n\r\n${body}`, 'utf8')));
}
