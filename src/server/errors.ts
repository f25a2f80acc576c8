/**
 * One place that turns every failure into the OpenAI error envelope
 * `{"error":{"message","type","param","code"}}` with the right HTTP status.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ErrorResponse } from './protocol/errors.ts';

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }

  toJSON(): ErrorResponse {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const invalidRequest = (message: string, param: string | null = null, code: string | null = null): ApiError =>
  new ApiError(400, message, 'invalid_request_error', param, code);

export const modelNotFound = (model: string): ApiError =>
  new ApiError(
    404,
    `The model \`${model}\` does not exist or you do not have access to it.`,
    'invalid_request_error',
    'model',
    'model_not_found',
  );

export const contextLengthExceeded = (
  contextLength: number,
  promptTokens: number,
  completionTokens: number,
  promptParam: 'messages' | 'prompt',
): ApiError =>
  new ApiError(
    400,
    `This model's maximum context length is ${contextLength} tokens. However, you requested ` +
      `${promptTokens + completionTokens} tokens (${promptTokens} in the ${promptParam}, ${completionTokens} in the ` +
      `completion). Please reduce the length of the ${promptParam} or completion.`,
    'invalid_request_error',
    promptParam,
    'context_length_exceeded',
  );

export const queueFull = (retryAfterSec: number): ApiError =>
  new ApiError(
    429,
    'The server is busy: the request queue is full. Please retry after a short wait.',
    'rate_limit_error',
    null,
    'queue_full',
    { 'retry-after': String(retryAfterSec) },
  );

export const requestTimeout = (seconds: number): ApiError =>
  new ApiError(
    408,
    `The request timed out after ${seconds} s before generation produced any token.`,
    'timeout_error',
    null,
    'request_timeout',
  );

export const notReady = (reason: 'loading' | 'draining' | 'failed'): ApiError =>
  new ApiError(
    503,
    reason === 'loading'
      ? 'The model is still loading. Please retry shortly.'
      : reason === 'draining'
        ? 'The server is shutting down.'
        : 'The model failed to load.',
    'server_error',
    null,
    reason === 'draining' ? 'shutting_down' : 'model_not_ready',
    reason === 'loading' ? { 'retry-after': '5' } : {},
  );

export const engineUnavailable = (detail: string): ApiError =>
  new ApiError(503, `The inference engine is unavailable (${detail}).`, 'server_error', null, 'engine_unavailable');

export const invalidApiKey = (): ApiError =>
  new ApiError(
    401,
    'Incorrect or missing API key. Send it as "Authorization: Bearer KEY".',
    'invalid_request_error',
    null,
    'invalid_api_key',
  );

export const internalError = (message = 'The server had an error while processing your request.'): ApiError =>
  new ApiError(500, message, 'server_error', null, 'internal_error');

/** Thrown through the serving layer when the client went away; nobody is left to answer. */
export class ClientGoneError extends Error {
  override name = 'ClientGoneError';
}

// ---------------------------------------------------------------------------------------------
// ajv validation errors -> one 400 naming the parameter

interface AjvErrorLike {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

/** "/messages/0/content" -> "messages[0].content" (the notation OpenAI uses in `param`). */
export function paramFromPointer(pointer: string): string {
  let out = '';
  for (const seg of pointer.split('/').slice(1)) {
    const key = seg.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(key)) out += `[${key}]`;
    else out += out.length === 0 ? key : `.${key}`;
  }
  return out;
}

function depth(e: AjvErrorLike): number {
  // A missing property is one level down, but a wrong value next to it is the better message.
  return e.instancePath.split('/').length + (e.keyword === 'required' ? 0.5 : 0);
}

/**
 * Picks the most specific error: ajv reports every failed anyOf branch, and the branch that got
 * deepest into the value is the one the client meant. Same-path type errors are merged
 * ("expected string or array").
 */
export function validationToApiError(errors: readonly AjvErrorLike[]): ApiError {
  const concrete = errors.filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'oneOf' && e.keyword !== 'if');
  const pool = concrete.length > 0 ? concrete : errors;
  const deepestError = pool.reduce((best, e) => (depth(e) > depth(best) ? e : best), pool[0]);
  if (!deepestError) return invalidRequest('Invalid request body.');
  // At one path, a constraint error (maxItems, minimum, ...) comes from the branch whose type
  // matched the value: the branch the client meant, so its error beats the others' type errors.
  const first =
    deepestError.keyword !== 'type'
      ? deepestError
      : (pool.find((e) => e.instancePath === deepestError.instancePath && e.keyword !== 'type' && e.keyword !== 'required') ?? deepestError);

  // Branches of an anyOf that fail at different places equally deep: none is "the" intended
  // one, so the whole value is reported instead of guessing a branch.
  const maxDepth = depth(first);
  const deepest = new Set(pool.filter((e) => depth(e) === maxDepth).map((e) => e.instancePath));
  if (deepest.size > 1) {
    const union = errors.find((e) => (e.keyword === 'anyOf' || e.keyword === 'oneOf') && first.instancePath.startsWith(e.instancePath));
    if (union) {
      const p = paramFromPointer(union.instancePath);
      return invalidRequest(`Invalid value for '${p}': it matches none of the accepted forms.`, p || null, 'invalid_value');
    }
  }

  let param = paramFromPointer(first.instancePath);
  if (first.keyword === 'required') {
    const missing = String(first.params.missingProperty ?? '');
    param = param ? `${param}.${missing}` : missing;
    return invalidRequest(`Missing required parameter: '${param}'.`, param, 'missing_required_parameter');
  }
  if (param === '') return invalidRequest('The request body must be a JSON object.', null);

  if (first.keyword === 'type') {
    const types = new Set<string>();
    for (const e of pool) {
      if (e.keyword === 'type' && e.instancePath === first.instancePath) {
        for (const t of String(e.params.type).split(',')) types.add(t === 'null' ? 'null' : t);
      }
    }
    return invalidRequest(
      `Invalid type for '${param}': expected ${[...types].join(' or ')}.`,
      param,
      'invalid_type',
    );
  }
  if (first.keyword === 'enum') {
    const allowed = (first.params.allowedValues as unknown[] | undefined) ?? [];
    return invalidRequest(
      `Invalid value for '${param}': supported values are ${allowed.map((v) => `'${String(v)}'`).join(', ')}.`,
      param,
      'invalid_value',
    );
  }
  if (first.keyword === 'const') {
    return invalidRequest(
      `Invalid value for '${param}': expected '${String(first.params.allowedValue)}'.`,
      param,
      'invalid_value',
    );
  }
  if (first.keyword === 'maxItems' || first.keyword === 'minItems') {
    const limit = Number(first.params.limit);
    const items = `${limit} ${limit === 1 ? 'item is' : 'items are'}`;
    const rule = first.keyword === 'maxItems' ? `at most ${items} allowed` : `at least ${items} required`;
    return invalidRequest(`Invalid value for '${param}': ${rule}.`, param, 'invalid_value');
  }
  return invalidRequest(`Invalid value for '${param}': ${first.message ?? 'invalid'}.`, param, 'invalid_value');
}

// ---------------------------------------------------------------------------------------------
// Fastify wiring

const FASTIFY_CODES: Readonly<Record<string, { status: number; code: string; message?: string }>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'request_too_large', message: 'The request body is too large.' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    code: 'unsupported_media_type',
    message: "Unsupported content type; send 'application/json'.",
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'invalid_json', message: 'The request body is empty.' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'invalid_json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'invalid_content_length' },
  FST_ERR_BAD_URL: { status: 400, code: 'invalid_url', message: 'The request URL could not be decoded (malformed percent-encoding).' },
};

/** nginx's "client closed request": only ever logged, since nobody is there to read it. */
export const CLIENT_CLOSED_STATUS = 499;

export function toApiError(err: FastifyError | Error): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof ClientGoneError) {
    return new ApiError(CLIENT_CLOSED_STATUS, 'Client closed the request.', 'invalid_request_error', null, 'client_closed');
  }
  const fe = err as FastifyError;
  if (Array.isArray(fe.validation)) return validationToApiError(fe.validation as AjvErrorLike[]);
  const known = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  if (known) return new ApiError(known.status, known.message ?? fe.message, 'invalid_request_error', null, known.code);
  // JSON.parse failures surface as SyntaxError with a 400 status.
  if (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500) {
    const code = err instanceof SyntaxError ? 'invalid_json' : null;
    const message = err instanceof SyntaxError ? `We could not parse the JSON body of your request: ${err.message}` : fe.message;
    return new ApiError(fe.statusCode, message, 'invalid_request_error', null, code);
  }
  return internalError();
}

export function sendApiError(reply: FastifyReply, err: ApiError): FastifyReply {
  for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
  const anthropic = reply.request.routeOptions?.config?.errorFormat === 'anthropic';
  return reply.code(err.status).type('application/json; charset=utf-8').send(anthropic ? anthropicError(err) : err.toJSON());
}

/** Anthropic's error types by HTTP status (its API reference, "Errors"). */
const ANTHROPIC_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  408: 'timeout_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  503: 'overloaded_error',
};

/** The same failure in Anthropic's envelope `{"type":"error","error":{"type","message"}}`. */
export function anthropicError(err: ApiError): { type: 'error'; error: { type: string; message: string } } {
  const type = ANTHROPIC_TYPES[err.status] ?? (err.status >= 500 ? 'api_error' : 'invalid_request_error');
  const message = err.param ? `${err.message} (${err.param})` : err.message;
  return { type: 'error', error: { type, message } };
}

/** Logs a failure and answers it in the envelope (for routes and for the router's own errors). */
export function replyWithError(err: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined {
  const apiErr = toApiError(err);
  if (apiErr.status === CLIENT_CLOSED_STATUS) request.log.info('client closed the request');
  else if (apiErr.status >= 500) request.log.error({ err }, 'request failed');
  else request.log.info({ status: apiErr.status, code: apiErr.code, param: apiErr.param }, 'request rejected');
  if (reply.raw.headersSent) {
    // A stream already started; the SSE writer reports errors in-band. Nothing else can be sent.
    reply.raw.destroy();
    return undefined;
  }
  return sendApiError(reply, apiErr);
}

export function registerErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => replyWithError(err, request, reply));

  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const url = request.url.split('?')[0];
    return sendApiError(
      reply,
      new ApiError(404, `Invalid URL (${request.method} ${url})`, 'invalid_request_error', null, 'not_found'),
    );
  });
}
