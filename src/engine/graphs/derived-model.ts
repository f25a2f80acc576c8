/**
 * Graphs the engine derives from the export at load time. Each derived file lives beside the
 * original (its external data paths stay valid, no weight is duplicated), is rewritten only
 * when the original or the derivation changes, and the original file is never touched.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import onnxProto from 'onnx-proto';

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

export interface Derivation {
  /** File name infix: model.onnx -> model.<variant>.onnx. */
  variant: string;
  /** Bumped whenever the rewrite changes, so files derived by an older engine are redone. */
  version: number;
  rewrite: (model: ModelProto) => void;
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

/**
 * Returns the derived model's path, writing it when missing or stale. Falls back to the original
 * (with the reason) when the folder is read-only or the graph is not one the rewrite handles.
 */
export function ensureDerivedModel(modelPath: string, derivation: Derivation): DerivedModel {
  const derivedPath = derivedModelPath(modelPath, derivation.variant);
  const stamp = stampOf(modelPath, derivation);
  const existing = existsSync(derivedPath) ? readMetadata(derivedPath) : undefined;
  if (existing?.[STAMP_KEY] === stamp) return { path: derivedPath, metadata: existing };
  try {
    const model = onnx.ModelProto.decode(readFileSync(modelPath));
    derivation.rewrite(model);
    model.metadataProps = model.metadataProps.filter((p) => p.key !== STAMP_KEY);
    model.metadataProps.push(onnx.StringStringEntryProto.create({ key: STAMP_KEY, value: stamp }));
    // Unique per writer: replicas sharing a volume all run as pid 1 in their containers.
    const tmp = `${derivedPath}.tmp-${randomUUID()}`;
    writeFileSync(tmp, onnx.ModelProto.encode(model).finish());
    renameSync(tmp, derivedPath);
    return { path: derivedPath, metadata: metadataOf(model) };
  } catch (err) {
    return { path: modelPath, metadata: {}, fallbackReason: (err as Error).message };
  }
}
