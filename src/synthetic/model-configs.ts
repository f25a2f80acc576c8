/** genai_config.json and config.json as the onnxruntime-genai builder and Hugging Face write them. */
import { IO_NAMES } from './decoder-graph.ts';
import type { ModelShape } from './presets.ts';

const BOS = 199999;
const EOS = [200020, 199999];

export function genaiConfig(shape: ModelShape): Record<string, unknown> {
  return {
    model: {
      bos_token_id: BOS,
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
      eos_token_id: EOS,
      pad_token_id: BOS,
      type: 'phi3',
      vocab_size: shape.vocabSize,
    },
    search: {
      diversity_penalty: 0.0,
      do_sample: false,
      early_stopping: true,
      length_penalty: 1.0,
      max_length: shape.contextLength,
      min_length: 0,
      no_repeat_ngram_size: 0,
      num_beams: 1,
      num_return_sequences: 1,
      past_present_share_buffer: true,
      repetition_penalty: 1.0,
      temperature: 1.0,
      top_k: 1,
      top_p: 1.0,
    },
  };
}

export function hfConfig(shape: ModelShape): Record<string, unknown> {
  return {
    _name_or_path: 'Phi-4-mini-instruct',
    architectures: ['Phi3ForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    auto_map: {
      AutoConfig: 'configuration_phi3.Phi3Config',
      AutoModelForCausalLM: 'modeling_phi3.Phi3ForCausalLM',
      AutoTokenizer: 'Xenova/gpt-4o',
    },
    bos_token_id: BOS,
    embd_pdrop: 0.0,
    eos_token_id: BOS,
    full_attn_mod: 1,
    hidden_act: 'silu',
    hidden_size: shape.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: shape.intermediateSize,
    interpolate_factor: 1,
    lm_head_bias: false,
    max_position_embeddings: shape.contextLength,
    mlp_bias: false,
    model_type: 'phi3',
    num_attention_heads: shape.numHeads,
    num_hidden_layers: shape.numLayers,
    num_key_value_heads: shape.numKvHeads,
    head_dim: shape.headSize,
    original_max_position_embeddings: shape.originalContextLength,
    pad_token_id: BOS,
    partial_rotary_factor: shape.partialRotaryFactor,
    resid_pdrop: 0.0,
    rms_norm_eps: shape.rmsNormEps,
    rope_scaling: shape.longRope
      ? { long_factor: shape.longRope.longFactor, short_factor: shape.longRope.shortFactor, type: 'longrope' }
      : null,
    rope_theta: shape.ropeTheta,
    sliding_window: 262144,
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
    transformers_version: '4.45.0',
    use_cache: true,
    vocab_size: shape.vocabSize,
  };
}
