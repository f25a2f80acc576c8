import { mkdirSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { buildDecoderGraph } from './decoder-graph.ts';
import { ExternalDataWriter } from './external-data.ts';
import { genaiConfig, hfConfig } from './model-configs.ts';
import { encodeModel } from '../onnx/graph.ts';
import { PRESETS, familyOf, rotaryDim, type ModelShape, type PresetName } from './presets.ts';
import { writeTokenizerFiles } from './tokenizer-files.ts';

export interface BuildOptions {
  preset: PresetName;
  outDir: string;
  /** Overrides on top of the preset (tests use it for other shapes). */
  overrides?: Partial<ModelShape>;
  /** Called with bytes of weights written so far and the expected total. */
  onProgress?: (written: number, total: number) => void;
}

/** Weight bytes a shape will write, for progress reporting. */
export function expectedWeightBytes(s: ModelShape): number {
  const int4 = (k: number, n: number) => n * (k / 32) * 16 + n * (k / 32) * 4;
  const qkvSize = (s.numHeads + 2 * s.numKvHeads) * s.headSize;
  const perLayer =
    int4(s.hiddenSize, qkvSize) +
    (s.qkvBias ? qkvSize * 4 : 0) +
    int4(s.numHeads * s.headSize, s.hiddenSize) +
    3 * int4(s.hiddenSize, s.intermediateSize) +
    2 * s.hiddenSize * 4;
  // Plain RoPE caches go to the data file in the Qwen2 family (decoder-graph.ts).
  const caches = familyOf(s) === 'qwen2' && !s.longRope ? 2 * s.contextLength * (rotaryDim(s) / 2) * 4 : 0;
  return s.vocabSize * s.hiddenSize * 4 + s.numLayers * perLayer + int4(s.hiddenSize, s.vocabSize) + s.hiddenSize * 4 + caches;
}

/**
 * Writes a complete model folder laid out like the onnxruntime-genai export. Files are
 * written under a temporary name and renamed at the end, so an interrupted build never
 * leaves a folder that looks complete.
 */
export async function buildSyntheticModel(opts: BuildOptions): Promise<ModelShape> {
  const shape: ModelShape = { ...PRESETS[opts.preset], ...opts.overrides };
  mkdirSync(opts.outDir, { recursive: true });
  const modelPath = join(opts.outDir, 'model.onnx');
  if (existsSync(modelPath)) rmSync(modelPath);

  const total = expectedWeightBytes(shape);
  let written = 0;
  const external = new ExternalDataWriter(join(opts.outDir, 'model.onnx.data'), (n) => {
    written += n;
    opts.onProgress?.(written, total);
  });
  let bytes: Uint8Array;
  try {
    const graph = buildDecoderGraph(shape, external);
    bytes = encodeModel({
      graph,
      irVersion: 10,
      producerName: 'onnxruntime-genai',
      opsets: [
        { domain: '', version: 21 },
        { domain: 'com.microsoft', version: 1 },
      ],
    });
  } finally {
    external.close();
  }

  writeJson(join(opts.outDir, 'genai_config.json'), genaiConfig(shape));
  writeJson(join(opts.outDir, 'config.json'), hfConfig(shape));
  await writeTokenizerFiles(opts.outDir, familyOf(shape));
  writeFileSync(`${modelPath}.tmp`, bytes);
  renameSync(`${modelPath}.tmp`, modelPath);
  return shape;
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, JSON.stringify(value, null, 2) + '\n');
}
