/**
 * Every numeric request field of /v1/chat/completions and /v1/completions, swept through its
 * schema's extremes on the real server: no value may cause a 5xx. A value inside the documented
 * bounds is served (200); one outside gets a 400 naming the field. Values are written into the
 * JSON text as literals, so subnormals, -0 and overflowing literals (1e309) reach the server as is.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LoadedModel } from '../../src/app.ts';
import { EOS_IDS, MODEL_NAME, TEST_CONTEXT, loadTestModel, startServer, type TestServer } from '../helpers/server.ts';

let model: LoadedModel;
let server: TestServer;
let vocab: number;

before(async () => {
  model = await loadTestModel();
  server = await startServer(model);
  vocab = model.engine.info.vocabSize;
});

after(async () => {
  await server?.close();
  await model?.engine.close();
});

type Endpoint = 'chat' | 'completions';
type Body = Record<string, unknown>;

/** Stands for the value in the body; replaced by the literal in the JSON text. */
const SLOT = '@@value@@';

const LITERALS = [
  '0', '-0', '5e-324', '1e-38', '1e-300', '1e-7', '0.5', '1', '1.0000001', '1.5', '2', '2.0000001', '3', '20', '21',
  '100', '100.5', '101', '-1', '-1e-300', '-1.5', '-2', '-2.0000001', '-100', '-101', '200063', '200064',
  '2147483648', '9007199254740993', '1e308', '-1e308', '1e309', '-1e309',
];

interface NumericField {
  name: string;
  endpoints: readonly Endpoint[];
  place(body: Body): void;
  /** The documented bounds: true means the request must be served. */
  accepts(v: number): boolean;
  /** What a refusal may name in `param` (default: the field itself). */
  params?: readonly string[];
}

const isInt = Number.isInteger;
const between = (lo: number, hi: number) => (v: number) => Number.isFinite(v) && v >= lo && v <= hi;
const BOTH = ['chat', 'completions'] as const;
/** Budgets below this fit the test context next to the short prompts used here. */
const FITS = TEST_CONTEXT / 2;

function simple(name: string, accepts: (v: number) => boolean, endpoints: readonly Endpoint[] = BOTH, extra: Body = {}): NumericField {
  return { name, endpoints, accepts, place: (b) => Object.assign(b, extra, { [name]: SLOT }) };
}

const FIELDS: NumericField[] = [
  { ...simple('max_tokens', (v) => isInt(v) && v >= 1 && v < FITS), params: ['max_tokens', 'messages', 'prompt'] },
  { ...simple('max_completion_tokens', (v) => isInt(v) && v >= 1 && v < FITS, ['chat']), params: ['max_completion_tokens', 'messages'] },
  simple('temperature', between(0, 2)),
  simple('top_p', (v) => v > 0 && v <= 1),
  simple('top_k', (v) => isInt(v) && v >= -1),
  simple('min_p', between(0, 1)),
  simple('seed', isInt),
  simple('presence_penalty', between(-2, 2)),
  simple('frequency_penalty', between(-2, 2)),
  simple('repetition_penalty', (v) => Number.isFinite(v) && v > 0),
  simple('n', (v) => v === 1),
  simple('top_logprobs', (v) => isInt(v) && v >= 0 && v <= 20, ['chat'], { logprobs: true }),
  simple('logprobs', (v) => isInt(v) && v >= 0 && v <= 20, ['completions']),
  simple('best_of', (v) => v === 1, ['completions']),
  // Bias values are clamped to [-100, 100], not refused.
  {
    name: 'logit_bias',
    endpoints: BOTH,
    accepts: Number.isFinite,
    params: ['logit_bias', 'logit_bias[1000]'],
    place: (b) => (b.logit_bias = { '1000': SLOT }),
  },
  {
    name: 'stop_token_ids',
    endpoints: BOTH,
    accepts: (v) => isInt(v) && v >= 0 && v < vocab,
    params: ['stop_token_ids', 'stop_token_ids[0]'],
    place: (b) => (b.stop_token_ids = [SLOT]),
  },
  {
    name: 'prompt (token id)',
    endpoints: ['completions'],
    accepts: (v) => isInt(v) && v >= 0 && v < vocab,
    params: ['prompt', 'prompt[0]'],
    place: (b) => (b.prompt = [SLOT]),
  },
];

function baseBody(endpoint: Endpoint): Body {
  // No max_tokens here when the field under test is a budget of its own.
  return endpoint === 'chat'
    ? { model: MODEL_NAME, messages: [{ role: 'user', content: 'hi hi hi' }] }
    : { model: MODEL_NAME, prompt: 'hi hi hi' };
}

const path = (endpoint: Endpoint): string => (endpoint === 'chat' ? '/v1/chat/completions' : '/v1/completions');

async function post(endpoint: Endpoint, json: string): Promise<{ status: number; text: string }> {
  const res = await fetch(server.url + path(endpoint), { method: 'POST', headers: { 'content-type': 'application/json' }, body: json });
  return { status: res.status, text: await res.text() };
}

/** What was wrong with one request, or undefined when it got what its bounds promise. */
function judge(field: NumericField, v: number, status: number, text: string): string | undefined {
  if (field.accepts(v)) return status === 200 ? undefined : `expected 200, got ${status} ${text}`;
  if (status !== 400) return `expected 400, got ${status} ${text}`;
  const param = (JSON.parse(text) as { error: { param: string | null } }).error.param;
  const allowed = field.params ?? [field.name];
  return param !== null && allowed.includes(param) ? undefined : `400 names param ${param}, expected one of ${allowed.join(', ')}`;
}

describe('numeric fields at their extremes', () => {
  for (const endpoint of BOTH) {
    it(`${path(endpoint)}: no 5xx; in bounds 200, out of bounds 400 with the param`, async () => {
      const failures: string[] = [];
      for (const field of FIELDS.filter((f) => f.endpoints.includes(endpoint))) {
        const body = baseBody(endpoint);
        const budget = field.name === 'max_tokens' || field.name === 'max_completion_tokens';
        if (!budget) body.max_tokens = 1;
        field.place(body);
        const template = JSON.stringify(body);
        for (const literal of LITERALS) {
          const { status, text } = await post(endpoint, template.replace(`"${SLOT}"`, literal));
          const problem = judge(field, Number(literal), status, text);
          if (problem) failures.push(`${field.name}=${literal}: ${problem}`);
        }
      }
      assert.deepEqual(failures, []);
    });
  }
});

describe('parameter combinations that cannot be sampled', () => {
  const completion = (body: Body) =>
    post('completions', JSON.stringify({ model: MODEL_NAME, prompt: 'hi hi hi hi', max_tokens: 3, ...body }));

  it('a logit_bias that bans every token is a 400 on logit_bias', async () => {
    const banAll = Object.fromEntries(Array.from({ length: vocab }, (_, id) => [String(id), -100]));
    for (const endpoint of BOTH) {
      const body = { ...baseBody(endpoint), max_tokens: 2, logit_bias: banAll };
      const { status, text } = await post(endpoint, JSON.stringify(body));
      assert.equal(status, 400, text);
      assert.equal((JSON.parse(text) as { error: { param: string } }).error.param, 'logit_bias');
    }
  });

  it('a logit_bias that bans all but one token generates that token', async () => {
    const keep = 1000;
    const bias = Object.fromEntries(Array.from({ length: vocab }, (_, id) => [String(id), id === keep ? 0 : -100]));
    const { status, text } = await completion({ logit_bias: bias, logprobs: 5, temperature: 1.5 });
    assert.equal(status, 200, text);
    const expected = model.tokenizer.decode([keep, keep, keep]);
    assert.equal((JSON.parse(text) as { choices: { text: string }[] }).choices[0].text, expected);
  });

  it('an overflowing repetition_penalty is served in every selection mode', async () => {
    const modes: Body[] = [
      { temperature: 0 },
      {},
      { temperature: 1e-300 },
      { temperature: 2, top_p: 5e-324 },
      { top_k: 2 },
      { min_p: 1 },
      { top_p: 0.5, min_p: 0.5 },
      { logprobs: 20 },
      { logprobs: 20, temperature: 0.5, top_p: 0.9 },
    ];
    for (const penalty of [5e-324, 1e-38, 1e308]) {
      for (const mode of modes) {
        // Eos banned so every step samples among penalised and plain tokens.
        const bias = Object.fromEntries(EOS_IDS.map((id) => [String(id), -100]));
        const { status, text } = await completion({ repetition_penalty: penalty, logit_bias: bias, ...mode });
        assert.equal(status, 200, `repetition_penalty ${penalty} with ${JSON.stringify(mode)}: ${text}`);
      }
    }
  });
});
