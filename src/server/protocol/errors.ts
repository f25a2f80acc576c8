/** The OpenAI error envelope, the only error shape this server ever sends. */

export interface ErrorObject {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

export interface ErrorResponse {
  error: ErrorObject;
}

export const errorResponseSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['message', 'type', 'param', 'code'],
      properties: {
        message: { type: 'string' },
        type: { type: 'string' },
        param: { type: ['string', 'null'] },
        code: { type: ['string', 'null'] },
      },
    },
  },
} as const;
