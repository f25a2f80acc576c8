/**
 * Ollama's `keep_alive`: how long a model stays loaded after its last request. A number is seconds;
 * a string is a duration ("30s", "5m", "1h", "1h30m", or plain seconds "300"). 0 unloads right after
 * the answer; any negative value keeps the model loaded until it is unloaded by hand or evicted.
 */

/** Milliseconds; Infinity for "never unload". */
export type KeepAliveMs = number;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION = /^(?:(\d+(?:\.\d+)?)(ms|s|m|h))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;

/** The value in milliseconds, or undefined when it is not a keep-alive value. */
export function parseKeepAlive(value: unknown): KeepAliveMs | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? fromSeconds(value) : undefined;
  if (typeof value !== 'string') return undefined;
  const text = value.trim().toLowerCase();
  if (text === '') return undefined;
  if (/^-?\d+(\.\d+)?$/.test(text)) return fromSeconds(Number(text));
  if (text.startsWith('-') && DURATION.test(text.slice(1))) return Infinity;
  if (!DURATION.test(text)) return undefined;
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(PART)) ms += Number(amount) * UNIT_MS[unit];
  return Math.round(ms);
}

function fromSeconds(seconds: number): KeepAliveMs {
  return seconds < 0 ? Infinity : Math.round(seconds * 1000);
}

/** For logs and the model list: seconds, or -1 for "never". */
export function keepAliveSeconds(ms: KeepAliveMs): number {
  return Number.isFinite(ms) ? ms / 1000 : -1;
}
