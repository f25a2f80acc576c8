/**
 * Errors the downloader reports to people. Each message says what went wrong and what to do next,
 * because the CLI prints `message` as is and exits nonzero.
 */

export class DownloadError extends Error {
  override name = 'DownloadError';
}

/** Nothing answered at the endpoint: no DNS, connection refused, unreachable network or a connect timeout. */
export class HubUnreachableError extends DownloadError {
  override name = 'HubUnreachableError';
  constructor(
    readonly endpoint: string,
    readonly outDir: string,
    readonly detail: string,
    options?: ErrorOptions,
  ) {
    super(
      `cannot reach the Hugging Face Hub at ${endpoint} (${detail}): are you offline? ` +
        `Run this on a connected machine and copy the folder to ${outDir}` +
        ' (or set HF_ENDPOINT to a reachable mirror).',
      options,
    );
  }
}

/**
 * The connection broke (or stalled) after the transfer had started. What arrived is kept in
 * `partPath`, so running the same command again resumes from there.
 */
export class TransferInterruptedError extends DownloadError {
  override name = 'TransferInterruptedError';
  constructor(
    readonly file: string,
    readonly partPath: string,
    readonly bytesOnDisk: number,
    readonly detail: string,
    options?: ErrorOptions,
  ) {
    super(
      `download of ${file} was interrupted (${detail}) with ${bytesOnDisk} bytes kept in ${partPath}; ` +
        'run the same command again to resume.',
      options,
    );
  }
}

export class ChecksumMismatchError extends DownloadError {
  override name = 'ChecksumMismatchError';
  constructor(
    readonly file: string,
    readonly algorithm: 'sha256' | 'git-sha1',
    readonly expected: string,
    readonly actual: string,
  ) {
    super(
      `${algorithm} mismatch for ${file}: the Hub lists ${expected}, the downloaded bytes hash to ${actual}. ` +
        'The partial file was deleted; run the command again (a proxy or mirror may be serving altered content).',
    );
  }
}

export class SizeMismatchError extends DownloadError {
  override name = 'SizeMismatchError';
  constructor(
    readonly file: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`size mismatch for ${file}: expected ${expected} bytes, got ${actual}. The partial file was deleted.`);
  }
}

export class MissingModelFilesError extends DownloadError {
  override name = 'MissingModelFilesError';
  constructor(
    readonly where: string,
    readonly missing: readonly string[],
  ) {
    super(`${where} has no ${missing.join(', ')}: the server needs ${missing.length === 1 ? 'it' : 'them'} to load the model.`);
  }
}

/** Raised when a request sees no bytes for too long; used as an AbortSignal reason. */
export class StallTimeoutError extends Error {
  override name = 'StallTimeoutError';
  constructor(readonly ms: number) {
    super(`no data for ${Math.round(ms / 1000)} s`);
  }
}

/** Transport failures that mean "nothing is listening / no route", as opposed to a dropped connection. */
const UNREACHABLE_CODES = new Set([
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_NONAME',
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Failures after the server had accepted the connection: worth retrying with a Range request. */
const INTERRUPTED_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_CLOSED',
]);

/**
 * The first system/undici error code found along the cause chain. fetch wraps everything in a
 * TypeError("fetch failed"), and happy-eyeballs connects wrap per-address failures in an AggregateError.
 */
export function networkErrorCode(err: unknown): string | undefined {
  const seen = new Set<unknown>();
  let current: unknown = err;
  while (typeof current === 'object' && current !== null && !seen.has(current)) {
    seen.add(current);
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const inner = (current as { errors?: unknown }).errors;
    if (Array.isArray(inner) && inner.length > 0) {
      const codes = inner.map(networkErrorCode).filter((c): c is string => c !== undefined);
      if (codes.length > 0) return codes.find((c) => UNREACHABLE_CODES.has(c)) ?? codes[0];
    }
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

export type TransportFailure = 'unreachable' | 'interrupted' | 'other';

export function classifyTransportError(err: unknown): TransportFailure {
  if (findStall(err)) return 'interrupted';
  const code = networkErrorCode(err);
  if (code === undefined) {
    // undici reports a body cut short as TypeError("terminated") without always keeping the socket cause.
    return err instanceof TypeError && err.message === 'terminated' ? 'interrupted' : 'other';
  }
  if (UNREACHABLE_CODES.has(code)) return 'unreachable';
  if (INTERRUPTED_CODES.has(code)) return 'interrupted';
  return 'other';
}

export function findStall(err: unknown): StallTimeoutError | undefined {
  const seen = new Set<unknown>();
  let current: unknown = err;
  while (typeof current === 'object' && current !== null && !seen.has(current)) {
    if (current instanceof StallTimeoutError) return current;
    seen.add(current);
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

const CODE_TEXT: Readonly<Record<string, string>> = {
  UND_ERR_SOCKET: 'connection closed by the server',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection broken',
  UND_ERR_BODY_TIMEOUT: 'body timeout',
  UND_ERR_HEADERS_TIMEOUT: 'response timeout',
};

/** A short reason for logs and messages; the code stays in it so it can be searched for. */
export function describeTransportError(err: unknown): string {
  const stall = findStall(err);
  if (stall) return stall.message;
  const code = networkErrorCode(err);
  if (code === undefined) return err instanceof Error ? err.message : String(err);
  return CODE_TEXT[code] ? `${CODE_TEXT[code]} (${code})` : code;
}
