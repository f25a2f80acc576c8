/**
 * Errors raised before any route or hook runs, answered in the same envelope as every other error:
 * the router's (a URL it cannot decode: Fastify's `frameworkErrors`) and Node's HTTP parser's
 * (431 headers too large, 400 malformed request, 408 request not received in time: Fastify's
 * `clientErrorHandler`, Node's `clientError` event).
 */
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, maxHeaderSize, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, replyWithError } from './errors.ts';

/** For Fastify's `frameworkErrors`: no onRequest hook has run, so the request id header is set here. */
export function frameworkErrorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  reply.header('x-request-id', request.id);
  void replyWithError(err, request, reply);
}

export function clientErrorToApiError(err: NodeJS.ErrnoException): ApiError {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new ApiError(408, 'The request was not received in time; the connection is closed.', 'timeout_error', null, 'client_timeout');
  }
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    return new ApiError(
      431,
      `The request line and headers are larger than ${maxHeaderSize} bytes.`,
      'invalid_request_error',
      null,
      'headers_too_large',
    );
  }
  return new ApiError(400, `The request is not valid HTTP/1.1 (${err.code ?? 'parse error'}).`, 'invalid_request_error', null, 'malformed_request');
}

/** A whole HTTP/1.1 response: there is no request or response object to write through. */
function rawResponse(err: ApiError): string {
  const body = JSON.stringify(err.toJSON());
  return [
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ''}`,
    'content-type: application/json; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
    `x-request-id: ${randomUUID()}`,
    'connection: close',
    '',
    body,
  ].join('\r\n');
}

/** Node's own rule: once a response on this socket has started, extra bytes would land inside it. */
function responseStarted(socket: Socket): boolean {
  const current = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  return current?.headersSent === true;
}

/** For Fastify's `clientErrorHandler` (bound to the instance). */
export function clientErrorHandler(this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const apiErr = clientErrorToApiError(err);
  this.log.debug({ status: apiErr.status, code: err.code }, 'client error');
  if (!socket.writable || responseStarted(socket)) {
    socket.destroy();
    return;
  }
  socket.end(rawResponse(apiErr), () => socket.destroy());
}
