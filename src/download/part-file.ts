/**
 * Filling FILE.part: resolve the file through @huggingface/hub, GET the missing bytes with a Range
 * request, append and hash them as they arrive, retry dropped connections in place, and verify
 * size and hash at the end. The hash state always equals the bytes on disk, so a retry never
 * re-reads the file.
 */
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { HubApiError, fileDownloadInfo, type FileDownloadInfoOutput } from '@huggingface/hub';
import {
  ChecksumMismatchError,
  DownloadError,
  SizeMismatchError,
  TransferInterruptedError,
  classifyTransportError,
  describeTransportError,
} from './errors.ts';
import { hashFromDisk, startHash, type ExpectedHash } from './hashing.ts';
import { contentRangeStart, getFrom, hubLibFetch, stallTimer, type HubConnection } from './http.ts';
import type { RemoteFile } from './listing.ts';
import type { ProgressReporter } from './progress.ts';

export interface PartContext {
  conn: HubConnection;
  repo: string;
  revision: string;
  /** In-process resumes after an interrupted or failed (5xx/429) request, per file. */
  retries: number;
  /** First wait before a retry; doubled each time up to 30 s. */
  retryDelayMs: number;
  progress: ProgressReporter;
}

const MAX_RETRY_DELAY_MS = 30_000;

export async function sizeOf(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The .part being written; the hash always covers exactly the bytes on disk. */
interface PartState {
  fh: FileHandle;
  written: number;
  /** Bytes from an earlier run that were kept (0 once the file had to start over). */
  kept: number;
  hash: ReturnType<typeof startHash> | undefined;
}

/**
 * Brings `part` to the full, verified content (or throws, keeping it for a later resume when that
 * makes sense). Returns how many bytes of an earlier run were kept.
 */
export async function fillPart(
  ctx: PartContext,
  file: RemoteFile,
  part: string,
  expected: ExpectedHash | undefined,
  resumeAt: number,
): Promise<number> {
  const state: PartState = {
    // 'a' keeps what is there and makes every write an append, also after a truncate.
    fh: await open(part, resumeAt > 0 ? 'a' : 'w'),
    written: resumeAt,
    kept: resumeAt,
    hash: expected ? startHash(expected.algorithm, file.size) : undefined,
  };
  try {
    if (state.hash && resumeAt > 0) {
      ctx.progress.file(`${file.name} (checking the ${resumeAt} bytes already downloaded)`);
      await hashFromDisk(state.hash, part, resumeAt);
      ctx.progress.file(file.name);
    }
    let failures = 0;
    while (state.written < file.size) {
      let failure: unknown;
      try {
        await fetchRest(ctx, file, state, expected);
        if (state.written === file.size) break;
        failure = new Error(`the connection ended at byte ${state.written} of ${file.size}`);
      } catch (err) {
        if (!isRetryable(err)) throw await discardIfCorrupt(err, ctx, part, state);
        failure = err;
      }
      if (failures >= ctx.retries) {
        throw new TransferInterruptedError(file.name, part, state.written, describeTransportError(failure), { cause: failure });
      }
      failures++;
      ctx.progress.log(
        `${file.name}: ${describeTransportError(failure)}; resuming at byte ${state.written} (retry ${failures}/${ctx.retries})`,
      );
      await sleep(Math.min(MAX_RETRY_DELAY_MS, ctx.retryDelayMs * 2 ** (failures - 1)));
    }
    await state.fh.sync();
  } finally {
    await state.fh.close();
  }
  const onDisk = (await sizeOf(part)) ?? 0;
  if (onDisk !== file.size) {
    await rm(part, { force: true });
    ctx.progress.advance(-state.written);
    throw new SizeMismatchError(file.name, file.size, onDisk);
  }
  if (expected && state.hash) {
    const actual = state.hash.digest('hex');
    if (actual !== expected.hex) {
      await rm(part, { force: true });
      ctx.progress.advance(-file.size);
      throw new ChecksumMismatchError(file.name, expected.algorithm, expected.hex, actual);
    }
  }
  return state.kept;
}

/** Non-retryable errors that mean the bytes on disk are wrong: drop them so the next run starts clean. */
async function discardIfCorrupt(err: unknown, ctx: PartContext, part: string, state: PartState): Promise<unknown> {
  if (err instanceof SizeMismatchError) {
    await state.fh.truncate(0);
    await rm(part, { force: true });
    ctx.progress.advance(-state.written);
    state.written = 0;
  }
  return err;
}

/** An HTTP status from the file GET itself (the Hub lib's calls raise HubApiError instead). */
class HttpStatusError extends DownloadError {
  override name = 'HttpStatusError';
  constructor(
    readonly status: number,
    message: string,
    readonly retryable = isTransientStatus(status),
  ) {
    super(message);
  }
}

function isTransientStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

function isRetryable(err: unknown): boolean {
  if (err instanceof HttpStatusError) return err.retryable;
  if (err instanceof HubApiError) return isTransientStatus(err.statusCode);
  if (err instanceof DownloadError) return false;
  return classifyTransportError(err) === 'interrupted';
}

function accessHint(status: number): string {
  return status === 401 || status === 403 ? ': set HF_TOKEN to a token that can read this repo' : '';
}

async function restartFromZero(
  ctx: PartContext,
  file: RemoteFile,
  state: PartState,
  expected: ExpectedHash | undefined,
): Promise<void> {
  await state.fh.truncate(0);
  ctx.progress.advance(-state.written);
  state.written = 0;
  state.kept = 0;
  state.hash = expected ? startHash(expected.algorithm, file.size) : undefined;
}

/** The URL to GET (and the size the Hub reports), through @huggingface/hub. */
async function resolveFile(ctx: PartContext, file: RemoteFile): Promise<FileDownloadInfoOutput> {
  // Resolved again on every attempt: the CDN URLs the Hub redirects to are signed and expire.
  let info: FileDownloadInfoOutput | null;
  try {
    info = await fileDownloadInfo({
      repo: { type: 'model', name: ctx.repo },
      path: file.repoPath,
      revision: ctx.revision,
      hubUrl: ctx.conn.endpoint,
      accessToken: ctx.conn.token,
      fetch: hubLibFetch(ctx.conn),
    });
  } catch (err) {
    if (err instanceof HubApiError && !isTransientStatus(err.statusCode)) {
      throw new DownloadError(`resolving ${file.repoPath} failed (HTTP ${err.statusCode})${accessHint(err.statusCode)}`, {
        cause: err,
      });
    }
    throw err;
  }
  if (info === null) {
    throw new DownloadError(`${file.repoPath} is listed but the Hub has no such file at revision ${ctx.revision}`);
  }
  if (info.size !== file.size) {
    throw new DownloadError(
      `the Hub resolves ${file.repoPath} to ${info.size} bytes but listed ${file.size}: ` +
        'the revision may have moved during the download; run the command again.',
    );
  }
  return info;
}

/** One request for the bytes from `state.written` on, appended to the .part as they arrive. */
async function fetchRest(
  ctx: PartContext,
  file: RemoteFile,
  state: PartState,
  expected: ExpectedHash | undefined,
): Promise<void> {
  const info = await resolveFile(ctx, file);
  const timer = stallTimer(ctx.conn.stallTimeoutMs);
  try {
    const res = await getFrom(ctx.conn, info.url, state.written, timer.signal);
    timer.touch();
    if (res.status === 206) {
      const start = contentRangeStart(res);
      if (start !== state.written) {
        await res.body?.cancel().catch(() => undefined);
        throw new DownloadError(
          `asked for ${file.name} from byte ${state.written}, got Content-Range ${res.headers.get('content-range')}`,
        );
      }
    } else if (res.status === 200) {
      if (state.written > 0) {
        ctx.progress.log(`${file.name}: the server ignored the Range request; downloading this file from the start`);
        await restartFromZero(ctx, file, state, expected);
      }
    } else {
      await res.body?.cancel().catch(() => undefined);
      if (res.status === 416) {
        // The server's file is shorter than our .part: that part is from something else.
        await restartFromZero(ctx, file, state, expected);
        throw new HttpStatusError(416, `range not satisfiable for ${file.name}; starting over`, true);
      }
      throw new HttpStatusError(res.status, `GET ${file.repoPath} answered HTTP ${res.status}${accessHint(res.status)}`);
    }
    if (!res.body) return;
    for await (const chunk of res.body) {
      timer.touch();
      const bytes = chunk as Uint8Array;
      if (state.written + bytes.length > file.size) {
        // Throwing out of for-await cancels the body.
        throw new SizeMismatchError(file.name, file.size, state.written + bytes.length);
      }
      await writeAll(state.fh, bytes);
      state.hash?.update(bytes);
      state.written += bytes.length;
      ctx.progress.advance(bytes.length);
    }
  } finally {
    timer.clear();
  }
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}
