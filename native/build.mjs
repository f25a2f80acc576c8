// npm install's step for native/malloc-trim: node-gyp against the headers installed beside this node
// (no download), when they are there. A failed build only means the heap is never trimmed.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const prefix = dirname(dirname(process.execPath));
const nodeGyp = process.env.npm_config_node_gyp;
const args = ['rebuild', '--directory', 'native/malloc-trim', '--loglevel=error'];
if (existsSync(join(prefix, 'include', 'node', 'common.gypi'))) args.push(`--nodedir=${prefix}`);
const run = nodeGyp ? spawnSync(process.execPath, [nodeGyp, ...args], { stdio: 'inherit' }) : spawnSync('node-gyp', args, { stdio: 'inherit' });
if (run.status !== 0) {
  console.warn('native/malloc-trim not built (needs python3, make, g++ and Node headers): freed model memory will stay resident');
}
