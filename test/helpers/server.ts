/**
 * Real servers on random ports for the HTTP tests, on the real engine and the `tiny` fixture.
 * Loading the engine takes seconds, so a test file loads one model and builds as many apps on it
 * as it needs (each app has its own queue and settings; the engine runs one generation at a time).
 */
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { buildApp, loadModel, type AppOptions, type LoadedModel } from '../../src/app.ts';
import { defaultConfig, type ServerConfig } from '../../src/config.ts';
import type { ServingContext } from '../../src/server/serving/context.ts';
import { FIXTURES } from '../setup/model-paths.ts';

export const MODEL_NAME = 'phi-4-mini-instruct';
/** Small enough that "the rest of the context" stays cheap and overflow is easy to provoke. */
export const TEST_CONTEXT = 1024;
/** The tiny model's eos ids (<|end|>, <|endoftext|>): banning them makes a generation run to max_tokens. */
export const EOS_IDS = [200020, 199999] as const;
export const NO_EOS_BIAS: Record<string, number> = Object.fromEntries(EOS_IDS.map((id) => [String(id), -100]));

export function testConfig(overrides: Partial<ServerConfig> = {}): ServerConfig {
  return defaultConfig({
    modelDir: FIXTURES.tiny,
    modelName: MODEL_NAME,
    modelAliases: ['phi4-mini'],
    port: 0,
    host: '127.0.0.1',
    logLevel: 'silent',
    threads: 2,
    contextLength: TEST_CONTEXT,
    // Int4 steps only: whether int8 wins is measured per machine, and tests compare tokens across step sizes.
    int8Steps: 'off',
    ...overrides,
  });
}

export async function loadTestModel(overrides: Partial<ServerConfig> = {}): Promise<LoadedModel> {
  return loadModel(testConfig(overrides));
}

export interface TestServer {
  app: FastifyInstance;
  /** e.g. http://127.0.0.1:PORT (no trailing slash) */
  url: string;
  ctx: ServingContext;
  close(): Promise<void>;
}

/** Builds an app on an already-loaded model and listens on a random port. */
export async function startServer(
  model: LoadedModel,
  overrides: Partial<ServerConfig> = {},
  appOptions: Omit<AppOptions, 'model' | 'ownsEngine'> = {},
): Promise<TestServer> {
  const app = await buildApp(testConfig(overrides), { ...appOptions, model, ownsEngine: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address !== 'object') throw new Error('no address');
  const ctx = app.models.list()[0]?.ctx;
  if (!ctx) throw new Error('model not ready');
  const close = async (): Promise<void> => {
    const closing = app.close();
    // fetch (undici) may leave a fresh keep-alive socket with no request on it after an abort;
    // server.close() would wait for the client to drop it. Tests end only with nothing in flight.
    app.server.closeAllConnections();
    await closing;
  };
  return { app, url: `http://127.0.0.1:${address.port}`, ctx, close };
}

/** A model, a server on it and an official openai client: what an SDK test file starts with. */
export interface SdkServer {
  model: LoadedModel;
  server: TestServer;
  client: OpenAI;
  close(): Promise<void>;
}

export async function startSdkServer(overrides: Partial<ServerConfig> = {}): Promise<SdkServer> {
  const model = await loadTestModel();
  const server = await startServer(model, overrides);
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const close = async (): Promise<void> => {
    await server.close();
    await model.engine.close();
  };
  return { model, server, client, close };
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

/** Polls a condition on server state (not on time) with a generous cap so a bug fails instead of hanging. */
export async function until(cond: () => boolean, what: string, capMs = 30_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > capMs) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export interface SseEvent {
  raw: string;
  data: string;
}

/** Splits an SSE body into events, asserting nothing; callers check the framing. */
export function parseSse(body: string): SseEvent[] {
  return body
    .split('\n\n')
    .filter((block) => block.length > 0)
    .map((raw) => ({ raw, data: raw.startsWith('data: ') ? raw.slice(6) : raw }));
}

/** Reads an SSE response incrementally, yielding each `data:` payload as it arrives. */
export async function* readSse(res: Response): AsyncGenerator<string> {
  if (!res.body) return;
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of res.body) {
    buf += decoder.decode(chunk as Uint8Array, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (block.startsWith('data: ')) yield block.slice(6);
    }
  }
}
