/** What the OpenAPI document says of each route beyond its request schema: summary, responses, examples. */

const obj = (properties: Record<string, unknown>, required: string[] = []) => ({ type: 'object', properties, ...(required.length ? { required } : {}) });
const str = { type: 'string' };
const int = { type: 'integer' };

const openAiError = obj({ error: obj({ message: str, type: str, param: { type: ['string', 'null'] }, code: { type: ['string', 'null'] } }) });
const anthropicError = obj({ type: { const: 'error' }, error: obj({ type: str, message: str }) });
const usage = obj({ prompt_tokens: int, completion_tokens: int, total_tokens: int, prompt_tokens_details: obj({ cached_tokens: int }) });
const toolCall = obj({ id: str, type: { const: 'function' }, function: obj({ name: str, arguments: { type: 'string', description: 'JSON text' } }) });
const errors = (envelope: object) => ({
  400: { description: 'Invalid request (the `param` names the field)', ...envelope },
  401: { description: 'Missing or wrong API key', ...envelope },
  404: { description: 'Unknown model', ...envelope },
  408: { description: 'Nothing generated within --request-timeout', ...envelope },
  429: { description: 'Queue full; retry after `Retry-After` seconds', ...envelope },
  503: { description: 'Loading, shutting down, or the model failed to load (`model_load_failed`, with the reason)', ...envelope },
});
const openAiErrors = errors(openAiError);

const chatCompletion = obj({
  id: str,
  object: { const: 'chat.completion' },
  created: int,
  model: str,
  system_fingerprint: str,
  choices: {
    type: 'array',
    items: obj({
      index: int,
      message: obj({ role: { const: 'assistant' }, content: { type: ['string', 'null'] }, refusal: { type: 'null' }, tool_calls: { type: 'array', items: toolCall } }),
      logprobs: { type: ['object', 'null'] },
      finish_reason: { enum: ['stop', 'length', 'tool_calls'] },
    }),
  },
  usage,
});

const textCompletion = obj({
  id: str,
  object: { const: 'text_completion' },
  created: int,
  model: str,
  choices: { type: 'array', items: obj({ index: int, text: str, logprobs: { type: ['object', 'null'] }, finish_reason: { enum: ['stop', 'length'] } }) },
  usage,
});

const modelCard = obj({
  id: str,
  object: { const: 'model' },
  created: int,
  owned_by: str,
  max_model_len: int,
  state: { enum: ['unloaded', 'loading', 'loaded', 'unloading', 'failed'], description: 'A request for an unloaded model loads it first' },
  error: { type: 'string', description: 'Why a failed model cannot be served' },
  alias_of: { type: 'string', description: 'The model this name is an alias of' },
});

const anthropicMessage = obj({
  id: str,
  type: { const: 'message' },
  role: { const: 'assistant' },
  model: str,
  content: { type: 'array', items: { anyOf: [obj({ type: { const: 'text' }, text: str }), obj({ type: { const: 'tool_use' }, id: str, name: str, input: { type: 'object' } })] } },
  stop_reason: { enum: ['end_turn', 'max_tokens', 'stop_sequence', 'tool_use'] },
  stop_sequence: { type: ['string', 'null'] },
  usage: obj({ input_tokens: int, output_tokens: int, cache_read_input_tokens: int, cache_creation_input_tokens: int }),
});

const response = obj({
  id: str,
  object: { const: 'response' },
  created_at: int,
  status: { enum: ['completed', 'incomplete'] },
  model: str,
  output: { type: 'array', items: { type: 'object', description: 'a `message` item (output_text parts) or a `function_call` item' } },
  usage: obj({ input_tokens: int, input_tokens_details: obj({ cached_tokens: int }), output_tokens: int, total_tokens: int }),
});

const json = (schema: object, description: string) => ({ description, content: { 'application/json': { schema } } });
const sse = 'Server-sent events when `stream` is true';

export interface RouteDoc {
  summary: string;
  description?: string;
  tags: string[];
  response: Record<number, unknown>;
  bodyExamples?: unknown[];
}

export const ROUTE_DOCS: Record<string, RouteDoc> = {
  'POST /v1/chat/completions': {
    summary: 'Chat completion',
    description: `OpenAI chat completions with tools, tool_choice and response_format (grammar-constrained). ${sse}: \`data: {chunk}\` lines, then \`data: [DONE]\`.`,
    tags: ['OpenAI'],
    response: { 200: json(chatCompletion, `A chat.completion, or (stream) chat.completion.chunk events`), ...openAiErrors },
    bodyExamples: [
      { model: 'phi-4-mini-instruct', messages: [{ role: 'user', content: 'Name three prime numbers.' }], max_tokens: 64 },
      {
        model: 'phi-4-mini-instruct',
        messages: [{ role: 'user', content: 'Weather in Paris?' }],
        tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }],
        tool_choice: 'required',
      },
    ],
  },
  'POST /v1/completions': {
    summary: 'Text completion (legacy)',
    tags: ['OpenAI'],
    response: { 200: json(textCompletion, 'A text_completion'), ...openAiErrors },
    bodyExamples: [{ model: 'phi-4-mini-instruct', prompt: 'The capital of France is', max_tokens: 8 }],
  },
  'POST /v1/responses': {
    summary: 'Create a response (OpenAI Responses API)',
    description: `${sse}: typed events (\`response.created\` … \`response.completed\`).`,
    tags: ['OpenAI'],
    response: { 200: json(response, 'A response object'), ...openAiErrors },
    bodyExamples: [{ model: 'phi-4-mini-instruct', instructions: 'You are terse.', input: 'Name three primes.', max_output_tokens: 64 }],
  },
  'GET /v1/responses/:id': { summary: 'Retrieve a stored response', tags: ['OpenAI'], response: { 200: json(response, 'The stored response'), 404: json(openAiError, 'Unknown or expired') } },
  'DELETE /v1/responses/:id': {
    summary: 'Delete a stored response',
    tags: ['OpenAI'],
    response: { 200: json(obj({ id: str, object: { const: 'response' }, deleted: { type: 'boolean' } }), 'Deleted'), 404: json(openAiError, 'Unknown or expired') },
  },
  'GET /v1/models': { summary: 'List the served models and their state', tags: ['OpenAI'], response: { 200: json(obj({ object: { const: 'list' }, data: { type: 'array', items: modelCard } }), 'Each model, then its aliases') } },
  'GET /v1/models/*': { summary: "One served model and its state (per-model readiness)", tags: ['OpenAI'], response: { 200: json(modelCard, 'The model card'), 404: json(openAiError, 'Unknown model') } },
  'POST /admin/models/*': {
    summary: 'Load or unload a model: POST /admin/models/{id}/load or /admin/models/{id}/unload',
    description: 'Behind the API key; with no key set, only from this machine. Load waits until the model is loaded (a failed model is tried again); unload answers 409 while requests use the model.',
    tags: ['Operations'],
    response: { 200: json(modelCard, 'The model card after the change'), 403: json(openAiError, 'Not from this machine (no key set)'), 404: json(openAiError, 'Unknown model or action'), 409: json(openAiError, 'The model has requests in flight'), 503: json(openAiError, 'The model failed to load') },
  },
  'POST /v1/messages': {
    summary: 'Create a message (Anthropic Messages API)',
    description: `Anthropic's Messages API; the key may come as \`x-api-key\`. ${sse}: \`message_start\` … \`message_stop\`.`,
    tags: ['Anthropic'],
    response: { 200: json(anthropicMessage, 'A message'), ...errors(json(anthropicError, '')) },
    bodyExamples: [{ model: 'phi-4-mini-instruct', max_tokens: 256, messages: [{ role: 'user', content: 'Name three prime numbers.' }] }],
  },
  'POST /v1/messages/count_tokens': {
    summary: 'Count the prompt tokens of a message request',
    tags: ['Anthropic'],
    response: { 200: json(obj({ input_tokens: int }), 'The rendered prompt length') },
  },
  'GET /health': { summary: 'Liveness (no key)', tags: ['Operations'], response: { 200: json(obj({ status: { const: 'ok' } }), 'The process runs') } },
  'GET /ready': {
    summary: 'Readiness (no key): the server takes requests',
    description: 'Ready once the --preload models settled, while not shutting down and not every model failed. Per-model readiness: GET /v1/models/{id}.',
    tags: ['Operations'],
    response: { 200: json(obj({ status: { const: 'ready' }, model: str, models: int, loaded: { type: 'array', items: str } }), 'Serving (`model` with one model; `models` and `loaded` with several)'), 503: json(openAiError, 'Loading, failed or draining') },
  },
  'GET /metrics': { summary: 'Prometheus metrics', tags: ['Operations'], response: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: str } } } } },
};
