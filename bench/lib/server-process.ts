/**
 * The real server as a child process: `node --import tsx src/main.ts` on 127.0.0.1.
 *
 * The server logs its address only at log level info, next to a line per request; logging every
 * request would cost the server CPU during the benchmark (and a slow reader of its stdout could
 * stall it), so it runs at `warn` and the port is chosen here: bind port 0 on 127.0.0.1, read
 * the port the OS gave, close, pass it as --port. Readiness is `GET /ready` == 200.
 *
 * Cleanup is unconditional: stop() sends SIGTERM and escalates to SIGKILL after a grace period,
 * and a process 'exit' hook kills a child that is somehow still alive.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { getJson } from './stream-client.ts';

export interface ServerOptions {
  /** Repository root (cwd of the child; src/main.ts is resolved from it). */
  root: string;
  modelDir: string;
  maxQueue: number;
  /** 0: ORT decides. */
  threads: number;
  /** Seconds per request on the server (queue wait included); 0 disables. */
  requestTimeoutS: number;
  /** Cap on the time to wait for /ready (model load). */
  readyTimeoutMs: number;
  logLevel?: string;
  extraArgs?: string[];
}

export interface RunningServer {
  host: string;
  port: number;
  pid: number;
  /** From GET /ready. */
  modelName: string;
  /** Seconds from spawn to /ready. */
  readySeconds: number;
  /** The last lines the server wrote (for error reports). */
  recentOutput(): string;
  stop(graceMs?: number): Promise<number | null>;
}

export const HOST = '127.0.0.1';

export function freePort(host = HOST): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = addr !== null && typeof addr === 'object' ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

/**
 * The server reads settings from the environment too (flag > env > default). Settings this
 * benchmark does not pass as flags must not leak in from the caller's shell: an API key would turn
 * every request into a 401, a max-tokens default or context cap would change what is measured.
 */
const SERVER_ENV_VARS = [
  'API_KEY',
  'API_KEY_FILE',
  'MAX_TOKENS_DEFAULT',
  'CONTEXT_LENGTH',
  'MODEL_NAME',
  'MODEL_ALIAS',
  'LOG_PRETTY',
  'LOG_CONTENT',
  'BODY_LIMIT',
];
function serverEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of SERVER_ENV_VARS) delete env[k];
  // The malloc setting `npm start` and the Docker image run with (see package.json, Dockerfile);
  // `npm run bench:http` sets it for the benchmark process too, whose engine the server is compared with.
  env.MALLOC_ARENA_MAX ??= '1';
  return env;
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  installExitHook();
  const port = await freePort();
  const args = [
    '--import',
    'tsx',
    'src/main.ts',
    '--port',
    String(port),
    '--host',
    HOST,
    '--model-dir',
    opts.modelDir,
    '--max-queue',
    String(opts.maxQueue),
    '--threads',
    String(opts.threads),
    '--request-timeout',
    String(opts.requestTimeoutS),
    '--log-level',
    opts.logLevel ?? 'warn',
    ...(opts.extraArgs ?? []),
  ];
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { cwd: opts.root, env: serverEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const tail: string[] = [];
  const keep = (s: string): void => {
    for (const line of s.split('\n')) if (line.trim().length > 0) tail.push(line);
    if (tail.length > 40) tail.splice(0, tail.length - 40);
  };
  // Always drain both pipes: a full pipe would block the server's (synchronous) logger.
  child.stdout?.setEncoding('utf8').on('data', keep);
  child.stderr?.setEncoding('utf8').on('data', keep);
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      exitCode = code ?? (signal ? -1 : null);
      resolve(code);
    });
  });

  const stop = async (graceMs = 30_000): Promise<number | null> => {
    if (exitCode !== undefined) return exitCode;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  const recentOutput = (): string => tail.join('\n');

  // Wait for /ready, failing early if the child exits.
  let modelName = '';
  try {
    for (;;) {
      if (exitCode !== undefined) throw new Error(`server exited with code ${exitCode} before it was ready`);
      if (performance.now() - t0 > opts.readyTimeoutMs) throw new Error(`server not ready after ${opts.readyTimeoutMs / 1000} s`);
      try {
        const r = await getJson(HOST, port, '/ready', 2000);
        if (r.status === 200) {
          const body = r.body as { model?: unknown };
          modelName = typeof body.model === 'string' ? body.model : '';
          break;
        }
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  } catch (err) {
    await stop(5000);
    throw new Error(`${(err as Error).message}\n--- server output ---\n${recentOutput()}`);
  }
  return {
    host: HOST,
    port,
    pid: child.pid ?? -1,
    modelName,
    readySeconds: (performance.now() - t0) / 1000,
    recentOutput,
    stop,
  };
}
