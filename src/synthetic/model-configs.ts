/**
 * genai_config.json as the onnxruntime-genai builder writes it (make_genai_config): the decoder
 * section is the same for every family; the token ids, the type and the search defaults come from
 * the model's config.json and generation_config.json.
 */
import { IO_NAMES } from './decoder-graph.ts';
import { familyOf, type ModelFamily, type ModelShape } from './presets.ts';

export { hfConfig } from './hf-configs.ts';

interface FamilyGeneration {
  /** `type`: the architecture's name before "For", lower-cased (Phi3ForCausalLM -> phi3). */
  type: ModelFamily;
  bos: number;
  /** generation_config.json's eos_token_id, which overrides config.json's. */
  eos: number[];
  pad: number;
  /** The search values generation_config.json overrides (do_sample, temperature, top_k, top_p). */
  sampling: { do_sample: boolean; temperature: number; top_k: number; top_p: number };
}

const GENERATION: Record<ModelFamily, FamilyGeneration> = {
  // Phi-4-mini-instruct: <|end|> and <|endoftext|>, greedy.
  phi3: { type: 'phi3', bos: 199999, eos: [200020, 199999], pad: 199999, sampling: { do_sample: false, temperature: 1.0, top_k: 1, top_p: 1.0 } },
  // Qwen2.5-Instruct: <|im_end|> and <|endoftext|>; bos and pad are <|endoftext|>.
  qwen2: { type: 'qwen2', bos: 151643, eos: [151645, 151643], pad: 151643, sampling: { do_sample: true, temperature: 0.7, top_k: 20, top_p: 0.8 } },
};

export function genaiConfig(shape: ModelShape): Record<string, unknown> {
  const gen = GENERATION[familyOf(shape)];
  return {
    model: {
      bos_token_id: gen.bos,
      context_length: shape.contextLength,
      decoder: {
        session_options: { log_id: 'onnxruntime-genai', provider_options: [] },
        filename: 'model.onnx',
        head_size: shape.headSize,
        hidden_size: shape.hiddenSize,
        inputs: {
          input_ids: IO_NAMES.inputIds,
          attention_mask: IO_NAMES.attentionMask,
          past_key_names: IO_NAMES.pastKey,
          past_value_names: IO_NAMES.pastValue,
        },
        outputs: {
          logits: IO_NAMES.logits,
          present_key_names: IO_NAMES.presentKey,
          present_value_names: IO_NAMES.presentValue,
        },
        num_attention_heads: shape.numHeads,
        num_hidden_layers: shape.numLayers,
        num_key_value_heads: shape.numKvHeads,
      },
      eos_token_id: gen.eos,
      pad_token_id: gen.pad,
      type: gen.type,
      vocab_size: shape.vocabSize,
    },
    search: {
      diversity_penalty: 0.0,
      do_sample: gen.sampling.do_sample,
      early_stopping: true,
      length_penalty: 1.0,
      max_length: shape.contextLength,
      min_length: 0,
      no_repeat_ngram_size: 0,
      num_beams: 1,
      num_return_sequences: 1,
      past_present_share_buffer: true,
      repetition_penalty: 1.0,
      temperature: gen.sampling.temperature,
      top_k: gen.sampling.top_k,
      top_p: gen.sampling.top_p,
    },
  };
}
