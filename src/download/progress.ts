/**
 * Progress over the total bytes of the variant. The downloader only talks to this interface, so
 * tests run silently and the CLI draws a cli-progress bar.
 */
import cliProgress from 'cli-progress';

export interface ProgressReporter {
  /** `done` counts bytes already on disk (complete files and .part files) before anything is fetched. */
  start(total: number, done: number): void;
  /** The file now being transferred or verified. */
  file(name: string): void;
  /** Bytes written; negative when a partial file is discarded. */
  advance(bytes: number): void;
  /** A line for the user, printed without breaking the bar. */
  log(line: string): void;
  stop(): void;
}

export const silentProgress: ProgressReporter = {
  start() {},
  file() {},
  advance() {},
  log() {},
  stop() {},
};

/** Logs go to `lines`; useful in tests that assert what the user would have read. */
export function recordingProgress(lines: string[]): ProgressReporter {
  return { ...silentProgress, log: (line) => lines.push(line) };
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? Math.round(v) : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * A bar on `stream` (stderr by default, so stdout stays clean for the final instructions). When the
 * stream is not a terminal (CI, docker build logs) cli-progress prints a status line every few seconds.
 */
export function barProgress(stream: NodeJS.WriteStream = process.stderr): ProgressReporter {
  let current = '';
  let startValue = 0;
  let startedAt = 0;
  const bar = new cliProgress.SingleBar({
    stream,
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 5000,
    // SIGINT is handled by the CLI, which stops the bar itself.
    gracefulExit: false,
    barsize: 30,
    format: (options, params) => {
      const elapsed = (Date.now() - startedAt) / 1000;
      const rate = elapsed > 0 ? (params.value - startValue) / elapsed : 0;
      const eta = rate > 0 ? (params.total - params.value) / rate : Number.NaN;
      const width = options.barsize ?? 30;
      const filled = Math.round(params.progress * width);
      return (
        `${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${(params.progress * 100).toFixed(1).padStart(5)}% ` +
        `| ${formatBytes(params.value)} / ${formatBytes(params.total)} | ${formatBytes(rate)}/s | ETA ${formatSeconds(eta)} ` +
        `| ${current}`
      );
    },
  });
  let active = false;
  return {
    start(total, done) {
      startValue = done;
      startedAt = Date.now();
      bar.start(total, done);
      active = true;
    },
    file(name) {
      current = name;
    },
    advance(bytes) {
      bar.increment(bytes);
    },
    log(line) {
      if (active && stream.isTTY) {
        // Overwrite the bar's line; it is redrawn below on the next render.
        stream.write(`\r\x1b[K${line}\n`);
        bar.render();
      } else {
        stream.write(`${line}\n`);
      }
    },
    stop() {
      if (!active) return;
      active = false;
      bar.stop();
    },
  };
}
