/** config.json of each family, as Hugging Face writes it, with the shape's dimensions. */
import { familyOf, type ModelShape } from './presets.ts';

export function hfConfig(shape: ModelShape): Record<string, unknown> {
  return familyOf(shape) === 'qwen2' ? qwen2Config(shape) : phi3Config(shape);
}

const PHI4_BOS = 199999;

/** Phi-4-mini-instruct's config.json. */
function phi3Config(shape: ModelShape): Record<string, unknown> {
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
    bos_token_id: PHI4_BOS,
    embd_pdrop: 0.0,
    eos_token_id: PHI4_BOS,
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
    pad_token_id: PHI4_BOS,
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

/**
 * Qwen2.5-0.5B/1.5B-Instruct's config.json. Qwen2 has no attention_bias key: its q/k/v
 * projections always carry biases. Sliding window is off (use_sliding_window false); the builder
 * reads `sliding_window` through transformers, which drops it when the window is off.
 */
function qwen2Config(shape: ModelShape): Record<string, unknown> {
  return {
    architectures: ['Qwen2ForCausalLM'],
    attention_dropout: 0.0,
    bos_token_id: 151643,
    eos_token_id: 151645,
    hidden_act: 'silu',
    hidden_size: shape.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: shape.intermediateSize,
    max_position_embeddings: shape.contextLength,
    max_window_layers: 21,
    model_type: 'qwen2',
    num_attention_heads: shape.numHeads,
    num_hidden_layers: shape.numLayers,
    num_key_value_heads: shape.numKvHeads,
    rms_norm_eps: shape.rmsNormEps,
    rope_scaling: null,
    rope_theta: shape.ropeTheta,
    sliding_window: shape.contextLength,
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
    transformers_version: '4.43.1',
    use_cache: true,
    use_sliding_window: false,
    vocab_size: shape.vocabSize,
  };
}
