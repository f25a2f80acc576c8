/**
 * downloadModel: one variant folder of a model's ONNX repo (Phi-4-mini's by default) into a local folder, flattened
 * (the folder's files land directly in outDir), resumable and verified. No environment reading
 * here: the CLI maps HF_ENDPOINT / HF_TOKEN onto the options.
 */
import { mkdir, statfs } from 'node:fs/promises';
import path from 'node:path';
import { DownloadError, MissingModelFilesError } from './errors.ts';
import type { HubConnection } from './http.ts';
import { listFolder, type RemoteFile } from './listing.ts';
import { checkModelFolder, missingRequiredFiles } from './model-folder.ts';
import { formatBytes, silentProgress, type ProgressReporter } from './progress.ts';
import { bytesOnDisk, transferFile, type FileReport, type TransferContext } from './transfer.ts';
import { DEFAULT_ENDPOINT, DEFAULT_MODEL, DEFAULT_REVISION, MODELS, folderOf, hubLocation, variantsOf, type ModelName } from './variants.ts';

export interface DownloadOptions {
  /** Which model's repo (variants.ts); default phi-4-mini. */
  model?: ModelName;
  /** One of the model's variants (cpu-int4, ...). */
  variant: string;
  outDir: string;
  /** Branch, tag or commit; default "main". */
  revision?: string;
  /** Another repo laid out like the model's; default the model's own. */
  repo?: string;
  /** Hub base URL (the CLI passes HF_ENDPOINT); default https://huggingface.co. */
  endpoint?: string;
  /** Hugging Face access token (the CLI passes HF_TOKEN). */
  token?: string;
  /** In-process resumes per file after a dropped connection or a 5xx/429; default 5. */
  retries?: number;
  /** First wait before such a retry, doubled each time; default 1000 ms. */
  retryDelayMs?: number;
  /** A request that receives nothing for this long is abandoned; default 60 000 ms. */
  stallTimeoutMs?: number;
  /** Re-hash files that are already complete instead of trusting their size; default false. */
  verifyExisting?: boolean;
  progress?: ProgressReporter;
}

export interface DownloadSummary {
  repo: string;
  revision: string;
  /** The repo folder that was downloaded ('' for the repo's root). */
  folder: string;
  /** Absolute path of the output folder. */
  outDir: string;
  totalBytes: number;
  files: FileReport[];
}

export async function downloadModel(opts: DownloadOptions): Promise<DownloadSummary> {
  const outDir = path.resolve(opts.outDir);
  const model = opts.model ?? DEFAULT_MODEL;
  const repo = opts.repo ?? MODELS[model].repo;
  const revision = opts.revision ?? DEFAULT_REVISION;
  const folder = folderOf(model, opts.variant);
  if (folder === undefined) throw new DownloadError(`${model} has no variant "${opts.variant}"; it has ${variantsOf(model).join(', ')}.`);
  const progress = opts.progress ?? silentProgress;
  const conn: HubConnection = {
    endpoint: normalizeEndpoint(opts.endpoint ?? DEFAULT_ENDPOINT),
    token: checkToken(opts.token),
    outDir,
    stallTimeoutMs: opts.stallTimeoutMs ?? 60_000,
  };

  const files = await listFolder(conn, { repo, revision, folder });
  const missing = missingRequiredFiles(files.map((f) => f.name));
  if (missing.length > 0) {
    throw new MissingModelFilesError(`the Hub folder ${hubLocation(repo, folder)} (revision ${revision})`, missing);
  }
  // Small files first: a problem with the configs or tokenizer shows up before gigabytes are spent.
  files.sort((a, b) => a.size - b.size || a.name.localeCompare(b.name));

  await mkdir(outDir, { recursive: true });
  const totalBytes = files.reduce((sum, f) => sum + f.size, 0);
  const done = await alreadyOnDisk(outDir, files);
  await checkFreeSpace(outDir, totalBytes - done);

  const ctx: TransferContext = {
    conn,
    repo,
    revision,
    outDir,
    retries: opts.retries ?? 5,
    retryDelayMs: opts.retryDelayMs ?? 1000,
    verifyExisting: opts.verifyExisting ?? false,
    progress,
  };
  const reports: FileReport[] = [];
  progress.start(totalBytes, done);
  try {
    for (const file of files) {
      const report = await transferFile(ctx, file);
      reports.push(report);
      progress.log(describeReport(report));
    }
  } finally {
    progress.stop();
  }
  checkModelFolder(outDir);
  return { repo, revision, folder, outDir, totalBytes, files: reports };
}

function describeReport(r: FileReport): string {
  const size = formatBytes(r.size);
  if (r.outcome === 'skipped') {
    return `✓ ${r.name} (${size}) already complete${r.check === 'size' ? '' : `, ${r.check} ok`}`;
  }
  const resumed = r.resumedFrom !== undefined ? `, resumed from ${formatBytes(r.resumedFrom)}` : '';
  return `✓ ${r.name} (${size}${resumed}) ${r.check === 'size' ? 'size ok (the Hub lists no hash for it)' : `${r.check} ok`}`;
}

async function alreadyOnDisk(outDir: string, files: readonly RemoteFile[]): Promise<number> {
  let sum = 0;
  for (const f of files) sum += await bytesOnDisk(outDir, f);
  return sum;
}

/** Fails before the transfer rather than hours into it with ENOSPC. */
async function checkFreeSpace(dir: string, needed: number): Promise<void> {
  if (needed <= 0) return;
  const fs = await statfs(dir).catch(() => undefined);
  if (!fs) return; // not every filesystem answers; the writes will tell
  const free = fs.bavail * fs.bsize;
  if (free < needed) {
    throw new DownloadError(`not enough disk space in ${dir}: ${formatBytes(needed)} still to download, ${formatBytes(free)} free.`);
  }
}

function normalizeEndpoint(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new DownloadError(`HF_ENDPOINT / endpoint is not a URL: ${JSON.stringify(endpoint)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new DownloadError(`HF_ENDPOINT / endpoint must be http(s): ${endpoint}`);
  }
  return url.href.replace(/\/+$/, '');
}

/** @huggingface/hub throws a bare TypeError for other tokens; say which setting is wrong instead. */
function checkToken(token: string | undefined): string | undefined {
  const t = token?.trim();
  if (!t) return undefined;
  if (!t.startsWith('hf_')) throw new DownloadError('HF_TOKEN must be a Hugging Face access token (it starts with "hf_").');
  return t;
}
