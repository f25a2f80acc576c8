/**
 * Run inside a network namespace with nothing but loopback (test/ops/offline.test.ts starts it
 * under `unshare -n`): starts the real server, asks it for a chat completion, shuts it down with
 * SIGTERM, and prints one JSON report on stdout.
 */
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { startChildServer } from '../helpers/child.ts';

function outbound(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, timeout: 3000 });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('timeout', () => {
      s.destroy();
      resolve('timeout');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

const report: Record<string, unknown> = { interfaces: Object.keys(networkInterfaces()) };
// The namespace really has no way out.
report.outbound = await outbound('1.1.1.1', 443);
const env: Record<string, string> = { HTTP_PROXY: '', HTTPS_PROXY: '', http_proxy: '', https_proxy: '' };
const child = await startChildServer(['--model-name', 'tiny', '--context-length', '2048'], { env });
try {
  const res = await fetch(`${child.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'Are you offline?' }], max_tokens: 5 }),
  });
  report.status = res.status;
  const body = (await res.json()) as { usage?: unknown; choices?: { message?: { content?: unknown } }[] };
  report.usage = body.usage;
  report.contentType = typeof body.choices?.[0]?.message?.content;
  report.ready = (await fetch(`${child.url}/ready`)).status;
  child.proc.kill('SIGTERM');
  report.exitCode = await child.exited;
  report.errors = child.lines.filter((l) => l.level >= 50).map((l) => l.msg);
} finally {
  child.kill();
}
process.stdout.write(`${JSON.stringify(report)}\n`);
