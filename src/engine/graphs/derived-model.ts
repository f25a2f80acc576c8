/**
 * Graphs the engine derives from the export at load time. Each derived file lives beside the
 * original (its external data paths stay valid, no weight is duplicated), is rewritten only
 * when the original or the derivation changes, and the original file is never touched. A
 * derivation that makes new weights (the int8 graph) writes them to a data file of its own, named
 * after the stamp, so a derived graph never points at another version's weights.
 */
import { createHash, randomUUID } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import onnxProto from 'onnx-proto';
import type { TensorProto } from './graph-edit.ts';

const { onnx } = onnxProto;
const STAMP_KEY = 'phi4_server.derived_from';

export type ModelProto = onnxProto.onnx.ModelProto;

export interface DerivedModel {
  path: string;
  /** The derived file's metadata (what the rewrite recorded for the engine). */
  metadata: Record<string, string>;
  /** Why the original is used instead, when it is. */
  fallbackReason?: string;
}

/** Where a derivation appends the tensors it makes. */
export interface DataSink {
  /** The file name initializers record as their `location`. */
  readonly location: string;
  /** Appends `bytes` (aligned to 64) and returns their offset. */
  append(bytes: Uint8Array): number;
}

export interface DerivationContext {
  /** The bytes of an initializer of the original, inline or in its external data file. */
  read(tensor: TensorProto): Uint8Array;
  /** The derived graph's own data file (created on first use). */
  data(): DataSink;
  /** Reports how far a long rewrite is (e.g. bytes of new weights written), when someone listens. */
  progress?(done: number, total: number): void;
}

export interface Derivation {
  /** File name infix: model.onnx -> model.<variant>.onnx. */
  variant: string;
  /** Bumped whenever the rewrite changes, so files derived by an older engine are redone. */
  version: number;
  rewrite: (model: ModelProto, context: DerivationContext) => void;
}

export function derivedModelPath(modelPath: string, variant: string): string {
  return join(dirname(modelPath), `${basename(modelPath).replace(/\.onnx$/, '')}.${variant}.onnx`);
}

function stampOf(modelPath: string, derivation: Derivation): string {
  const st = statSync(modelPath);
  return `${basename(modelPath)}:${st.size}:${Math.round(st.mtimeMs)}:${derivation.variant}@${derivation.version}`;
}

function metadataOf(model: ModelProto): Record<string, string> {
  return Object.fromEntries(model.metadataProps.map((p) => [p.key ?? '', p.value ?? '']));
}

function readMetadata(path: string): Record<string, string> | undefined {
  try {
    // Only the metadata is needed, but protobuf has no partial decode; the graph file is small
    // next to the external weights, so decoding it is acceptable at load time.
    return metadataOf(onnx.ModelProto.decode(readFileSync(path)));
  } catch {
    return undefined;
  }
}

/** Reads initializers of the original model from its folder. */
export function tensorReader(dir: string): (tensor: TensorProto) => Uint8Array {
  return (tensor) => {
    if (tensor.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) {
      if (!tensor.rawData) throw new Error(`initializer ${tensor.name} has no raw data`);
      return Uint8Array.from(tensor.rawData);
    }
    const ext = (key: string) => tensor.externalData?.find((e) => e.key === key)?.value ?? undefined;
    const location = ext('location');
    if (!location || isAbsolute(location) || location.includes('..')) throw new Error(`initializer ${tensor.name}: bad external location`);
    const offset = Number(ext('offset') ?? 0);
    const length = Number(ext('length'));
    const out = new Uint8Array(length);
    const fd = openSync(join(dir, location), 'r');
    try {
      if (readSync(fd, out, 0, length, offset) !== length) throw new Error(`short read of ${tensor.name}`);
    } finally {
      closeSync(fd);
    }
    return out;
  };
}

/** Appends to a temporary file that becomes `location` once the derived graph is written. */
class FileSink implements DataSink {
  private fd: number | undefined;
  private size = 0;

  constructor(
    readonly location: string,
    readonly tmpPath: string,
  ) {}

  append(bytes: Uint8Array): number {
    this.fd ??= openSync(this.tmpPath, 'w');
    const offset = Math.ceil(this.size / 64) * 64;
    let written = 0;
    while (written < bytes.length) written += writeSync(this.fd, bytes, written, bytes.length - written, offset + written);
    this.size = offset + bytes.length;
    return offset;
  }

  get used(): boolean {
    return this.fd !== undefined;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
  }
}

/**
 * Returns the derived model's path, writing it when missing or stale. Falls back to the original
 * (with the reason) when the folder is read-only or the graph is not one the rewrite handles.
 */
export function ensureDerivedModel(modelPath: string, derivation: Derivation, progress?: DerivationContext['progress']): DerivedModel {
  const derivedPath = derivedModelPath(modelPath, derivation.variant);
  const stamp = stampOf(modelPath, derivation);
  const existing = existsSync(derivedPath) ? readMetadata(derivedPath) : undefined;
  if (existing?.[STAMP_KEY] === stamp) return { path: derivedPath, metadata: existing };
  const dir = dirname(modelPath);
  // Unique per writer: replicas sharing a volume all run as pid 1 in their containers.
  const unique = randomUUID();
  const dataName = `${basename(derivedPath)}.${createHash('sha256').update(stamp).digest('hex').slice(0, 12)}.data`;
  let sink: FileSink | undefined;
  try {
    const model = onnx.ModelProto.decode(readFileSync(modelPath));
    derivation.rewrite(model, { read: tensorReader(dir), data: () => (sink ??= new FileSink(dataName, join(dir, `${dataName}.tmp-${unique}`))), progress });
    model.metadataProps = model.metadataProps.filter((p) => p.key !== STAMP_KEY);
    model.metadataProps.push(onnx.StringStringEntryProto.create({ key: STAMP_KEY, value: stamp }));
    sink?.close();
    if (sink?.used) renameSync(sink.tmpPath, join(dir, dataName));
    const tmp = `${derivedPath}.tmp-${unique}`;
    writeFileSync(tmp, onnx.ModelProto.encode(model).finish());
    renameSync(tmp, derivedPath);
    removeStaleData(dir, basename(derivedPath), dataName);
    return { path: derivedPath, metadata: metadataOf(model) };
  } catch (err) {
    sink?.close();
    if (sink) rmSync(sink.tmpPath, { force: true });
    return { path: modelPath, metadata: {}, fallbackReason: (err as Error).message };
  }
}

/** Data files an older version of the same derived graph wrote. */
function removeStaleData(dir: string, derivedName: string, keep: string): void {
  for (const f of readdirSync(dir)) {
    if (f !== keep && f.startsWith(`${derivedName}.`) && f.endsWith('.data')) rmSync(join(dir, f), { force: true });
  }
}
