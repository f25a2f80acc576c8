/** Wire types of GET /v1/models, GET /v1/models/:id and the admin load/unload answers. */
import type { ModelState } from '../models/registry.ts';

export interface ModelCard {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  /** vLLM extension: the context window clients may use (the model's own until it is loaded). */
  max_model_len?: number;
  /** Extension: whether the model is loaded; requests for an unloaded one load it first. */
  state: ModelState;
  /** Extension: why a failed model cannot be served. */
  error?: string;
  /** Extension: the name this id is an alias of. */
  alias_of?: string;
}

export interface ModelList {
  object: 'list';
  data: ModelCard[];
}
