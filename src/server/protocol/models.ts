/** Wire types of GET /v1/models and GET /v1/models/:id. */

export interface ModelCard {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  /** vLLM extension: the context window clients may use. */
  max_model_len: number;
}

export interface ModelList {
  object: 'list';
  data: ModelCard[];
}

export const modelParamsSchema = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string' } },
} as const;
