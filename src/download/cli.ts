/**
 * npm run model:download [-- --model phi-4-mini|qwen2.5-0.5b --variant cpu-int4|gpu-int4 --out DIR --revision REV --verify]
 * Environment: HF_TOKEN (gated/private repos), HF_ENDPOINT (mirror or test server).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_REAL_MODEL_DIR } from '../config.ts';
import { downloadModel, type DownloadSummary } from './download.ts';
import { DownloadError } from './errors.ts';
import { barProgress, formatBytes, type ProgressReporter } from './progress.ts';
import { DEFAULT_ENDPOINT, DEFAULT_MODEL, DEFAULT_REVISION, MODELS, folderOf, hubLocation, isModelName, variantsOf, type HubModel, type ModelName } from './variants.ts';

export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WriteStream;
  /** Default: a cli-progress bar on stderr. */
  progress?: ProgressReporter;
}

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** The default output folder of `model`. */
function defaultOut(model: ModelName): string {
  const entry: HubModel = MODELS[model];
  return entry.outDir ?? DEFAULT_REAL_MODEL_DIR;
}

function modelsHelp(): string[] {
  return (Object.entries(MODELS) as [ModelName, HubModel][]).flatMap(([name, m]) => [
    `      ${name.padEnd(14)} ${m.about} (output default: ${defaultOut(name)})`,
    ...Object.entries(m.variants).map(([variant, folder]) => `        --variant ${variant.padEnd(10)} ${hubLocation(m.repo, folder)}`),
  ]);
}

export function helpText(): string {
  return [
    'Usage: npm run model:download [-- options]',
    '',
    "Downloads one variant folder of a model's ONNX repo from the Hugging Face Hub.",
    'Interrupted downloads resume from FILE.part; complete files are skipped.',
    '',
    'Options:',
    `  --model <name>     which model (default: ${DEFAULT_MODEL})`,
    ...modelsHelp(),
    "  --variant <name>   which export (default: the model's first)",
    "  --out <dir>        output folder (default: the model's, above)",
    `  --revision <rev>   branch, tag or commit (default: ${DEFAULT_REVISION})`,
    '  --verify           re-hash files that are already complete',
    '  --retries <n>      resumes per file after a dropped connection (default: 5)',
    '  --help             show this help',
    '',
    'Environment:',
    '  HF_TOKEN           access token, sent as "Authorization: Bearer" to the Hub only',
    `  HF_ENDPOINT        Hub base URL (default: ${DEFAULT_ENDPOINT})`,
    '',
  ].join('\n');
}

class UsageError extends Error {}

interface CliArgs {
  model: ModelName;
  variant: string;
  out: string;
  revision: string;
  verify: boolean;
  retries?: number;
}

function parseCliArgs(argv: readonly string[]): CliArgs | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        model: { type: 'string' },
        variant: { type: 'string' },
        out: { type: 'string' },
        revision: { type: 'string' },
        verify: { type: 'boolean' },
        retries: { type: 'string' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return 'help';
  const model = values.model ?? DEFAULT_MODEL;
  if (!isModelName(model)) throw new UsageError(`--model: expected one of ${Object.keys(MODELS).join(', ')}, got "${model}"`);
  const variant = values.variant ?? variantsOf(model)[0];
  if (folderOf(model, variant) === undefined) {
    throw new UsageError(`--variant: expected one of ${variantsOf(model).join(', ')}, got "${variant}"`);
  }
  let retries: number | undefined;
  if (values.retries !== undefined) {
    if (!/^\d+$/.test(values.retries)) throw new UsageError(`--retries: expected a non-negative integer, got "${values.retries}"`);
    retries = Number(values.retries);
  }
  const revision = values.revision?.trim() || DEFAULT_REVISION;
  return { model, variant, out: values.out ?? defaultOut(model), revision, verify: values.verify ?? false, retries };
}

/** Runs the command; returns the exit code instead of exiting so tests can call it in-process. */
export async function runCli(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  io: CliIo,
): Promise<number> {
  let args: CliArgs | 'help';
  try {
    args = parseCliArgs(argv);
  } catch (err) {
    io.stderr.write(`${(err as Error).message}\n\n${helpText()}`);
    return EXIT_USAGE;
  }
  if (args === 'help') {
    io.stdout.write(helpText());
    return EXIT_OK;
  }
  const endpoint = env.HF_ENDPOINT?.trim() || DEFAULT_ENDPOINT;
  const where = hubLocation(MODELS[args.model].repo, folderOf(args.model, args.variant) ?? '');
  io.stderr.write(`Downloading ${where} (revision ${args.revision}) from ${endpoint} into ${args.out}\n`);
  try {
    const summary = await downloadModel({
      model: args.model,
      variant: args.variant,
      outDir: args.out,
      revision: args.revision,
      endpoint,
      token: env.HF_TOKEN,
      verifyExisting: args.verify,
      retries: args.retries,
      progress: io.progress ?? barProgress(io.stderr),
    });
    io.stdout.write(servingInstructions(summary, args.variant));
    return EXIT_OK;
  } catch (err) {
    // Our errors carry a message meant for people; anything else is a bug and keeps its stack.
    const text = err instanceof DownloadError ? `error: ${err.message}` : `error: ${(err as Error)?.stack ?? String(err)}`;
    io.stderr.write(`${text}\n`);
    return EXIT_FAILED;
  }
}

function servingInstructions(summary: DownloadSummary, variant: string): string {
  const rel = path.relative(process.cwd(), summary.outDir);
  const shown = rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : summary.outDir;
  const dir = /^[\w./-]+$/.test(shown) ? shown : JSON.stringify(shown);
  const extra = variant === 'gpu-int4' ? ' -- --device cuda' : '';
  return [
    '',
    `Downloaded ${hubLocation(summary.repo, summary.folder)} (revision ${summary.revision}, ${formatBytes(summary.totalBytes)}) into ${summary.outDir}.`,
    'Serve it with:',
    '',
    `  MODEL_DIR=${dir} npm start${extra}`,
    '',
  ].join('\n');
}

function isMain(): boolean {
  const entry = process.argv[1];
  return entry !== undefined && import.meta.url === pathToFileURL(path.resolve(entry)).href;
}

if (isMain()) {
  const progress = barProgress(process.stderr);
  process.once('SIGINT', () => {
    progress.stop();
    process.stderr.write('\ninterrupted: partial files are kept as *.part; run the same command again to resume.\n');
    process.exit(130);
  });
  process.exitCode = await runCli(process.argv.slice(2), process.env, {
    stdout: process.stdout,
    stderr: process.stderr,
    progress,
  });
}
