/**
 * npm start on a terminal (src/server/terminal.ts): when logs turn pretty, the banner, the URLs it
 * shows, and the engine's load progress (the first int8 weights write reports per projection from
 * the worker, republished on a diagnostics channel of the main thread).
 */
import assert from 'node:assert/strict';
import { copyFileSync, linkSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.ts';
import { loadProgressChannel, type LoadProgress } from '../../src/engine/load-progress.ts';
import { browsableUrl, progressBar, startupBanner, wantsPrettyLogs } from '../../src/server/terminal.ts';
import { FIXTURES } from '../setup/model-paths.ts';

describe('terminal friendliness', () => {
  it('pretty logs: when asked, or by default on a terminal with pino-pretty installed; never when LOG_PRETTY=0', () => {
    const yes = () => true;
    const no = () => false;
    assert.equal(wantsPrettyLogs({ logPretty: false, logPrettyDefaulted: true }, true, yes), true);
    assert.equal(wantsPrettyLogs({ logPretty: false, logPrettyDefaulted: true }, false, yes), false, 'not a terminal: JSON');
    assert.equal(wantsPrettyLogs({ logPretty: false, logPrettyDefaulted: true }, true, no), false, 'pino-pretty missing: JSON, silently');
    assert.equal(wantsPrettyLogs({ logPretty: false, logPrettyDefaulted: false }, true, yes), false, 'LOG_PRETTY=0 on a terminal: JSON');
    assert.equal(wantsPrettyLogs({ logPretty: true, logPrettyDefaulted: false }, false, yes), true, '--log-pretty anywhere');
  });

  it('the banner lists the playground, the docs and the API at a URL a browser can open', () => {
    assert.equal(browsableUrl('0.0.0.0', 8080), 'http://localhost:8080');
    assert.equal(browsableUrl('::', 8080), 'http://localhost:8080');
    assert.equal(browsableUrl('::1', 9000), 'http://[::1]:9000');
    assert.equal(browsableUrl('127.0.0.1', 1234), 'http://127.0.0.1:1234');
    const banner = startupBanner({ url: 'http://127.0.0.1:8080', ui: true, color: false, loading: true });
    for (const line of [/Playground\s+http:\/\/127\.0\.0\.1:8080\/$/m, /API docs\s+http:\/\/127\.0\.0\.1:8080\/docs$/m, /OpenAI API\s+http:\/\/127\.0\.0\.1:8080\/v1$/m, /loading/]) {
      assert.match(banner, line);
    }
    assert.ok(!banner.includes('\x1b'), 'no colour codes when colour is off');
    const noUi = startupBanner({ url: 'http://h:1', ui: false, color: true });
    assert.ok(!noUi.includes('Playground'), '--no-ui: no playground line');
    assert.ok(noUi.includes('\x1b[36mhttp://h:1/v1'), 'URLs coloured on a terminal');
  });

  it('a progress bar shows the percentage and the ETA', () => {
    const out: string[] = [];
    const stream = Object.assign(
      new Writable({
        write(chunk: Buffer, _e, cb) {
          out.push(chunk.toString());
          cb();
        },
      }),
      { isTTY: true, columns: 120, cursorTo: () => true, clearLine: () => true, moveCursor: () => true },
    ) as unknown as NodeJS.WriteStream;
    const bar = progressBar('writing', 'bytes', stream);
    bar.update(0, 64 * 1024 * 1024);
    bar.update(32 * 1024 * 1024, 64 * 1024 * 1024);
    bar.update(64 * 1024 * 1024, 64 * 1024 * 1024);
    bar.stop();
    const text = out.join('');
    assert.match(text, /writing \[.*\] 100% \| 64\/64 MB \| ETA 0s/);
  });

  it('the first int8 weights write reports its progress from the engine worker', async () => {
    // The tiny model's files hard-linked into a fresh folder beside it (onnxruntime refuses external
    // data behind a symlink), so the int8 graph is derived and written afresh.
    const dir = mkdtempSync(join(dirname(FIXTURES.tiny), '.tmp-int8-progress-'));
    for (const f of readdirSync(FIXTURES.tiny)) {
      if (f.includes('int8')) continue;
      try {
        linkSync(join(FIXTURES.tiny, f), join(dir, f));
      } catch {
        copyFileSync(join(FIXTURES.tiny, f), join(dir, f));
      }
    }
    const seen: LoadProgress[] = [];
    // Only the write's reports: the clock-driven load bar (load-estimate.ts) may tick too.
    const listener = (m: unknown): void => void (/int8 weights/.test((m as LoadProgress).task) && seen.push(m as LoadProgress));
    loadProgressChannel.subscribe(listener);
    let engine: Engine | undefined;
    try {
      engine = await Engine.load({ modelDir: dir, threads: 2, int8Steps: 'on', int8MinRows: 4 });
      assert.equal(engine.session?.int8.enabled, true);
    } finally {
      loadProgressChannel.unsubscribe(listener);
      await engine?.close();
      rmSync(dir, { recursive: true, force: true });
    }
    assert.ok(seen.length >= 4, `one report per projection (${seen.length})`);
    assert.ok(seen.every((p) => p.task === seen[0].task && p.unit === 'bytes' && p.total === seen[0].total));
    assert.ok(seen.every((p, i) => i === 0 || p.done > seen[i - 1].done), 'monotonic');
    assert.equal(seen.at(-1)?.done, seen[0].total, 'ends at 100%');
    assert.match(seen[0].task, /int8 weights/);
  });
});
