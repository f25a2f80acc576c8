/**
 * Loads xgrammar (compiled to WebAssembly, `@mlc-ai/web-xgrammar`). The package ships a UMD bundle
 * under `"type": "module"`, so neither `import` nor `require` can load it: it is compiled here as
 * the CommonJS it is. The wasm is embedded in the file; nothing is fetched or read at run time.
 * Each call gives an independent instance (a wasm abort leaves an instance unusable).
 */
import { readFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';
import { dirname } from 'node:path';
import type * as XGrammar from '@mlc-ai/web-xgrammar';

export type XGrammarModule = Pick<typeof XGrammar, 'TokenizerInfo' | 'GrammarCompiler' | 'GrammarMatcher'>;
export type { CompiledGrammar, GrammarCompiler, GrammarMatcher, TokenizerInfo } from '@mlc-ai/web-xgrammar';

interface CommonJsModule {
  filename: string;
  paths: string[];
  exports: unknown;
  _compile(source: string, filename: string): void;
}
type ModuleClass = (new (id: string) => CommonJsModule) & { _nodeModulePaths(dir: string): string[] };

export function loadXGrammar(): XGrammarModule {
  const file = createRequire(import.meta.url).resolve('@mlc-ai/web-xgrammar');
  const ModuleCtor = Module as unknown as ModuleClass;
  const m = new ModuleCtor(file);
  m.filename = file;
  m.paths = ModuleCtor._nodeModulePaths(dirname(file));
  m._compile(readFileSync(file, 'utf8'), file);
  return m.exports as XGrammarModule;
}
