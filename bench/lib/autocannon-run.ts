/**
 * autocannon (programmatic, in this process) against one endpoint, bounded by duration and by a
 * request cap; the result reduced to what the report prints.
 */
import autocannon, { type AutocannonResult } from 'autocannon';

export interface CannonOptions {
  name: string;
  url: string;
  method: 'GET' | 'POST';
  body?: unknown;
  connections: number;
  durationS: number;
  /** Stops early after this many requests. */
  maxRequests: number;
  /** Per-request timeout (s); a timed-out request counts as an error. */
  timeoutS: number;
}

export interface CannonSummary {
  name: string;
  url: string;
  method: string;
  connections: number;
  durationS: number;
  /** Completed responses (any status). */
  requests: number;
  ok2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  /** Completed requests / duration. */
  reqPerSec: number;
  latencyMs: { p50: number; p90: number; p99: number; mean: number; max: number };
}

export async function runCannon(o: CannonOptions): Promise<CannonSummary> {
  const result: AutocannonResult = await autocannon({
    url: o.url,
    method: o.method,
    connections: o.connections,
    duration: o.durationS,
    maxOverallRequests: o.maxRequests,
    timeout: o.timeoutS,
    ...(o.body !== undefined ? { body: JSON.stringify(o.body), headers: { 'content-type': 'application/json' } } : {}),
    title: o.name,
  });
  const statusCodes: Record<string, number> = {};
  for (const [code, s] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = s.count;
  const completed = result.latency.totalCount;
  return {
    name: o.name,
    url: o.url,
    method: o.method,
    connections: o.connections,
    durationS: result.duration,
    requests: completed,
    ok2xx: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
    reqPerSec: result.duration > 0 ? completed / result.duration : 0,
    latencyMs: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      mean: result.latency.mean,
      max: result.latency.max,
    },
  };
}
