/**
 * Where each downloadable variant lives in Microsoft's ONNX repo, and what a servable folder must contain.
 */

export const DEFAULT_REPO = 'microsoft/Phi-4-mini-instruct-onnx';
export const DEFAULT_REVISION = 'main';
export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export const VARIANTS = {
  'cpu-int4': 'cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4',
  'gpu-int4': 'gpu/gpu-int4-rtn-block-32',
} as const;

export type VariantName = keyof typeof VARIANTS;

export function isVariantName(name: string): name is VariantName {
  return Object.hasOwn(VARIANTS, name);
}

/**
 * The files the server opens by name. model.onnx.data is not listed: it is referenced from inside
 * model.onnx, and other decoder exports (Phi-3/3.5-mini) name or split their external data differently.
 */
export const REQUIRED_FILES = ['genai_config.json', 'model.onnx', 'tokenizer.json', 'tokenizer_config.json'] as const;
