/**
 * The web playground's files (public/): found beside the sources (npm start) or beside dist/ (the
 * image copies public/ to /app/public), read once at startup, and served with a strict
 * Content-Security-Policy: everything from this origin, no inline script or style, no framing.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findUp } from '../find-up.ts';

/** URL prefix of the page's assets; the page itself is `/`. */
export const PLAYGROUND_PREFIX = '/playground/';

/** The files served, by name in public/ (nothing else there is reachable: no directory listing, no .d.ts). */
const FILES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'markdown.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers on every playground response. */
export const PLAYGROUND_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  // Revalidate every time (the ETag makes that a 304): a restarted server may ship new files.
  'cache-control': 'no-cache',
};

export interface PlaygroundAsset {
  /** public/ file name. */
  name: string;
  contentType: string;
  body: Buffer;
  etag: string;
}

/** The nearest public/ folder holding index.html above this file (src/server or dist/src/server). */
export function findPublicDir(from: string = dirname(fileURLToPath(import.meta.url))): string {
  const index = findUp(join('public', 'index.html'), from);
  if (!index) throw new Error(`the playground's files (public/index.html) were not found above ${from}; start with --no-ui to serve without them`);
  return dirname(index);
}

export function loadPlaygroundAssets(dir: string = findPublicDir()): PlaygroundAsset[] {
  return Object.entries(FILES).map(([name, contentType]) => {
    const body = readFileSync(join(dir, name));
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    return { name, contentType, body, etag };
  });
}
