// The hive's OpenAI routes against the official `openai` SDK (pinned in package.json): a real
// rbee-hive in local mode that starts llm-worker-rbee on the bundled model for the first
// request. Run: node --test tests/node/hive.test.mjs (ctest sets RBEE_BIN_DIR, RBEE_SOURCE_DIR).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));
const src = process.env.RBEE_SOURCE_DIR || path.resolve(here, '../..');
const bin = process.env.RBEE_BIN_DIR || path.join(src, 'build');
const model = path.join(src, 'models/kjv-5m-q8_0.gguf');
const T = { timeout: 60000 };

let hive;
let client;

// Starts rbee-hive on port 0 with a fresh RBEE_HOME; resolves once it listens.
async function startHive() {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'rbee-node-hive-'));
  const proc = spawn(path.join(bin, 'rbee-hive'),
    ['daemon', '--local-mode', '--addr', '127.0.0.1:0', '--monitor-interval', '1',
      '--worker-threads', '1'],
    { env: { ...process.env, RBEE_HOME: home, RBEE_BUNDLED_MODEL: model, RBEE_API_TOKEN: '' },
      stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hive did not start: ${log}`)), 10000);
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on port (\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on('exit', (c) => { clearTimeout(timer); reject(new Error(`hive exited ${c}: ${log}`)); });
  });
  return { proc, home, base: `http://127.0.0.1:${port}`, log: () => log };
}

// SIGTERM (the hive stops its workers), then the exit code.
function stopHive(h) {
  return new Promise((resolve) => {
    if (!h || h.proc.exitCode !== null) return resolve(h ? h.proc.exitCode : 0);
    const timer = setTimeout(() => h.proc.kill('SIGKILL'), 35000);
    h.proc.on('exit', (code) => { clearTimeout(timer); resolve(code); });
    h.proc.kill('SIGTERM');
  });
}

async function metric(name) {
  const text = await (await fetch(`${hive.base}/metrics`, { signal: AbortSignal.timeout(2000) }))
    .text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.slice(name.length + 1)) : NaN;
}

async function workers() {
  const r = await fetch(`${hive.base}/v1/workers/list`, { signal: AbortSignal.timeout(2000) });
  return (await r.json()).workers;
}

before(async () => {
  hive = await startHive();
  client = new OpenAI({ baseURL: `${hive.base}/v1`, apiKey: 'unused-in-local-mode',
    timeout: 30000, maxRetries: 0 });
});
after(async () => {
  const code = await stopHive(hive);
  fs.rmSync(hive.home, { recursive: true, force: true });
  assert.equal(code, 0, `hive exit; log: ${hive.log()}`);
});

test('models.list names the bundled model', T, async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes('kjv'), `models: ${ids}`);
});

test('a cold chat completion starts a worker, a warm one reuses it', T, async () => {
  assert.equal((await workers()).length, 0);
  const msg = [{ role: 'user', content: 'In the beginning' }];
  const a = await client.chat.completions.create({ model: 'kjv', messages: msg, max_tokens: 8,
    temperature: 0 });
  assert.equal(a.object, 'chat.completion');
  assert.ok(a.choices[0].message.content.length > 0);
  const ws = await workers();
  assert.equal(ws.length, 1);
  const b = await client.chat.completions.create({ model: 'kjv', messages: msg, max_tokens: 8,
    temperature: 0 });
  assert.equal(b.choices[0].message.content, a.choices[0].message.content);
  assert.deepEqual((await workers()).map((w) => w.id), ws.map((w) => w.id));
});

test('a streamed chat arrives as chunks through the hive', T, async () => {
  const stream = await client.chat.completions.create({ model: 'kjv', stream: true,
    messages: [{ role: 'user', content: 'And God said' }], max_tokens: 24, temperature: 0 });
  let text = '';
  let chunks = 0;
  for await (const c of stream) {
    assert.equal(c.object, 'chat.completion.chunk');
    text += c.choices[0]?.delta?.content ?? '';
    chunks++;
  }
  assert.ok(chunks >= 10, `chunks: ${chunks}`);
  assert.ok(text.length > 0);
});

test('a streamed completion through the hive', T, async () => {
  const stream = await client.completions.create({ model: 'kjv', prompt: 'In the beginning',
    max_tokens: 12, stream: true, temperature: 0 });
  let text = '';
  for await (const c of stream) text += c.choices[0]?.text ?? '';
  assert.ok(text.length > 0);
});

test('an unknown model is NotFoundError with code model_not_found', T, async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'gpt-4',
      messages: [{ role: 'user', content: 'hi' }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found' &&
      e.param === 'model');
});

test('aborting a stream cancels the generation on the worker', T, async () => {
  const [w] = await workers();
  const cancelled = async () => {
    const text = await (await fetch(`${w.url}/metrics`, { signal: AbortSignal.timeout(2000) }))
      .text();
    const line = text.split('\n').find((l) =>
      l.startsWith('rbee_worker_requests_total{') && l.includes('outcome="cancelled"'));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  const before = await cancelled();
  const ac = new AbortController();
  const stream = await client.completions.create({ model: 'kjv', prompt: 'And it came to pass',
    max_tokens: 400, stream: true, temperature: 0 }, { signal: ac.signal });
  let n = 0;
  try {
    for await (const c of stream) { void c; if (++n === 3) ac.abort(); }
  } catch { /* the SDK reports the abort */ }
  assert.ok(n >= 3 && n < 400, `chunks: ${n}`);
  const deadline = Date.now() + 5000;
  while ((await metric('rbee_hive_openai_requests_active')) !== 0 ||
    (await cancelled()) <= before) {
    assert.ok(Date.now() < deadline, 'the worker never saw the disconnect');
    await new Promise((r) => setTimeout(r, 50));
  }
});
