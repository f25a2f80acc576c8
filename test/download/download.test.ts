/** The model downloader against a fake Hub on 127.0.0.1 (no internet needed). */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../src/download/cli.ts';
import { downloadModel, type DownloadOptions } from '../../src/download/download.ts';
import {
  ChecksumMismatchError,
  HubUnreachableError,
  MissingModelFilesError,
  StallTimeoutError,
  TransferInterruptedError,
  classifyTransportError,
} from '../../src/download/errors.ts';
import { recordingProgress, silentProgress } from '../../src/download/progress.ts';
import { DEFAULT_REPO, MODELS, VARIANTS } from '../../src/download/variants.ts';
import { bytes, closedPort, sha256, startFakeHub, type FakeFile, type FakeHub } from './fake-hub.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CPU = VARIANTS['cpu-int4'];
const GPU = VARIANTS['gpu-int4'];
const TOKEN = 'hf_testTokenForTheFakeHub';

function variantFiles(folder: string, seed: number): FakeFile[] {
  return [
    { path: `${folder}/genai_config.json`, content: Buffer.from(JSON.stringify({ model: { type: 'phi3', seed } })) },
    { path: `${folder}/tokenizer_config.json`, content: Buffer.from('{"chat_template":"..."}') },
    { path: `${folder}/tokenizer.json`, content: bytes(40_000, seed + 1), lfs: true },
    { path: `${folder}/config.json`, content: Buffer.from('{"architectures":["Phi3ForCausalLM"]}') },
    { path: `${folder}/model.onnx`, content: bytes(60_000, seed + 2), lfs: true },
    { path: `${folder}/model.onnx.data`, content: bytes(300_000, seed + 3), lfs: true },
  ];
}

const FILES: FakeFile[] = [
  ...variantFiles(CPU, 10),
  ...variantFiles(GPU, 20),
  // Outside both variant folders: must never be fetched.
  { path: 'README.md', content: Buffer.from('# readme') },
];
const DATA = `${CPU}/model.onnx.data`;

let hub: FakeHub;
let out: string;

function options(extra: Partial<DownloadOptions> = {}): DownloadOptions {
  return {
    variant: 'cpu-int4',
    outDir: out,
    endpoint: hub.url,
    retries: 0,
    retryDelayMs: 0,
    progress: silentProgress,
    ...extra,
  };
}

async function assertVariantOnDisk(dir: string, folder: string): Promise<void> {
  const expected = FILES.filter((f) => f.path.startsWith(`${folder}/`));
  const names = (await readdir(dir)).sort();
  assert.deepEqual(names, expected.map((f) => f.path.slice(folder.length + 1)).sort());
  for (const f of expected) {
    const got = await readFile(path.join(dir, f.path.slice(folder.length + 1)));
    assert.ok(got.equals(f.content), `${f.path} differs`);
  }
}

/** Range headers of the CDN GETs for model.onnx.data's bytes (the size probes left out). */
const dataRanges = (): (string | undefined)[] => {
  const blob = `/blobs/${sha256(FILES.find((f) => f.path === DATA)!.content)}`;
  return hub.requests.filter((r) => r.server === 'cdn' && r.url.startsWith(blob) && r.range !== 'bytes=0-0').map((r) => r.range);
};

before(async () => {
  hub = await startFakeHub({ repo: DEFAULT_REPO, files: FILES });
});
after(async () => {
  await hub.close();
});
beforeEach(async () => {
  out = await mkdtemp(path.join(tmpdir(), 'phi4-download-'));
  hub.requests.length = 0;
});
afterEach(async () => {
  await rm(out, { recursive: true, force: true });
});

describe('downloadModel', () => {
  it('downloads a variant folder flattened into outDir, byte for byte, verified', async () => {
    const lines: string[] = [];
    const summary = await downloadModel(options({ progress: recordingProgress(lines) }));
    await assertVariantOnDisk(out, CPU);
    assert.equal(summary.folder, CPU);
    assert.equal(summary.totalBytes, 40_000 + 60_000 + 300_000 + FILES.slice(0, 6).filter((f) => !f.lfs).reduce((s, f) => s + f.content.length, 0));
    const byName = new Map(summary.files.map((f) => [f.name, f]));
    assert.equal(byName.get('model.onnx.data')?.check, 'sha256');
    assert.equal(byName.get('genai_config.json')?.check, 'git-sha1');
    assert.ok(summary.files.every((f) => f.outcome === 'downloaded'));
    assert.equal(lines.length, 6);
    // Small files first; nothing outside the folder was requested.
    assert.equal(summary.files.at(-1)?.name, 'model.onnx.data');
    assert.ok(!hub.requests.some((r) => r.url.includes('README') || r.url.includes('/gpu/')));
  });

  it('the gpu-int4 variant comes from its own folder', async () => {
    await downloadModel(options({ variant: 'gpu-int4' }));
    await assertVariantOnDisk(out, GPU);
  });

  it('skips complete files on a second run', async () => {
    await downloadModel(options());
    hub.requests.length = 0;
    const again = await downloadModel(options());
    assert.ok(again.files.every((f) => f.outcome === 'skipped'));
    assert.deepEqual(
      hub.requests.map((r) => r.url.split('?')[0]),
      [`/api/models/${DEFAULT_REPO}/tree/main/${CPU}`],
    );
  });

  it('--verify re-hashes complete files and replaces one that was altered', async () => {
    await downloadModel(options());
    const target = path.join(out, 'model.onnx');
    const altered = await readFile(target);
    altered[0] ^= 1;
    await writeFile(target, altered);
    const again = await downloadModel(options({ verifyExisting: true }));
    assert.equal(again.files.find((f) => f.name === 'model.onnx')?.outcome, 'downloaded');
    assert.equal(again.files.find((f) => f.name === 'model.onnx.data')?.check, 'sha256');
    await assertVariantOnDisk(out, CPU);
  });

  it('detects a sha256 mismatch, reports it and deletes the bad part', async () => {
    hub.fault(DATA, { kind: 'corrupt' });
    await assert.rejects(downloadModel(options()), (err: unknown) => {
      assert.ok(err instanceof ChecksumMismatchError);
      assert.equal(err.file, 'model.onnx.data');
      assert.equal(err.algorithm, 'sha256');
      assert.notEqual(err.actual, err.expected);
      assert.match(err.message, /sha256 mismatch for model\.onnx\.data/);
      return true;
    });
    assert.ok(!existsSync(path.join(out, 'model.onnx.data')));
    assert.ok(!existsSync(path.join(out, 'model.onnx.data.part')));
    // A rerun (the mirror is fine again) completes.
    await downloadModel(options());
    await assertVariantOnDisk(out, CPU);
  });

  it('an interrupted transfer leaves a .part; a rerun resumes it with a Range request', async () => {
    hub.fault(DATA, { kind: 'cut', bytes: 123_456 });
    let kept = 0;
    await assert.rejects(downloadModel(options()), (err: unknown) => {
      assert.ok(err instanceof TransferInterruptedError, String(err));
      assert.equal(err.file, 'model.onnx.data');
      assert.match(err.message, /run the same command again to resume/);
      kept = err.bytesOnDisk;
      return true;
    });
    const part = path.join(out, 'model.onnx.data.part');
    assert.equal((await stat(part)).size, kept);
    assert.ok(kept > 0 && kept < 300_000, `kept ${kept}`);
    assert.ok(!existsSync(path.join(out, 'model.onnx.data')));

    hub.requests.length = 0;
    const summary = await downloadModel(options());
    const data = summary.files.find((f) => f.name === 'model.onnx.data');
    assert.equal(data?.outcome, 'resumed');
    assert.equal(data?.resumedFrom, kept);
    assert.ok(
      hub.requests.some((r) => r.server === 'cdn' && r.range === `bytes=${kept}-`),
      `no Range: bytes=${kept}- in ${JSON.stringify(hub.requests.map((r) => r.range))}`,
    );
    assert.ok(!existsSync(part));
    await assertVariantOnDisk(out, CPU);
  });

  it('resumes within one run after a dropped connection and after a stall', async () => {
    hub.fault(DATA, { kind: 'cut', bytes: 50_000 });
    hub.fault(DATA, { kind: 'stall', bytes: 20_000 });
    const lines: string[] = [];
    const summary = await downloadModel(options({ retries: 3, stallTimeoutMs: 300, progress: recordingProgress(lines) }));
    assert.equal(summary.files.find((f) => f.name === 'model.onnx.data')?.outcome, 'downloaded');
    const ranges = dataRanges();
    assert.deepEqual(ranges, [undefined, 'bytes=50000-', 'bytes=70000-']);
    assert.ok(lines.some((l) => /resuming at byte 50000/.test(l)));
    assert.ok(lines.some((l) => /no data for/.test(l)));
    await assertVariantOnDisk(out, CPU);
  });

  it('a stale .part that fails the hash after resuming is downloaded again from the start', async () => {
    await writeFile(path.join(out, 'model.onnx.data.part'), bytes(100_000, 999));
    const summary = await downloadModel(options());
    assert.equal(summary.files.find((f) => f.name === 'model.onnx.data')?.outcome, 'downloaded');
    const ranges = dataRanges();
    assert.deepEqual(ranges, ['bytes=100000-', undefined]);
    await assertVariantOnDisk(out, CPU);
  });

  it('restarts a file when the server ignores Range', async () => {
    const data = FILES.find((f) => f.path === DATA)!;
    await writeFile(path.join(out, 'model.onnx.data.part'), data.content.subarray(0, 70_000));
    hub.fault(DATA, { kind: 'ignore-range' });
    const lines: string[] = [];
    const summary = await downloadModel(options({ progress: recordingProgress(lines) }));
    assert.equal(summary.files.find((f) => f.name === 'model.onnx.data')?.outcome, 'downloaded');
    assert.ok(lines.some((l) => /ignored the Range request/.test(l)));
    await assertVariantOnDisk(out, CPU);
  });

  it('sends HF_TOKEN as a Bearer token to the Hub, never to the CDN it redirects to', async () => {
    const gated = await startFakeHub({ repo: DEFAULT_REPO, files: FILES, requireToken: TOKEN });
    try {
      await assert.rejects(downloadModel(options({ endpoint: gated.url })), /HF_TOKEN/);
      gated.requests.length = 0;
      await downloadModel(options({ endpoint: gated.url, token: TOKEN }));
      await assertVariantOnDisk(out, CPU);
      const hubReqs = gated.requests.filter((r) => r.server === 'hub');
      const cdnReqs = gated.requests.filter((r) => r.server === 'cdn');
      assert.ok(hubReqs.length > 0 && cdnReqs.length > 0);
      assert.ok(hubReqs.every((r) => r.authorization === `Bearer ${TOKEN}`));
      assert.ok(cdnReqs.every((r) => r.authorization === undefined));
    } finally {
      await gated.close();
    }
  });

  it('an unreachable endpoint gives the offline message', async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    await assert.rejects(downloadModel(options({ endpoint })), (err: unknown) => {
      assert.ok(err instanceof HubUnreachableError, String(err));
      assert.match(err.message, /^cannot reach the Hugging Face Hub at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED/);
      assert.match(err.message, /are you offline\? Run this on a connected machine and copy the folder to /);
      assert.ok(err.message.includes(out));
      return true;
    });
  });

  it('names the required file a variant folder lacks before downloading anything', async () => {
    const partial = await startFakeHub({
      repo: DEFAULT_REPO,
      files: variantFiles(CPU, 30).filter((f) => !f.path.endsWith('/tokenizer_config.json')),
    });
    try {
      await assert.rejects(downloadModel(options({ endpoint: partial.url })), (err: unknown) => {
        assert.ok(err instanceof MissingModelFilesError);
        assert.deepEqual(err.missing, ['tokenizer_config.json']);
        assert.match(err.message, /has no tokenizer_config\.json/);
        return true;
      });
      assert.ok(!partial.requests.some((r) => r.url.includes('/resolve/')));
    } finally {
      await partial.close();
    }
  });

  it('a missing revision is reported as not found', async () => {
    await assert.rejects(downloadModel(options({ revision: 'no-such-branch' })), /not found on the Hub.*--revision/);
  });
});

/** The Qwen2.5 export keeps its files at the repo's root, with the tokenizer files save_pretrained writes. */
const QWEN_REPO = MODELS['qwen2.5-0.5b'].repo;
const QWEN_FILES: FakeFile[] = [
  ...variantFiles('x', 40).map((f) => ({ ...f, path: f.path.slice('x/'.length) })),
  { path: 'vocab.json', content: Buffer.from('{"!": 0}') },
  { path: '.gitattributes', content: Buffer.from('*.onnx.data filter=lfs diff=lfs merge=lfs -text\n') },
];

describe('a model whose export sits at the repo root (qwen2.5-0.5b)', () => {
  let qwenHub: FakeHub;
  before(async () => {
    qwenHub = await startFakeHub({ repo: QWEN_REPO, files: QWEN_FILES });
  });
  after(async () => qwenHub.close());
  beforeEach(() => {
    qwenHub.requests.length = 0;
  });

  it('downloads the whole root, byte for byte, from its own repo', async () => {
    const summary = await downloadModel(options({ model: 'qwen2.5-0.5b', endpoint: qwenHub.url }));
    assert.equal(summary.repo, QWEN_REPO);
    assert.equal(summary.folder, '');
    assert.deepEqual((await readdir(out)).sort(), QWEN_FILES.map((f) => f.path).sort());
    for (const f of QWEN_FILES) assert.ok((await readFile(path.join(out, f.path))).equals(f.content), f.path);
    assert.equal(qwenHub.requests.filter((r) => r.url.startsWith('/api/')).map((r) => r.url.split('?')[0]).join(), `/api/models/${QWEN_REPO}/tree/main`);
  });

  it('refuses a variant the model does not have', async () => {
    await assert.rejects(downloadModel(options({ model: 'qwen2.5-0.5b', variant: 'gpu-int4', endpoint: qwenHub.url })), /qwen2\.5-0\.5b has no variant "gpu-int4"; it has cpu-int4/);
    assert.equal(qwenHub.requests.length, 0);
  });

  it('the CLI takes --model, defaults to its cpu-int4 variant and tells where it came from', async () => {
    const stdout = new Sink();
    const stderr = new Sink();
    const code = await runCli(['--model', 'qwen2.5-0.5b', '--out', out], { HF_ENDPOINT: qwenHub.url }, {
      stdout,
      stderr: stderr as unknown as NodeJS.WriteStream,
      progress: silentProgress,
    });
    assert.equal(code, 0, stderr.text);
    assert.ok(stderr.text.startsWith(`Downloading ${QWEN_REPO}/ (revision main)`), stderr.text);
    assert.ok(stdout.text.includes(`Downloaded ${QWEN_REPO}/ (revision main`), stdout.text);
    assert.ok(existsSync(path.join(out, 'model.onnx.data')));
  });

  it('the CLI rejects an unknown model, and a variant of another model, with usage', async () => {
    for (const [args, message] of [
      [['--model', 'llama'], /--model: expected one of phi-4-mini, qwen2\.5-0\.5b, got "llama"/],
      [['--model', 'qwen2.5-0.5b', '--variant', 'gpu-int4'], /--variant: expected one of cpu-int4, got "gpu-int4"/],
    ] as const) {
      const stderr = new Sink();
      assert.equal(await runCli(args, {}, { stdout: new Sink(), stderr: stderr as unknown as NodeJS.WriteStream }), 2);
      assert.match(stderr.text, message);
    }
  });
});

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

describe('model:download CLI', () => {
  it('reads HF_ENDPOINT and HF_TOKEN, and prints how to serve the folder', async () => {
    const gated = await startFakeHub({ repo: DEFAULT_REPO, files: FILES, requireToken: TOKEN });
    try {
      const stdout = new Sink();
      const stderr = new Sink() as unknown as NodeJS.WriteStream;
      const code = await runCli(['--variant', 'cpu-int4', '--out', out], { HF_ENDPOINT: gated.url, HF_TOKEN: TOKEN }, {
        stdout,
        stderr,
        progress: silentProgress,
      });
      assert.equal(code, 0, (stderr as unknown as Sink).text);
      assert.match(stdout.text, /MODEL_DIR=\S+ npm start/);
      assert.ok(stdout.text.includes(out));
      await assertVariantOnDisk(out, CPU);
    } finally {
      await gated.close();
    }
  });

  it('rejects an unknown variant with usage', async () => {
    const stderr = new Sink();
    const code = await runCli(['--variant', 'fp16'], {}, { stdout: new Sink(), stderr: stderr as unknown as NodeJS.WriteStream });
    assert.equal(code, 2);
    assert.match(stderr.text, /--variant: expected one of cpu-int4, gpu-int4/);
  });

  it('as a process: exits nonzero with the offline message', async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/download/cli.ts', '--out', out], {
      cwd: root,
      env: { ...process.env, HF_ENDPOINT: endpoint, HF_TOKEN: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 1, stderr);
    assert.match(stderr, /error: cannot reach the Hugging Face Hub at .*are you offline\?/);
  });
});

describe('classifyTransportError', () => {
  const fetchFailed = (cause: unknown) => new TypeError('fetch failed', { cause });
  const sys = (code: string) => Object.assign(new Error(code), { code });

  it('DNS failures, refused and timed-out connects are "unreachable"', () => {
    for (const code of ['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']) {
      assert.equal(classifyTransportError(fetchFailed(sys(code))), 'unreachable', code);
    }
    // Happy eyeballs: one AggregateError over the IPv6 and IPv4 attempts.
    const both = new AggregateError([sys('ECONNREFUSED'), sys('ECONNREFUSED')], 'connect failed');
    assert.equal(classifyTransportError(fetchFailed(both)), 'unreachable');
  });

  it('dropped or stalled transfers are "interrupted"', () => {
    assert.equal(classifyTransportError(new TypeError('terminated', { cause: sys('UND_ERR_SOCKET') })), 'interrupted');
    assert.equal(classifyTransportError(fetchFailed(sys('ECONNRESET'))), 'interrupted');
    assert.equal(classifyTransportError(new StallTimeoutError(1000)), 'interrupted');
    assert.equal(classifyTransportError(new Error('something else')), 'other');
  });
});
