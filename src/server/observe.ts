/**
 * The HTTP side of observability: one summary log line and one metrics record per request,
 * written when the response has ended *and* the request's generation work is over (a client
 * that leaves mid-stream closes the response before the engine has stopped; its counts are
 * final only later). Also counts requests in flight, which graceful shutdown waits for.
 *
 * Log lines carry counts and times. Prompt and completion text appear only with --log-content.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CLIENT_CLOSED_STATUS } from './errors.ts';
import type { FinishLabel, ServingMetrics } from './metrics.ts';
import type { ServingContext } from './serving/context.ts';
import type { RequestTrace } from './trace.ts';

/** Counts requests between their arrival and the end of all their work. */
export class InflightRequests {
  private n = 0;
  private waiters: (() => void)[] = [];

  get count(): number {
    return this.n;
  }

  enter(): void {
    this.n++;
  }

  leave(): void {
    this.n = Math.max(0, this.n - 1);
    if (this.n === 0) for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves the next time nothing is in flight (at once if nothing is). */
  whenIdle(): Promise<void> {
    if (this.n === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/** Probes and scrapes are logged at debug level so they do not drown the request log. */
const QUIET_ROUTES = new Set(['/health', '/ready', '/metrics']);

const round1 = (x: number): number => Math.round(x * 10) / 10;

/**
 * Whether the request reached one of the OpenAI (/v1) routes. Decided on the route the router
 * matched, not on the URL text, which reaches the same route by many spellings.
 */
export function isApiRoute(request: FastifyRequest): boolean {
  const route = request.routeOptions.url;
  return route !== undefined && (route === '/v1' || route.startsWith('/v1/'));
}

/** The served name of the model the body asks for, if the server lists it (label values stay bounded). */
function listedModel(request: FastifyRequest): string | undefined {
  const model = (request.body as { model?: unknown } | undefined)?.model;
  return typeof model === 'string' ? request.server.models.find(model)?.name : undefined;
}

interface ContentBody {
  messages?: unknown;
  prompt?: unknown;
  /** The Responses API's input. */
  input?: unknown;
}

export class RequestObserver {
  readonly inflight = new InflightRequests();
  /** Finalizers waiting for a trace's `finished` event. */
  private readonly pending = new Map<RequestTrace, () => void>();

  constructor(
    private readonly metrics: ServingMetrics,
    private readonly logContent: boolean,
  ) {}

  attach(ctx: ServingContext): void {
    ctx.events.on('finished', (trace) => {
      const fn = this.pending.get(trace);
      if (fn) {
        this.pending.delete(trace);
        fn();
      }
    });
  }

  register(app: FastifyInstance): void {
    app.addHook('onRequest', (request, reply, done) => {
      this.inflight.enter();
      const arrivedAt = performance.now();
      let finished = false;
      reply.raw.once('finish', () => {
        finished = true;
      });
      reply.raw.once('close', () => {
        const endedAt = performance.now();
        const complete = (): void => {
          try {
            this.complete(request, reply, arrivedAt, endedAt, finished || reply.raw.writableFinished);
          } catch (err) {
            request.log.error({ err }, 'request accounting failed');
          } finally {
            const held = request.modelLease;
            held?.lease.release(held.keepAliveMs);
            this.inflight.leave();
          }
        };
        const trace = request.trace;
        // Admitted and still running (the client left mid-generation): wait for the engine.
        if (trace && trace.startedAt !== undefined && trace.finishedAt === undefined) this.pending.set(trace, complete);
        else complete();
      });
      done();
    });
  }

  /** `finished`: the whole response was handed to the socket (false: the client went away first). */
  private complete(request: FastifyRequest, reply: FastifyReply, arrivedAt: number, endedAt: number, finished: boolean): void {
    const trace = request.trace ?? undefined;
    const path = request.url.split('?')[0];
    const status = finished ? reply.statusCode : trace?.outcome === 'error' ? 500 : CLIENT_CLOSED_STATUS;
    const finishReason: FinishLabel = trace?.outcome ?? 'none';
    const route = request.routeOptions.url;

    // Unknown paths count too (as one label), so probing for routes shows up.
    if (isApiRoute(request) || request.is404) {
      const named = request.modelLease?.lease.ctx.modelName ?? listedModel(request);
      this.metrics.recordRequest({ endpoint: route ?? 'unmatched', status, finishReason, trace, endedAt, ...(named ? { model: named } : {}) });
    }

    const line: Record<string, unknown> = {
      method: request.method,
      url: path,
      status,
      ms: round1(endedAt - arrivedAt),
    };
    if (trace) {
      const st = this.metrics.statsOf(trace);
      line.endpoint = trace.endpoint;
      line.stream = trace.stream;
      line.promptTokens = trace.promptTokens;
      line.completionTokens = trace.completionTokens;
      if (trace.queueMs !== undefined) line.queueMs = round1(trace.queueMs);
      if (trace.firstTokenAt !== undefined) line.ttftMs = round1(trace.firstTokenAt - trace.receivedAt);
      if (st.itlCount > 0 && st.itlSumMs > 0) line.tokPerSec = round1((st.itlCount * 1000) / st.itlSumMs);
      line.finishReason = finishReason;
      if (st.generations > 1) line.generations = st.generations;
    }
    if (this.logContent && trace) {
      const body = (request.body ?? {}) as ContentBody;
      line.prompt = trace.endpoint === 'completions' ? body.prompt : (body.messages ?? body.input);
      const texts = trace.completionText ?? [];
      line.completion = texts.length === 1 ? texts[0] : texts;
    }
    if (route !== undefined && QUIET_ROUTES.has(route) && status < 400) request.log.debug(line, 'request completed');
    else request.log.info(line, 'request completed');
  }
}
