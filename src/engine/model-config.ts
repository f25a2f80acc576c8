/**
 * Reads an onnxruntime-genai model folder (genai_config.json, config.json) into what the
 * engine needs. Nothing model-specific is assumed beyond the genai I/O convention.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ModelInfo } from './types.ts';

export interface DecoderIoNames {
  inputIds: string;
  attentionMask: string;
  /** Present when the export takes explicit positions (most non-GQA exports). */
  positionIds?: string;
  pastKey: (layer: number) => string;
  pastValue: (layer: number) => string;
  logits: string;
  presentKey: (layer: number) => string;
  presentValue: (layer: number) => string;
}

export interface LoadedModelConfig {
  info: ModelInfo;
  modelPath: string;
  io: DecoderIoNames;
}

export class ModelConfigError extends Error {
  override name = 'ModelConfigError';
}

interface GenaiDecoder {
  filename?: string;
  head_size?: number;
  hidden_size?: number;
  num_attention_heads?: number;
  num_hidden_layers?: number;
  num_key_value_heads?: number;
  inputs?: Record<string, string>;
  outputs?: Record<string, string>;
}

interface GenaiConfig {
  model?: {
    type?: string;
    bos_token_id?: number;
    eos_token_id?: number | number[];
    context_length?: number;
    vocab_size?: number;
    decoder?: GenaiDecoder;
  };
}

function readJson<T>(path: string): T {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (err) {
    throw new ModelConfigError(`cannot read ${path}: ${(err as Error).message}`);
  }
}

function layerPattern(pattern: string | undefined, fallback: string): (layer: number) => string {
  const p = pattern ?? fallback;
  return (layer) => p.replace('%d', String(layer));
}

function requireNumber(value: unknown, what: string, file: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ModelConfigError(`${file} has no numeric ${what}`);
  }
  return value;
}

export function loadModelConfig(modelDir: string): LoadedModelConfig {
  const dir = resolve(modelDir);
  const genaiPath = join(dir, 'genai_config.json');
  if (!existsSync(genaiPath)) {
    throw new ModelConfigError(`${dir} is not an onnxruntime-genai model folder: genai_config.json is missing`);
  }
  const genai = readJson<GenaiConfig>(genaiPath);
  const model = genai.model;
  const decoder = model?.decoder;
  if (!model || !decoder) throw new ModelConfigError(`${genaiPath} has no model.decoder section`);

  // config.json fills gaps some exports leave in genai_config.json; it is optional.
  const hfPath = join(dir, 'config.json');
  const hf = existsSync(hfPath) ? readJson<Record<string, unknown>>(hfPath) : {};

  const modelPath = join(dir, decoder.filename ?? 'model.onnx');
  if (!existsSync(modelPath)) throw new ModelConfigError(`model file missing: ${modelPath}`);

  const numLayers = requireNumber(decoder.num_hidden_layers ?? hf.num_hidden_layers, 'num_hidden_layers', genaiPath);
  const numHeads = requireNumber(decoder.num_attention_heads ?? hf.num_attention_heads, 'num_attention_heads', genaiPath);
  const numKvHeads = requireNumber(decoder.num_key_value_heads ?? hf.num_key_value_heads ?? numHeads, 'num_key_value_heads', genaiPath);
  const hiddenSize = requireNumber(decoder.hidden_size ?? hf.hidden_size, 'hidden_size', genaiPath);
  const headSize = requireNumber(decoder.head_size ?? hf.head_dim ?? hiddenSize / numHeads, 'head_size', genaiPath);
  const contextLength = requireNumber(model.context_length ?? hf.max_position_embeddings, 'context_length', genaiPath);
  const vocabSize = requireNumber(model.vocab_size ?? hf.vocab_size, 'vocab_size', genaiPath);
  const eos = model.eos_token_id ?? (hf.eos_token_id as number | number[] | undefined);
  if (eos === undefined) throw new ModelConfigError(`${genaiPath} has no eos_token_id`);

  const inputs = decoder.inputs ?? {};
  const outputs = decoder.outputs ?? {};
  return {
    modelPath,
    info: {
      dir,
      modelType: model.type ?? String(hf.model_type ?? 'unknown'),
      contextLength,
      vocabSize,
      numLayers,
      numKvHeads,
      headSize,
      hiddenSize,
      eosTokenIds: Array.isArray(eos) ? eos : [eos],
      bosTokenId: model.bos_token_id,
    },
    io: {
      inputIds: inputs.input_ids ?? 'input_ids',
      attentionMask: inputs.attention_mask ?? 'attention_mask',
      positionIds: inputs.position_ids,
      pastKey: layerPattern(inputs.past_key_names, 'past_key_values.%d.key'),
      pastValue: layerPattern(inputs.past_value_names, 'past_key_values.%d.value'),
      logits: outputs.logits ?? 'logits',
      presentKey: layerPattern(outputs.present_key_names, 'present.%d.key'),
      presentValue: layerPattern(outputs.present_value_names, 'present.%d.value'),
    },
  };
}
