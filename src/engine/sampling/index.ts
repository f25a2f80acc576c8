export { Sampler, type SampleOptions, type SampledToken } from './sampler.ts';
export { Sfc32, randomSeed, type Rng } from './rng.ts';
export {
  BAN_BIAS,
  LogitBias,
  PresenceFrequencyPenalty,
  RepetitionPenalty,
  createLogitsProcessors,
  type LogitsProcessor,
} from './processors.ts';
export { MAX_TOP_LOGPROBS } from './logprobs.ts';
