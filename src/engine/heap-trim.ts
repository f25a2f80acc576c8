/**
 * Gives the C heap's free pages back to the system (glibc malloc_trim, through the small addon in
 * native/malloc-trim, built by `npm install`). Without it, memory freed by onnxruntime (a model's
 * weights after its unload, a long prompt's scratch) stays resident. Without the addon (no
 * compiler at install time) this does nothing.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findUp } from '../find-up.ts';

const ADDON = 'native/malloc-trim/build/Release/malloc_trim.node';

let addon: { trim(): boolean } | null | undefined;

function load(): { trim(): boolean } | null {
  const file = findUp(ADDON, dirname(fileURLToPath(import.meta.url)));
  try {
    return file ? (createRequire(import.meta.url)(file) as { trim(): boolean }) : null;
  } catch {
    return null;
  }
}

/** True when memory was given back; false when there was none to give or the addon is missing. */
export function trimHeap(): boolean {
  addon ??= load();
  return addon?.trim() ?? false;
}

/** Whether trimming works here (for the startup log). */
export function heapTrimAvailable(): boolean {
  addon ??= load();
  return addon !== null;
}
