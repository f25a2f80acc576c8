/**
 * The real `src/main.ts` in a child process on a random port: its JSON log lines are parsed as
 * they arrive, the port comes from its "listening" line, and readiness from "model ready".
 * With `npmStart` it runs through `npm start` in its own process group, as a supervisor would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FIXTURES } from '../setup/model-paths.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export interface ChildServer {
  proc: ChildProcess;
  url: string;
  port: number;
  /** Parsed stdout lines so far. */
  readonly lines: LogLine[];
  /** Raw stdout + stderr so far. */
  readonly output: () => string;
  /** Resolves with the exit code (or the signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  /** Resolves with the first log line (present or future) matching `pred`. */
  waitForLine(pred: (l: LogLine) => boolean, what: string, capMs?: number): Promise<LogLine>;
  /** SIGKILL if still running (the whole process group with `npmStart`; test cleanup). */
  kill(): void;
}

export interface ChildOptions {
  env?: Record<string, string>;
  /** Default: wait for "model ready". */
  waitReady?: boolean;
  /**
   * Run `npm start -- ...` as the leader of a new process group (`proc.pid` is the group id), so a
   * test can signal the whole group the way systemd or `kill -- -PGID` does.
   */
  npmStart?: boolean;
}

const SERVER_ARGS = ['--port', '0', '--model-dir', FIXTURES.tiny, '--threads', '2'];

function spawnServer(args: string[], opts: ChildOptions): ChildProcess {
  const env = { ...process.env, ...opts.env };
  if (!opts.npmStart) {
    return spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...SERVER_ARGS, ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }
  // npm's update check would be a network call; the banner lines are not JSON and are skipped.
  return spawn('npm', ['start', '--', ...SERVER_ARGS, ...args], {
    cwd: ROOT,
    env: { ...env, npm_config_update_notifier: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
}

export async function startChildServer(args: string[], opts: ChildOptions = {}): Promise<ChildServer> {
  const proc = spawnServer(args, opts);
  const lines: LogLine[] = [];
  let raw = '';
  let pending = '';
  const watchers: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  proc.stdout?.setEncoding('utf8');
  proc.stderr?.setEncoding('utf8');
  proc.stdout?.on('data', (chunk: string) => {
    raw += chunk;
    pending += chunk;
    let i: number;
    while ((i = pending.indexOf('\n')) >= 0) {
      const text = pending.slice(0, i);
      pending = pending.slice(i + 1);
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        continue;
      }
      lines.push(line);
      for (const w of [...watchers]) {
        if (w.pred(line)) {
          watchers.splice(watchers.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  proc.stderr?.on('data', (chunk: string) => {
    raw += chunk;
  });
  const exited = new Promise<number | string>((resolve) => {
    proc.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });

  const waitForLine = (pred: (l: LogLine) => boolean, what: string, capMs = 60_000): Promise<LogLine> => {
    const seen = lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; output:\n${raw}`)), capMs);
      const w = {
        pred,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      watchers.push(w);
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`server exited (${code}) while waiting for ${what}; output:\n${raw}`));
      });
    });
  };

  const kill = (): void => {
    if (opts.npmStart && proc.pid !== undefined) {
      // The whole group: the server may outlive npm.
      try {
        process.kill(-proc.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    } else if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  try {
    const listening = await waitForLine((l) => l.msg === 'listening' && typeof l.port === 'number', 'the listening line');
    const port = listening.port as number;
    if (opts.waitReady ?? true) await waitForLine((l) => l.msg === 'model ready', 'model ready');
    return { proc, url: `http://127.0.0.1:${port}`, port, lines, output: () => raw, exited, waitForLine, kill };
  } catch (err) {
    kill();
    throw err;
  }
}
