import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Synthetic model folders the tests run on, built by test/setup/fixtures.ts. */
export const FIXTURES = {
  tiny: join(root, 'models', 'tiny'),
  'tiny-exact': join(root, 'models', 'tiny-exact'),
  'tiny-alt': join(root, 'models', 'tiny-alt'),
  /** The second family: Qwen2.5's graph and tokenizer. */
  'tiny-qwen': join(root, 'models', 'tiny-qwen'),
} as const;
