/**
 * What to download: the files under one folder of a Hub repo at a revision, with the sizes and
 * content hashes the tree API gives, via @huggingface/hub's listFiles.
 */
import path from 'node:path';
import { HubApiError, listFiles } from '@huggingface/hub';
import { DownloadError } from './errors.ts';
import { hubLibFetch, type HubConnection } from './http.ts';
import { hubLocation } from './variants.ts';

export interface RemoteFile {
  /** Path in the repo, e.g. cpu_and_mobile/…/model.onnx. */
  repoPath: string;
  /** Path relative to the variant folder (and so to the output folder); POSIX separators. */
  name: string;
  size: number;
  /** sha256 of the content, from the LFS pointer; absent for small files kept in git. */
  sha256?: string;
  /** Git blob sha1 for files kept in git itself (not LFS). */
  gitOid?: string;
}

export interface ListRequest {
  repo: string;
  revision: string;
  folder: string;
}

const SHA256 = /^[0-9a-f]{64}$/;
const SHA1 = /^[0-9a-f]{40}$/;

export async function listFolder(conn: HubConnection, req: ListRequest): Promise<RemoteFile[]> {
  const files: RemoteFile[] = [];
  try {
    for await (const entry of listFiles({
      repo: { type: 'model', name: req.repo },
      path: req.folder,
      recursive: true,
      revision: req.revision,
      hubUrl: conn.endpoint,
      accessToken: conn.token,
      fetch: hubLibFetch(conn),
    })) {
      if (entry.type !== 'file') continue;
      const lfsOid = entry.lfs?.oid;
      files.push({
        repoPath: entry.path,
        name: relativeName(req.folder, entry.path),
        size: entry.lfs?.size ?? entry.size,
        sha256: lfsOid !== undefined && SHA256.test(lfsOid) ? lfsOid : undefined,
        // With LFS, `oid` hashes the pointer file, not the content.
        gitOid: entry.lfs === undefined && entry.oid !== undefined && SHA1.test(entry.oid) ? entry.oid : undefined,
      });
    }
  } catch (err) {
    throw explainListingError(err, req);
  }
  if (files.length === 0) {
    throw new DownloadError(`the Hub lists no files in ${hubLocation(req.repo, req.folder)} at revision ${req.revision}.`);
  }
  return files;
}

/**
 * The name under the output folder. Entries come from a server we don't control, so a path that
 * would land outside the output folder is refused rather than trusted.
 */
function relativeName(folder: string, repoPath: string): string {
  const rel = path.posix.relative(folder, repoPath);
  if (rel === '' || rel.startsWith('..') || path.posix.isAbsolute(rel) || rel.split('/').includes('..') || rel.includes('\\')) {
    throw new DownloadError(`the Hub listed an unexpected path ${JSON.stringify(repoPath)} under ${folder === '' ? 'the repo root' : `${folder}/`}`);
  }
  return rel;
}

function explainListingError(err: unknown, req: ListRequest): unknown {
  if (!(err instanceof HubApiError)) return err;
  const where = `${hubLocation(req.repo, req.folder)} (revision ${req.revision})`;
  if (err.statusCode === 401 || err.statusCode === 403) {
    return new DownloadError(
      `the Hub refused access to ${where} (HTTP ${err.statusCode}): it does not exist, or it is gated/private and needs HF_TOKEN set to a token that can read it.`,
      { cause: err },
    );
  }
  if (err.statusCode === 404) {
    return new DownloadError(`not found on the Hub: ${where}. Check --variant and --revision.`, { cause: err });
  }
  return new DownloadError(`listing ${where} failed: ${err.message}`, { cause: err });
}
