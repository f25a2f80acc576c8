/**
 * Grammars for constrained decoding, compiled by xgrammar against the model's vocabulary. The
 * vocabulary's token table is built on first use (~0.5 s at 200k tokens), then compiled grammars
 * are kept in a small LRU. xgrammar aborts its wasm instance on some bad inputs and is not
 * reliable afterwards, so any throw discards the instance and the next call starts a fresh one.
 */
import type { GrammarSpec } from '../types.ts';
import { loadGrammarVocab } from './grammar-vocab.ts';
import { loadXGrammar, type CompiledGrammar, type GrammarCompiler, type GrammarMatcher, type XGrammarModule } from './xgrammar.ts';

/** Compiled grammars kept (a tool list or schema an agent resends is compiled once). */
const CACHE_SIZE = 64;
/** One line, Python json.dumps' separators (how Phi-4's tool calls look), no free whitespace. */
const SEPARATORS: [string, string] = [', ', ': '];

export class GrammarError extends Error {
  override name = 'GrammarError';
}

interface Instance {
  xg: XGrammarModule;
  compiler: GrammarCompiler;
  cache: Map<string, CompiledGrammar>;
}

export class Grammars {
  private instance: Promise<Instance> | undefined;

  constructor(
    private readonly modelDir: string,
    private readonly vocabSize: number,
    private readonly stopIds: readonly number[],
  ) {}

  /** Compiles (or finds) the grammar; throws GrammarError when xgrammar refuses it. */
  async compile(spec: GrammarSpec): Promise<CompiledGrammar> {
    const key = JSON.stringify(spec);
    const inst = await this.current();
    const hit = inst.cache.get(key);
    if (hit) {
      inst.cache.delete(key);
      inst.cache.set(key, hit);
      return hit;
    }
    const compiled = await this.guard(inst, () => compileSpec(inst.compiler, spec));
    inst.cache.set(key, compiled);
    if (inst.cache.size > CACHE_SIZE) {
      const [oldest, grammar] = inst.cache.entries().next().value!;
      inst.cache.delete(oldest);
      grammar.dispose();
    }
    return compiled;
  }

  /** A matcher at the grammar's start; it terminates on one of `endIds` (default: the model's stop tokens). */
  async matcher(spec: GrammarSpec, endIds?: readonly number[]): Promise<GrammarMatcher> {
    const compiled = await this.compile(spec);
    const inst = await this.current();
    return this.guard(inst, () => inst.xg.GrammarMatcher.createGrammarMatcher(compiled, endIds ? [...endIds] : undefined));
  }

  private current(): Promise<Instance> {
    this.instance ??= this.create();
    return this.instance;
  }

  private async create(): Promise<Instance> {
    const xg = loadXGrammar();
    const vocab = loadGrammarVocab(this.modelDir);
    // The wasm binds its error printer on this first call: silenced, as an abort prints the schema it
    // failed on (client text) to stderr.
    const { error, warn } = console;
    console.error = console.warn = () => {};
    let info;
    try {
      info = await xg.TokenizerInfo.createTokenizerInfo(vocab.encoded, vocab.vocabType, false, this.vocabSize, [...this.stopIds]);
    } finally {
      console.error = error;
      console.warn = warn;
    }
    const compiler = await xg.GrammarCompiler.createGrammarCompiler(info, false);
    return { xg, compiler, cache: new Map() };
  }

  private async guard<T>(inst: Instance, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (this.instance && (await this.instance) === inst) this.instance = undefined;
      throw new GrammarError(`the grammar engine rejected this grammar (${describe(err)})`);
    }
  }
}

function compileSpec(compiler: GrammarCompiler, spec: GrammarSpec): Promise<CompiledGrammar> {
  switch (spec.type) {
    case 'json_schema':
      return compiler.compileJSONSchema(spec.schema, false, -1, SEPARATORS, true);
    case 'json_object':
      // An object (OpenAI's json_object), any properties, compact like the schemas.
      return compiler.compileJSONSchema('{"type": "object"}', false, -1, SEPARATORS, false);
  }
}

/** xgrammar throws Errors, wasm RuntimeErrors, or bare numbers (a C++ exception pointer). */
function describe(err: unknown): string {
  return err instanceof Error ? err.message : typeof err === 'number' ? 'internal error' : String(err);
}
