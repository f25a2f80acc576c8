import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  HERMES_TOOL_SYNTAX,
  PHI4_TOOL_SYNTAX,
  ToolCallParser,
  type ParsedToolCall,
  type ToolCallSyntax,
  type ToolParseEvent,
} from '../../src/server/tools/tool-call-parser.ts';

interface Case {
  name: string;
  input: string;
  content: string;
  /** [name, arguments]; arguments compare JSON.parse-equal when both parse, else as text. */
  calls: [string, string][];
  /** Event types with consecutive repeats collapsed: c = content, callN, argsN. */
  order: string[];
}

const T = (body: string): string => `<|tool_call|>${body}<|/tool_call|>`;
const tricky = {
  code: 'if (a) { b("]}"); } <|/tool_call|> <|tool_call|> functools[',
  list: [[1, { k: 'v', name: 'inner' }], [], {}],
  esc: '\\"\\\\\n\t',
  n: -1.5e3,
  ok: null,
};

const cases: Case[] = [
  {
    name: 'plain text only',
    input: 'Paris is <|tool nice; functools is a module, functools (\n) too. <| functool',
    content: 'Paris is <|tool nice; functools is a module, functools (\n) too. <| functool',
    calls: [],
    order: ['c'],
  },
  {
    name: 'one call in an array',
    input: T('[{"name": "get_weather", "arguments": {"city": "Paris"}}]'),
    content: '',
    calls: [['get_weather', '{"city": "Paris"}']],
    order: ['call0', 'args0'],
  },
  {
    name: 'two calls in one array',
    input: T('[\n  {"name": "a", "arguments": {"x": 1}},\n  {"name": "b", "arguments": {"y": [2]}}\n]'),
    content: '',
    calls: [['a', '{"x":1}'], ['b', '{"y":[2]}']],
    order: ['call0', 'args0', 'call1', 'args1'],
  },
  {
    name: 'single object without the array',
    input: T(' {"name": "get_time", "arguments": {}} '),
    content: '',
    calls: [['get_time', '{}']],
    order: ['call0', 'args0'],
  },
  {
    name: 'missing closing tag',
    input: 'Sure.<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Oslo"}}]',
    content: 'Sure.',
    calls: [['get_weather', '{"city": "Oslo"}']],
    order: ['c', 'call0', 'args0'],
  },
  {
    name: 'functools[...]',
    input: 'functools [{"name": "get_weather", "arguments": {"city": "Rome"}}] Done.',
    content: ' Done.',
    calls: [['get_weather', '{"city": "Rome"}']],
    order: ['call0', 'args0', 'c'],
  },
  {
    name: 'parameters instead of arguments',
    input: T('[{"name": "f", "parameters": {"a": 1}}]'),
    content: '',
    calls: [['f', '{"a": 1}']],
    order: ['call0', 'args0'],
  },
  {
    name: 'arguments given as a JSON string',
    input: T(`[{"name": "f", "arguments": ${JSON.stringify(JSON.stringify({ a: 'b}"]' }))}}]`),
    content: '',
    calls: [['f', '{"a":"b}\\"]"}']],
    order: ['call0', 'args0'],
  },
  {
    name: 'arguments before name',
    input: T('[{"id": 7, "arguments": {"q": [1, 2]}, "name": "search"}]'),
    content: '',
    calls: [['search', '{"q": [1, 2]}']],
    order: ['call0', 'args0'],
  },
  {
    name: 'text before and after a call',
    input: `Let me check.\n${T('[{"name": "f", "arguments": {}}]')}\nOne moment. `,
    content: 'Let me check.\n\nOne moment. ',
    calls: [['f', '{}']],
    order: ['c', 'call0', 'args0', 'c'],
  },
  {
    name: 'two separate regions, missing arguments',
    input: `A${T('[{"name": "a", "arguments": {"k": true}}]')} B ${T('{"name": "b"}')}C`,
    content: 'A B C',
    calls: [['a', '{"k": true}'], ['b', '{}']],
    order: ['c', 'call0', 'args0', 'c', 'call1', 'args1', 'c'],
  },
  {
    name: 'malformed regions become content',
    input: `x ${T('hello')} y functools [1] ${T('[{"arguments": {}}]')} ${T('')}z`,
    content: `x ${T('hello')} y functools [1] ${T('[{"arguments": {}}]')} ${T('')}z`,
    calls: [],
    order: ['c'],
  },
  {
    name: 'nested values and tricky strings',
    input: T(`[{"name": "run", "arguments": ${JSON.stringify(tricky, null, 1)}}]`),
    content: '',
    calls: [['run', JSON.stringify(tricky)]],
    order: ['call0', 'args0'],
  },
  {
    name: 'unicode',
    input: `Voilà 👋 ${T('[{"name": "traduire", "arguments": {"texte": "日本語 🎌", "e": "\\u00e9\\ud83d\\ude00"}}]')} ✓`,
    content: 'Voilà 👋  ✓',
    calls: [['traduire', '{"texte": "日本語 🎌", "e": "é😀"}']],
    order: ['c', 'call0', 'args0', 'c'],
  },
  {
    name: 'a forced opener, then text after the call',
    input: '<|tool_call|>[{"name": "f", "arguments": {"a": [true, null]}}]<|/tool_call|>Done',
    content: 'Done',
    calls: [['f', '{"a": [true, null]}']],
    order: ['call0', 'args0', 'c'],
  },
  {
    name: 'a single object, no closing tag',
    input: '<|tool_call|>{"name": "g", "arguments": 42}',
    content: '',
    calls: [['g', '42']],
    order: ['call0', 'args0'],
  },
  {
    name: 'call cut off by the end of output keeps its fragments',
    input: 'ok <|tool_call|>[{"name": "f", "arguments": {"a": [1, "x}',
    content: 'ok ',
    calls: [['f', '{"a": [1, "x}']],
    order: ['c', 'call0', 'args0'],
  },
];

/** Qwen2.5 (Hermes style): one `<tool_call>\n{...}\n</tool_call>` block per call, newlines around blocks. */
const Q = (body: string): string => `<tool_call>\n${body}\n</tool_call>`;

const qwenCases: Case[] = [
  {
    name: 'plain text only (tag-like text and Phi-4 markers stay content)',
    input: 'Use <tool> or <tool_cal, <|tool_call|>[{"name": "x"}], functools[1]; </tool_call> too.\n',
    content: 'Use <tool> or <tool_cal, <|tool_call|>[{"name": "x"}], functools[1]; </tool_call> too.\n',
    calls: [],
    order: ['c'],
  },
  {
    name: 'one call, as the model writes it',
    input: Q('{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}'),
    content: '',
    calls: [['get_weather', '{"city": "Paris", "days": 2}']],
    order: ['call0', 'args0'],
  },
  {
    name: 'two blocks: two calls, the newline between them is layout',
    input: `${Q('{"name": "a", "arguments": {"x": 1}}')}\n${Q('{"name": "b", "arguments": {"y": [2, {"z": "}"}]}}')}`,
    content: '',
    calls: [['a', '{"x": 1}'], ['b', '{"y": [2, {"z": "}"}]}']],
    order: ['call0', 'args0', 'call1', 'args1'],
  },
  {
    name: 'text before the calls keeps its own whitespace, not the newline before the tag',
    input: `Let me check.\n\n${Q('{"name": "f", "arguments": {}}')}\n`,
    content: 'Let me check.',
    calls: [['f', '{}']],
    order: ['c', 'call0', 'args0'],
  },
  {
    name: 'text after a call',
    input: `${Q('{"name": "f", "arguments": {"a": true}}')}\n  Done, see\nabove. `,
    content: 'Done, see\nabove. ',
    calls: [['f', '{"a": true}']],
    order: ['call0', 'args0', 'c'],
  },
  {
    name: 'a forced call without the newlines, and the closing tag cut (the answer ended with it)',
    input: '<tool_call>\n{"name": "g", "arguments": {"q": [1, 2]}}',
    content: '',
    calls: [['g', '{"q": [1, 2]}']],
    order: ['call0', 'args0'],
  },
  {
    name: 'compact, no newlines at all',
    input: '<tool_call>{"name": "g", "arguments": {}}</tool_call><tool_call>{"name": "h", "arguments": {"k": null}}</tool_call>',
    content: '',
    calls: [['g', '{}'], ['h', '{"k": null}']],
    order: ['call0', 'args0', 'call1', 'args1'],
  },
  {
    name: 'a list inside one block, parameters instead of arguments, arguments as a JSON string',
    input: Q(`[{"name": "a", "parameters": {"n": 1}}, {"name": "b", "arguments": ${JSON.stringify(JSON.stringify({ s: 'x}"' }))}}]`),
    content: '',
    calls: [['a', '{"n": 1}'], ['b', '{"s":"x}\\""}']],
    order: ['call0', 'args0', 'call1', 'args1'],
  },
  {
    name: 'tags inside a JSON string are argument text',
    input: Q('{"name": "echo", "arguments": {"text": "</tool_call>\\n<tool_call>"}}'),
    content: '',
    calls: [['echo', '{"text": "</tool_call>\\n<tool_call>"}']],
    order: ['call0', 'args0'],
  },
  {
    name: 'a malformed block is content, whitespace and tags included',
    input: `Hi\n<tool_call>\nnot json\n</tool_call>\n${Q('{"arguments": {}}')} end`,
    content: `Hi\n<tool_call>\nnot json\n</tool_call>\n${Q('{"arguments": {}}')} end`,
    calls: [],
    order: ['c'],
  },
  {
    name: 'unicode, and a call cut off by the end of output',
    input: `Voilà 👋\n${Q('{"name": "traduire", "arguments": {"texte": "日本語 🎌"}}')}\n<tool_call>\n{"name": "f", "arguments": {"a": "x}`,
    content: 'Voilà 👋',
    calls: [['traduire', '{"texte": "日本語 🎌"}'], ['f', '{"a": "x}']],
    order: ['c', 'call0', 'args0', 'call1', 'args1'],
  },
  {
    name: 'whitespace-only output stays content',
    input: ' \n ',
    content: ' \n ',
    calls: [],
    order: ['c'],
  },
];

interface Run {
  content: string;
  calls: ParsedToolCall[];
  order: string[];
}

/** Feeds the chunks and checks the invariants every event stream must hold. */
function run(chunks: string[], syntax: ToolCallSyntax = PHI4_TOOL_SYNTAX): Run {
  const p = new ToolCallParser(syntax);
  const events: ToolParseEvent[] = [...chunks.flatMap((c) => p.push(c)), ...p.finish()];
  const calls = p.calls;
  const names: string[] = [];
  const frags: string[] = [];
  for (const e of events) {
    if (e.type === 'call') {
      assert.equal(e.index, names.length, 'call indexes count from 0');
      names.push(e.name);
      frags.push('');
    } else if (e.type === 'arguments') {
      assert.ok(e.index < names.length, 'arguments follow their call event');
      frags[e.index] += e.text;
    }
  }
  assert.deepEqual(names, calls.map((c) => c.name));
  assert.deepEqual(frags, calls.map((c) => c.arguments), 'fragments concatenate to the arguments');
  const tags = events.map((e) => (e.type === 'content' ? 'c' : `${e.type === 'call' ? 'call' : 'args'}${e.index}`));
  return {
    content: events.map((e) => (e.type === 'content' ? e.text : '')).join(''),
    calls,
    order: tags.filter((t, i) => t !== tags[i - 1]),
  };
}

function normalize(args: string): unknown {
  try {
    return JSON.parse(args);
  } catch {
    return args;
  }
}

/** Deterministic PRNG (mulberry32) so random chunkings are reproducible. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function chunkings(input: string): string[][] {
  const out: string[][] = [input.split('')];
  for (let i = 0; i <= input.length; i++) out.push([input.slice(0, i), input.slice(i)]);
  const rand = rng(42);
  for (let n = 0; n < 30; n++) {
    const chunks: string[] = [];
    for (let i = 0; i < input.length; ) {
      const len = 1 + Math.floor(rand() * 12);
      chunks.push(input.slice(i, i + len));
      i += len;
    }
    out.push(chunks);
  }
  return out;
}

describe('ToolCallParser canned outputs', () => {
  for (const c of cases) {
    it(c.name, () => {
      const r = run([c.input]);
      assert.equal(r.content, c.content);
      assert.deepEqual(
        r.calls.map((x) => [x.name, normalize(x.arguments)]),
        c.calls.map(([n, a]) => [n, normalize(a)]),
      );
      assert.deepEqual(r.order, c.order);
    });
  }
});

describe('ToolCallParser chunking does not matter', () => {
  for (const c of cases) {
    it(c.name, () => {
      const whole = run([c.input]);
      for (const chunks of chunkings(c.input)) {
        const r = run(chunks);
        assert.deepEqual(r, whole, `chunks: ${JSON.stringify(chunks)}`);
      }
    });
  }
});

describe('ToolCallParser streaming', () => {
  it('emits the call as soon as the name is complete, then raw argument fragments', () => {
    const p = new ToolCallParser();
    assert.deepEqual(p.push('Hi <|tool'), [{ type: 'content', text: 'Hi ' }]);
    assert.deepEqual(p.push('_call|>[{"name": "get_weather", "argu'), [{ type: 'call', index: 0, name: 'get_weather' }]);
    assert.deepEqual(p.push('ments": {"city": "Pa'), [{ type: 'arguments', index: 0, text: '{"city": "Pa' }]);
    assert.deepEqual(p.push('ris"} }]<|/tool_'), [{ type: 'arguments', index: 0, text: 'ris"}' }]);
    assert.deepEqual(p.push('call|> bye'), [{ type: 'content', text: ' bye' }]);
    assert.deepEqual(p.finish(), []);
    assert.deepEqual(p.calls, [{ name: 'get_weather', arguments: '{"city": "Paris"}' }]);
  });

  it('buffers arguments that come before the name', () => {
    const p = new ToolCallParser();
    assert.deepEqual(p.push('<|tool_call|>{"arguments": {"a": 1}, "na'), []);
    assert.deepEqual(p.push('me": "f"}'), [
      { type: 'call', index: 0, name: 'f' },
      { type: 'arguments', index: 0, text: '{"a": 1}' },
    ]);
  });

  it('holds a possible functools marker until it is decided', () => {
    const p = new ToolCallParser();
    assert.deepEqual(p.push('use functools  '), [{ type: 'content', text: 'use ' }]);
    assert.deepEqual(p.push('.reduce'), [{ type: 'content', text: 'functools  .reduce' }]);
  });
});

describe('ToolCallParser, Qwen2.5 (Hermes) syntax: canned outputs', () => {
  for (const c of qwenCases) {
    it(c.name, () => {
      const r = run([c.input], HERMES_TOOL_SYNTAX);
      assert.equal(r.content, c.content);
      assert.deepEqual(
        r.calls.map((x) => [x.name, normalize(x.arguments)]),
        c.calls.map(([n, a]) => [n, normalize(a)]),
      );
      assert.deepEqual(r.order, c.order);
    });
  }
});

describe('ToolCallParser, Qwen2.5 (Hermes) syntax: split at every position, chunking does not matter', () => {
  for (const c of qwenCases) {
    it(c.name, () => {
      const whole = run([c.input], HERMES_TOOL_SYNTAX);
      for (const chunks of chunkings(c.input)) {
        const r = run(chunks, HERMES_TOOL_SYNTAX);
        assert.deepEqual(r, whole, `chunks: ${JSON.stringify(chunks)}`);
      }
    });
  }
});

describe('ToolCallParser, Qwen2.5 (Hermes) syntax: streaming', () => {
  it('holds whitespace and a possible tag until decided, then emits the call as soon as its name is complete', () => {
    const p = new ToolCallParser(HERMES_TOOL_SYNTAX);
    assert.deepEqual(p.push('Sure.\n<tool'), [{ type: 'content', text: 'Sure.' }]);
    assert.deepEqual(p.push('_call>\n{"name": "get_weather", "argu'), [{ type: 'call', index: 0, name: 'get_weather' }]);
    assert.deepEqual(p.push('ments": {"city": "Pa'), [{ type: 'arguments', index: 0, text: '{"city": "Pa' }]);
    assert.deepEqual(p.push('ris"}}\n</tool_call>\n'), [{ type: 'arguments', index: 0, text: 'ris"}' }]);
    assert.deepEqual(p.push('<tool_call>\n{"name": "b", "arguments": {}}\n</tool_call>'), [
      { type: 'call', index: 1, name: 'b' },
      { type: 'arguments', index: 1, text: '{}' },
    ]);
    assert.deepEqual(p.finish(), []);
    assert.deepEqual(p.calls, [{ name: 'get_weather', arguments: '{"city": "Paris"}' }, { name: 'b', arguments: '{}' }]);
  });

  it('trailing whitespace of content is sent once text follows it, or at the end', () => {
    const p = new ToolCallParser(HERMES_TOOL_SYNTAX);
    assert.deepEqual(p.push('a \n'), [{ type: 'content', text: 'a' }]);
    assert.deepEqual(p.push('b\n'), [{ type: 'content', text: ' \nb' }]);
    assert.deepEqual(p.finish(), [{ type: 'content', text: '\n' }]);
  });
});
