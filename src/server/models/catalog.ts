/**
 * Which models the server offers: one folder (--model-dir), or every model folder inside
 * --models-dir, named after the folder, with aliases from an optional `models.json` there:
 *   { "phi-4-mini-instruct": { "aliases": ["phi4", "gpt-4o-mini"] } }
 * A folder that cannot be served (no genai_config.json, unreadable config, missing files) is
 * still listed, with the reason, so an operator sees it beside the good ones.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, deriveModelName } from '../../config.ts';
import { loadModelConfig } from '../../engine/model-config.ts';
import { int8Variant } from '../../engine/graphs/int8-model.ts';
import { integerWeightsFor } from '../../engine/cpu-features.ts';

export interface ModelSource {
  /** The name clients send in `model`. */
  readonly name: string;
  readonly aliases: readonly string[];
  readonly dir: string;
  /** Why the folder cannot be served, found without loading it. */
  readonly problem?: string;
  /** The model's own context window (genai_config.json), when readable. */
  readonly contextLength?: number;
  /** genai_config.json's model type (phi3, qwen2, ...). */
  readonly family?: string;
  /** Bytes of weights on disk the loaded model keeps resident (the export, and its int8 copy when used). */
  readonly weightBytes: number;
}

export const ALIASES_FILE = 'models.json';
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json'];

/** The model in `dir`, described without loading it. */
export function describeModelFolder(dir: string, name: string, aliases: readonly string[], withInt8: boolean): ModelSource {
  const base = { name, aliases, dir, weightBytes: weightBytes(dir, withInt8) };
  try {
    const { info } = loadModelConfig(dir);
    const missing = TOKENIZER_FILES.filter((f) => !existsSync(path.join(dir, f)));
    const problem = missing.length > 0 ? `missing ${missing.join(', ')}` : undefined;
    return { ...base, contextLength: info.contextLength, family: info.modelType, ...(problem ? { problem } : {}) };
  } catch (err) {
    return { ...base, problem: relativeMessage(err, dir) };
  }
}

/** Every model folder in `modelsDir` (hidden folders and lost+found skipped), sorted by name. */
export function scanModelsDir(modelsDir: string, withInt8: boolean): ModelSource[] {
  if (!existsSync(modelsDir) || !statSync(modelsDir).isDirectory()) throw new ConfigError(`--models-dir: ${modelsDir} is not a folder`);
  const aliases = readAliases(modelsDir);
  const folders = readdirSync(modelsDir, { withFileTypes: true })
    .filter((d) => !d.name.startsWith('.') && d.name !== 'lost+found')
    .filter((d) => d.isDirectory() || (d.isSymbolicLink() && isFolder(path.join(modelsDir, d.name))))
    .map((d) => d.name)
    .sort();
  const sources = folders.map((folder) =>
    describeModelFolder(path.join(modelsDir, folder), deriveModelName(folder), aliases[folder] ?? [], withInt8),
  );
  checkNamesUnique(sources);
  for (const folder of Object.keys(aliases)) {
    if (!folders.includes(folder)) throw new ConfigError(`${path.join(modelsDir, ALIASES_FILE)}: no folder named "${folder}"`);
  }
  return sources;
}

function readAliases(modelsDir: string): Record<string, string[]> {
  const file = path.join(modelsDir, ALIASES_FILE);
  if (!existsSync(file)) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${file}: ${(err as Error).message}`);
  }
  const out: Record<string, string[]> = {};
  for (const [folder, entry] of Object.entries(isObject(parsed) ? parsed : {})) {
    const list = isObject(entry) ? entry.aliases : undefined;
    if (!Array.isArray(list) || !list.every((a) => typeof a === 'string' && a.trim() !== '')) {
      throw new ConfigError(`${file}: "${folder}" needs { "aliases": ["name", ...] }`);
    }
    out[folder] = list.map((a: string) => a.trim());
  }
  return out;
}

function checkNamesUnique(sources: readonly ModelSource[]): void {
  const seen = new Map<string, string>();
  for (const s of sources) {
    for (const n of [s.name, ...s.aliases]) {
      const other = seen.get(n);
      if (other !== undefined && other !== s.name) throw new ConfigError(`model name "${n}" is used by both ${other} and ${s.name}`);
      seen.set(n, s.name);
    }
  }
}

/** The export's graph and external data, plus the int8 weights the engine wrote beside it (when they may be used). */
function weightBytes(dir: string, withInt8: boolean): number {
  let total = 0;
  let files: string[] = [];
  try {
    files = readdirSync(dir);
  } catch {
    return 0;
  }
  // Only this CPU's weight type: a folder may also hold the other one, written on another machine.
  const int8Prefix = `model.${int8Variant(integerWeightsFor())}.onnx`;
  for (const f of files) {
    const exportFile = f === 'model.onnx' || (f.startsWith('model.onnx') && f.endsWith('.data'));
    const int8File = withInt8 && f.startsWith(int8Prefix) && f.endsWith('.data');
    if (exportFile || int8File) total += statSync(path.join(dir, f)).size;
  }
  return total;
}

/** Error text without the server's absolute paths (clients read it in 503s). */
function relativeMessage(err: unknown, dir: string): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split(dir).join(path.basename(dir));
}

function isFolder(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false; // a dangling link
  }
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
