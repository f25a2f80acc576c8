/**
 * A stand-in for the Hugging Face Hub on 127.0.0.1: the tree API and /resolve/ as @huggingface/hub
 * and the downloader call them, with LFS files redirected to a "CDN" on a second port (another
 * origin, like cdn-lfs.hf.co) that refuses requests carrying an Authorization header, as S3 does
 * with presigned URLs. Both honour Range. Faults (cut, stall, ignore Range, corrupt) are injected per file.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeFile {
  /** Path in the repo. */
  path: string;
  content: Buffer;
  /** Stored with LFS: listed with an lfs sha256 and served through the CDN redirect. */
  lfs?: boolean;
}

export interface RecordedRequest {
  server: 'hub' | 'cdn';
  method: string;
  url: string;
  range?: string;
  authorization?: string;
}

export type Fault =
  /** Send `bytes` of the body, then destroy the socket. */
  | { kind: 'cut'; bytes: number }
  /** Send `bytes` of the body, then go silent with the connection open. */
  | { kind: 'stall'; bytes: number }
  /** Answer 200 with the whole file whatever the Range header says. */
  | { kind: 'ignore-range' }
  /** Serve bytes that differ from the listed hash (same size). */
  | { kind: 'corrupt' };

export interface FakeHubOptions {
  repo: string;
  revision?: string;
  files: FakeFile[];
  /** When set, the tree API and /resolve/ answer 401 unless `Authorization: Bearer <token>`. */
  requireToken?: string;
}

export interface FakeHub {
  /** Hub base URL, for HF_ENDPOINT. */
  url: string;
  cdnUrl: string;
  requests: RecordedRequest[];
  /** Inject a fault into the next `times` content GETs of `path` (probes with Range bytes=0-0 are not affected). */
  fault(path: string, fault: Fault, times?: number): void;
  close(): Promise<void>;
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

function gitOid(buf: Buffer): string {
  return createHash('sha1').update(`blob ${buf.length}\0`).update(buf).digest('hex');
}

/** Deterministic pseudo-random bytes: content that would expose any offset mistake. */
export function bytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export async function startFakeHub(opts: FakeHubOptions): Promise<FakeHub> {
  const revision = opts.revision ?? 'main';
  const requests: RecordedRequest[] = [];
  const faults = new Map<string, { fault: Fault; left: number }[]>();
  const byPath = new Map(opts.files.map((f) => [f.path, f]));
  const bySha = new Map(opts.files.filter((f) => f.lfs).map((f) => [sha256(f.content), f]));

  const record = (server: RecordedRequest['server'], req: http.IncomingMessage): void => {
    requests.push({
      server,
      method: req.method ?? 'GET',
      url: req.url ?? '',
      range: req.headers.range,
      authorization: req.headers.authorization,
    });
  };

  const takeFault = (path: string): Fault | undefined => {
    const list = faults.get(path);
    const entry = list?.find((f) => f.left > 0);
    if (!entry) return undefined;
    entry.left--;
    return entry.fault;
  };

  /** Serves a file body with Range support and the injected faults. */
  const serveContent = (req: http.IncomingMessage, res: http.ServerResponse, file: FakeFile, etag: string): void => {
    const range = req.headers.range;
    const isProbe = range === 'bytes=0-0';
    const fault = isProbe ? undefined : takeFault(file.path);
    let content = file.content;
    if (fault?.kind === 'corrupt') {
      content = Buffer.from(content);
      content[content.length >> 1] ^= 0xff;
    }
    const total = content.length;
    let start = 0;
    let end = total - 1;
    let status = 200;
    const m = range && fault?.kind !== 'ignore-range' ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
    if (m) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), total - 1) : total - 1;
      if (start >= total) {
        res.writeHead(416, { 'content-range': `bytes */${total}` });
        res.end();
        return;
      }
      status = 206;
    }
    const body = content.subarray(start, end + 1);
    res.writeHead(status, {
      'content-type': 'application/octet-stream',
      'content-length': body.length,
      'accept-ranges': 'bytes',
      etag: `"${etag}"`,
      ...(status === 206 ? { 'content-range': `bytes ${start}-${end}/${total}` } : {}),
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (fault?.kind === 'cut' || fault?.kind === 'stall') {
      const cutAt = fault.bytes;
      res.write(body.subarray(0, cutAt), () => {
        if (fault.kind === 'cut') req.socket.destroy();
      });
      return;
    }
    res.end(body);
  };

  const authorized = (req: http.IncomingMessage): boolean =>
    opts.requireToken === undefined || req.headers.authorization === `Bearer ${opts.requireToken}`;

  const cdn = http.createServer((req, res) => {
    record('cdn', req);
    if (req.headers.authorization !== undefined) {
      sendJson(res, 400, { error: 'Only one auth mechanism allowed' });
      return;
    }
    const sha = /^\/blobs\/([0-9a-f]{64})\?/.exec(req.url ?? '')?.[1];
    const file = sha ? bySha.get(sha) : undefined;
    if (!file || !sha) {
      sendJson(res, 404, { error: 'NoSuchKey' });
      return;
    }
    serveContent(req, res, file, sha);
  });
  const cdnUrl = await listen(cdn);

  const repoPrefix = `/${opts.repo}/resolve/${revision}/`;
  const treeRoot = `/api/models/${opts.repo}/tree/${revision}`;
  /** The folder a tree request lists ('' for the repo's root, which @huggingface/hub asks for without a slash), or undefined. */
  const treeFolder = (pathname: string): string | undefined =>
    pathname === treeRoot ? '' : pathname.startsWith(`${treeRoot}/`) ? pathname.slice(treeRoot.length + 1).replace(/\/$/, '') : undefined;

  const hub = http.createServer((req, res) => {
    record('hub', req);
    const url = new URL(req.url ?? '/', 'http://fake');
    const pathname = decodeURIComponent(url.pathname);
    const folder = treeFolder(pathname);
    if ((folder !== undefined || pathname.startsWith(repoPrefix)) && !authorized(req)) {
      sendJson(res, 401, { error: 'Invalid credentials in Authorization header' }, { 'x-error-code': 'RepoNotFound' });
      return;
    }
    if (folder !== undefined) {
      const recursive = url.searchParams.get('recursive') === 'true';
      const prefix = folder === '' ? '' : `${folder}/`;
      const under = opts.files.filter((f) => f.path.startsWith(prefix));
      if (under.length === 0) {
        sendJson(res, 404, { error: `Entry not found` }, { 'x-error-code': 'EntryNotFound' });
        return;
      }
      const entries = under
        .filter((f) => recursive || !f.path.slice(prefix.length).includes('/'))
        .map((f) => ({
          type: 'file',
          path: f.path,
          size: f.content.length,
          oid: f.lfs ? gitOid(Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(f.content)}\n`)) : gitOid(f.content),
          ...(f.lfs ? { lfs: { oid: sha256(f.content), size: f.content.length, pointerSize: 134 } } : {}),
        }));
      sendJson(res, 200, entries);
      return;
    }
    if (pathname.startsWith(repoPrefix)) {
      const file = byPath.get(pathname.slice(repoPrefix.length));
      if (!file) {
        sendJson(res, 404, { error: 'Entry not found' }, { 'x-error-code': 'EntryNotFound' });
        return;
      }
      if (file.lfs) {
        const sha = sha256(file.content);
        res.writeHead(302, {
          location: `${cdnUrl}/blobs/${sha}?X-Amz-Signature=fake`,
          'x-linked-size': String(file.content.length),
          'x-linked-etag': `"${sha}"`,
          'content-length': 0,
        });
        res.end();
        return;
      }
      serveContent(req, res, file, gitOid(file.content));
      return;
    }
    sendJson(res, 404, { error: 'Repository not found' });
  });
  const url = await listen(hub);

  return {
    url,
    cdnUrl,
    requests,
    fault(path, fault, times = 1) {
      const list = faults.get(path) ?? [];
      list.push({ fault, left: times });
      faults.set(path, list);
    },
    async close() {
      for (const server of [hub, cdn]) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
  };
}

/** A port nothing listens on: bind, read the port, close. */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
