/**
 * `npm start` on an interactive terminal: readable logs (pino-pretty) unless a log format was
 * chosen, a short banner with the URLs once listening, and progress bars (percentage, ETA) for long
 * one-off work. None of it when stdout is not a terminal (pipes, systemd, the Docker image, which
 * also sets LOG_PRETTY=0): logs stay JSON lines there.
 */
import { createRequire } from 'node:module';
import cliProgress from 'cli-progress';
import type { ServerConfig } from '../config.ts';
import { loadProgressChannel, type LoadProgress } from '../engine/load-progress.ts';

export function prettyLogsAvailable(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

/**
 * Pretty logs when asked for (--log-pretty / LOG_PRETTY=1), or by default when stdout is a terminal
 * and the optional pino-pretty package is installed. LOG_PRETTY=0 keeps JSON lines on a terminal.
 */
export function wantsPrettyLogs(
  config: Pick<ServerConfig, 'logPretty' | 'logPrettyDefaulted'>,
  stdoutIsTTY: boolean,
  available: () => boolean = prettyLogsAvailable,
): boolean {
  if (config.logPretty) return true;
  return config.logPrettyDefaulted && stdoutIsTTY && available();
}

/** A URL a browser on this host can open for a server bound to `host` (0.0.0.0 and :: are not). */
export function browsableUrl(host: string, port: number): string {
  const h = host === '' || host === '0.0.0.0' || host === '::' || host === '[::]' ? 'localhost' : host;
  return `http://${h.includes(':') && !h.startsWith('[') ? `[${h}]` : h}:${port}`;
}

export interface BannerOptions {
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  /** The playground is served (not --no-ui). */
  ui: boolean;
  /** ANSI colours (off with NO_COLOR or when not a terminal). */
  color: boolean;
  /** The model is still loading. */
  loading?: boolean;
}

export function startupBanner(o: BannerOptions): string {
  const bold = (s: string): string => (o.color ? `\x1b[1m${s}\x1b[22m` : s);
  const link = (s: string): string => (o.color ? `\x1b[36m${s}\x1b[39m` : s);
  const rows: [string, string][] = [
    ...(o.ui ? ([['Playground', `${o.url}/`]] as [string, string][]) : []),
    ['API docs', `${o.url}/docs`],
    ['OpenAI API', `${o.url}/v1`],
  ];
  return [
    '',
    `  ${bold('phi4-local-server')} is listening`,
    '',
    ...rows.map(([name, url]) => `    ${name.padEnd(12)}${link(url)}`),
    '',
    ...(o.loading ? ['  The model is loading; the API answers 503 (model_not_ready) until it is ready.', ''] : []),
  ].join('\n');
}

export interface TerminalProgress {
  update(done: number, total: number): void;
  stop(): void;
}

/** A progress bar with percentage and ETA on `stream` (stderr: stdout carries the logs). */
export function progressBar(label: string, unit: LoadProgress['unit'], stream: NodeJS.WriteStream = process.stderr): TerminalProgress {
  // Bytes show as MB, or KB for small totals (the tiny model's int8 weights); chosen on the first report.
  let scale = 1;
  let suffix = '';
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: (options, params, payload: { suffix: string }) =>
        `${label} [${cliProgress.Format.BarFormat(params.progress, options)}] ${Math.floor(params.progress * 100)}% | ` +
        `${params.value}/${params.total}${payload.suffix} | ETA ${params.progress >= 1 ? '0s' : Number.isFinite(params.eta) && params.value > 0 ? cliProgress.Format.TimeFormat(params.eta, options, 1) : '--'}`,
      hideCursor: true,
      barsize: 30,
      etaBuffer: 20,
      // SIGINT is the server's: it shuts down gracefully and stops the bar itself.
      gracefulExit: false,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total) {
      if (!started) {
        if (unit === 'bytes') [scale, suffix] = total >= 10 * 1024 * 1024 ? [1024 * 1024, ' MB'] : [1024, ' KB'];
        else if (unit === 'seconds') suffix = ' s';
        bar.start(Math.max(1, Math.round(total / scale)), 0, { suffix });
        started = true;
      }
      const t = Math.max(1, Math.round(total / scale));
      bar.setTotal(t);
      bar.update(Math.min(t, Math.round(done / scale)));
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}

/**
 * Shows the engine's load progress (see load-progress.ts) as bars, one per task; returns the
 * function that stops listening (and closes a bar left open).
 */
export function showLoadProgress(stream: NodeJS.WriteStream = process.stderr): () => void {
  let current: { task: string; bar: TerminalProgress } | undefined;
  const onMessage = (message: unknown): void => {
    const p = message as LoadProgress;
    if (current && current.task !== p.task) {
      current.bar.stop();
      current = undefined;
    }
    current ??= { task: p.task, bar: progressBar(p.task, p.unit, stream) };
    current.bar.update(p.done, p.total);
    if (p.done >= p.total) {
      current.bar.stop();
      current = undefined;
    }
  };
  loadProgressChannel.subscribe(onMessage);
  return () => {
    loadProgressChannel.unsubscribe(onMessage);
    current?.bar.stop();
    current = undefined;
  };
}
