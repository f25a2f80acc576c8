/**
 * The exports `model:download` knows: each model's Hub repo and the folder of each variant in it,
 * and what a servable folder must contain.
 */

export const DEFAULT_REVISION = 'main';
export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export interface HubModel {
  repo: string;
  /** Variant name -> folder in the repo; '' is the repo's root. The first is the default. */
  variants: Readonly<Record<string, string>>;
  /** Default output folder; unset: the server's default real-model folder. */
  outDir?: string;
  /** One line for --help: whose export it is. */
  about: string;
}

export const MODELS = {
  /** Microsoft's own onnxruntime-genai exports (the server's default model). */
  'phi-4-mini': {
    repo: 'microsoft/Phi-4-mini-instruct-onnx',
    variants: {
      'cpu-int4': 'cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4',
      'gpu-int4': 'gpu/gpu-int4-rtn-block-32',
    },
    about: "Microsoft's onnxruntime-genai exports of Phi-4-mini-instruct",
  },
  /**
   * AMD's onnxruntime-genai CPU int4 export of Qwen2.5-0.5B-Instruct, files at the repo root; the
   * checkpoint AMD's Lemonade server runs with its onnxruntime-genai CPU recipe ("oga-cpu").
   * Microsoft's own CPU export of this model (Foundry Local) is not on the Hub.
   */
  'qwen2.5-0.5b': {
    repo: 'amd/Qwen2.5-0.5B-Instruct-quantized_int4-float16-cpu-onnx',
    variants: { 'cpu-int4': '' },
    outDir: 'models/qwen2.5-0.5b-instruct',
    about: "AMD's onnxruntime-genai CPU int4 export of Qwen2.5-0.5B-Instruct",
  },
} as const satisfies Record<string, HubModel>;

export type ModelName = keyof typeof MODELS;
export const DEFAULT_MODEL: ModelName = 'phi-4-mini';

export function isModelName(name: string): name is ModelName {
  return Object.hasOwn(MODELS, name);
}

/** Phi-4-mini's repo and variants, the defaults. */
export const DEFAULT_REPO = MODELS[DEFAULT_MODEL].repo;
export const VARIANTS = MODELS[DEFAULT_MODEL].variants;

export type VariantName = keyof typeof VARIANTS;

export function isVariantName(name: string): name is VariantName {
  return Object.hasOwn(VARIANTS, name);
}

/** The variant names of `model`, the default first. */
export function variantsOf(model: ModelName): string[] {
  return Object.keys(MODELS[model].variants);
}

/** The folder of `variant` in `model`'s repo, or undefined when the model has no such variant. */
export function folderOf(model: ModelName, variant: string): string | undefined {
  const variants: Readonly<Record<string, string>> = MODELS[model].variants;
  return Object.hasOwn(variants, variant) ? variants[variant] : undefined;
}

/** `repo/folder/` for messages; `repo/` for the repo's root. */
export function hubLocation(repo: string, folder: string): string {
  return folder === '' ? `${repo}/` : `${repo}/${folder}/`;
}

/**
 * The files the server opens by name. model.onnx.data is not listed: it is referenced from inside
 * model.onnx, and other decoder exports (Phi-3/3.5-mini) name or split their external data differently.
 */
export const REQUIRED_FILES = ['genai_config.json', 'model.onnx', 'tokenizer.json', 'tokenizer_config.json'] as const;
