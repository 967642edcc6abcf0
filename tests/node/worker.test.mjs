// The worker's OpenAI routes against the official `openai` SDK (pinned in package.json):
// a real llm-worker-rbee on the bundled model, started here with a deadline.
// Run: node --test tests/node/worker.test.mjs (ctest sets RBEE_BIN_DIR and RBEE_SOURCE_DIR).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));
const src = process.env.RBEE_SOURCE_DIR || path.resolve(here, '../..');
const bin = process.env.RBEE_BIN_DIR || path.join(src, 'build');
const model = path.join(src, 'models/kjv-5m-q8_0.gguf');
const T = { timeout: 30000 };

// Starts a worker on port 0 and resolves with its base URL once /v1/ready says ready.
async function startWorker(extraArgs = [], env = {}) {
  const args = ['--model', model, '--model-ref', 'kjv-5m', '--port', '0', '--threads', '1',
    ...extraArgs];
  const proc = spawn(path.join(bin, 'llm-worker-rbee'), args,
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start: ${log}`)), 10000);
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on port (\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on('exit', (c) => { clearTimeout(timer); reject(new Error(`worker exited ${c}: ${log}`)); });
  });
  const base = `http://127.0.0.1:${port}`;
  const headers = env.RBEE_API_TOKEN ? { Authorization: `Bearer ${env.RBEE_API_TOKEN}` } : {};
  const deadline = Date.now() + 15000;
  for (;;) {
    try {
      const r = await fetch(`${base}/v1/ready`, { headers, signal: AbortSignal.timeout(2000) });
      if ((await r.json()).ready) break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`worker not ready: ${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, base, log: () => log };
}

// SIGTERM, then the exit code (a sanitizer build exits non-zero on a leak or an error).
function stopWorker(w) {
  return new Promise((resolve) => {
    if (!w || w.proc.exitCode !== null) return resolve(w ? w.proc.exitCode : 0);
    const timer = setTimeout(() => w.proc.kill('SIGKILL'), 5000);
    w.proc.on('exit', (code) => { clearTimeout(timer); resolve(code); });
    w.proc.kill('SIGTERM');
  });
}

async function metric(base, name) {
  const text = await (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.slice(name.length + 1)) : NaN;
}

// Prompt tokens as `rbee-gguf tokenize` counts them (with BOS; special tokens parsed for chat).
function tokenCount(text, special = false) {
  const out = execFileSync(path.join(bin, 'rbee-gguf'),
    ['tokenize', model, '--bos', ...(special ? ['--special'] : [])], { input: text, timeout: 10000 });
  return out.toString().trim().split(/\s+/).length;
}

let w;
let client;
before(async () => {
  w = await startWorker(['--local-mode']);
  client = new OpenAI({ baseURL: `${w.base}/v1`, apiKey: 'unused-in-local-mode', timeout: 20000,
    maxRetries: 0 });
});
after(async () => { assert.equal(await stopWorker(w), 0, `worker exit; log: ${w.log()}`); });

const PROMPT = 'In the beginning';

test('GET /v1/models lists the one model', T, async () => {
  const page = await client.models.list();
  assert.equal(page.data.length, 1);
  assert.equal(page.data[0].id, 'kjv-5m');
  assert.equal(page.data[0].object, 'model');
  assert.equal(page.data[0].owned_by, 'rbee');
  assert.equal(typeof page.data[0].created, 'number');
});

test('completions, not streamed: text, finish_reason length, usage', T, async () => {
  const r = await client.completions.create({ model: 'kjv-5m', prompt: PROMPT, max_tokens: 8,
    temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.match(r.id, /^cmpl-/);
  assert.equal(r.model, 'kjv-5m');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.ok(r.choices[0].text.length > 0);
  assert.equal(r.usage.completion_tokens, 8);
  assert.equal(r.usage.prompt_tokens, tokenCount(PROMPT));
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 8);
});

test('completions, streamed: the same text in text_completion chunks, usage last', T, async () => {
  const whole = await client.completions.create({ prompt: PROMPT, max_tokens: 12, temperature: 0,
    model: 'x' });
  const stream = await client.completions.create({ prompt: PROMPT, max_tokens: 12, temperature: 0,
    model: 'x', stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const c of stream) {
    assert.equal(c.object, 'text_completion');
    if (c.usage) { usage = c.usage; assert.equal(c.choices.length, 0); continue; }
    if (c.choices[0].text) chunks++;
    text += c.choices[0].text;
    if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
  }
  assert.equal(text, whole.choices[0].text);
  assert.equal(finish, 'length');
  // One chunk per token here: the greedy text is ASCII, so no token's bytes are held back.
  assert.equal(chunks, usage.completion_tokens);
  for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens'])
    assert.equal(usage[k], whole.usage[k]);
  // The same prompt again: the slot's cache held all of it but the last token (run again for
  // its logits).
  assert.equal(usage.prompt_tokens_details.cached_tokens, usage.prompt_tokens - 1);
});

test('chat, not streamed: one chat.completion with usage', T, async () => {
  const messages = [{ role: 'user', content: 'Who made the heaven?' }];
  const r = await client.chat.completions.create({ model: 'kjv-5m', messages, max_tokens: 10,
    temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  // The bundled model has no template: ChatML, tokenized with special tokens parsed.
  const chatml = '<|im_start|>user\nWho made the heaven?<|im_end|>\n<|im_start|>assistant\n';
  assert.equal(r.usage.prompt_tokens, tokenCount(chatml, true));
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 10);
});

test('chat, streamed: role first, content pieces, finish chunk, usage', T, async () => {
  const messages = [{ role: 'system', content: 'Answer in the words of the KJV.' },
    { role: 'user', content: [{ type: 'text', text: 'In the beginning' }] }];
  const whole = await client.chat.completions.create({ model: 'kjv-5m', messages, max_tokens: 16,
    temperature: 0, logprobs: true });
  const stream = await client.chat.completions.create({ model: 'kjv-5m', messages,
    max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true } });
  const deltas = [];
  let usage = null;
  let finish = null;
  for await (const c of stream) {
    assert.equal(c.object, 'chat.completion.chunk');
    assert.match(c.id, /^chatcmpl-/);
    if (c.usage) { usage = c.usage; assert.equal(c.choices.length, 0); continue; }
    deltas.push(c.choices[0].delta);
    if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
  }
  assert.deepEqual(deltas[0], { role: 'assistant', content: '' });
  assert.deepEqual(deltas[deltas.length - 1], {});
  const text = deltas.slice(1).map((d) => d.content ?? '').join('');
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens'])
    assert.equal(usage[k], whole.usage[k]);
  assert.equal(usage.prompt_tokens_details.cached_tokens, usage.prompt_tokens - 1);
  // One logprob entry per completion token.
  assert.equal(whole.choices[0].logprobs.content.length, whole.usage.completion_tokens);
});

test('stop strings end the text before them with finish_reason stop', T, async () => {
  const free = await client.completions.create({ prompt: PROMPT, max_tokens: 16, temperature: 0,
    model: 'x' });
  const text = free.choices[0].text;
  // Stop at the second word of the greedy text.
  const words = text.split(' ').filter(Boolean);
  assert.ok(words.length >= 3, text);
  const stop = ` ${words[2]}`;
  const cut = text.slice(0, text.indexOf(stop));
  const r = await client.completions.create({ prompt: PROMPT, max_tokens: 16, temperature: 0,
    model: 'x', stop: [stop, '@@never@@'] });
  assert.equal(r.choices[0].text, cut);
  assert.equal(r.choices[0].finish_reason, 'stop');
  const s = await client.completions.create({ prompt: PROMPT, max_tokens: 16, temperature: 0,
    model: 'x', stop, stream: true });
  let streamed = '';
  for await (const c of s) streamed += c.choices[0].text;
  assert.equal(streamed, cut);
});

test('the same seed at temperature 1 gives the same text; other seeds differ', T, async () => {
  const run = async (seed) => (await client.completions.create({ prompt: PROMPT, max_tokens: 32,
    temperature: 1, seed, model: 'x' })).choices[0].text;
  const a = await run(42);
  const b = await run(42);
  assert.equal(a, b);
  const others = [await run(43), await run(44), await run(45)];
  assert.ok(others.some((t) => t !== a), 'three other seeds all gave the same text');
});

test('logprobs have OpenAI shapes on both routes', T, async () => {
  const c = await client.completions.create({ prompt: PROMPT, max_tokens: 4, temperature: 0,
    logprobs: 3, model: 'x' });
  const lp = c.choices[0].logprobs;
  assert.equal(lp.tokens.length, 4);
  assert.equal(lp.token_logprobs.length, 4);
  assert.equal(lp.top_logprobs.length, 4);
  assert.equal(lp.text_offset.length, 4);
  assert.equal(lp.tokens.join(''), c.choices[0].text);
  assert.equal(lp.text_offset[0], 0);
  for (let i = 0; i < 4; i++) {
    assert.ok(lp.token_logprobs[i] <= 0);
    const top = Object.entries(lp.top_logprobs[i]);
    assert.ok(top.length >= 1 && top.length <= 3);
    // Greedy: the chosen token is the most likely one.
    assert.equal(Math.max(...top.map(([, v]) => v)), lp.token_logprobs[i]);
  }
  const r = await client.chat.completions.create({ model: 'x', max_tokens: 3, temperature: 0,
    messages: [{ role: 'user', content: 'In the beginning' }], logprobs: true, top_logprobs: 2 });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  for (const e of content) {
    assert.equal(typeof e.token, 'string');
    assert.ok(e.logprob <= 0);
    assert.ok(Array.isArray(e.bytes) && e.bytes.length > 0);
    assert.equal(Buffer.from(e.bytes).toString('utf8'), e.token);
    assert.equal(e.top_logprobs.length, 2);
    assert.equal(e.top_logprobs[0].logprob, e.logprob);
    assert.ok(e.top_logprobs[1].logprob <= e.top_logprobs[0].logprob);
  }
});

test('unsupported parameters raise BadRequestError naming them', T, async () => {
  const cases = [
    [{ tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] }, 'tools'],
    [{ n: 2 }, 'n'],
    [{ response_format: { type: 'json_object' } }, 'response_format'],
    [{ logit_bias: { 1: 5 } }, 'logit_bias'],
    [{ temperature: 3 }, 'temperature'],
  ];
  for (const [extra, param] of cases) {
    await assert.rejects(client.chat.completions.create({ model: 'x', max_tokens: 2,
      messages: [{ role: 'user', content: 'hi' }], ...extra }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `${param}: ${e}`);
      assert.equal(e.status, 400);
      assert.equal(e.param, param);
      assert.equal(e.type, 'invalid_request_error');
      return true;
    });
  }
  await assert.rejects(client.completions.create({ model: 'x', prompt: ['a', 'b'] }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.param, 'prompt');
    return true;
  });
});

test('aborting a stream cancels the generation on the worker', T, async () => {
  const before = await metric(w.base, 'rbee_worker_requests_total{outcome="cancelled"}');
  const ac = new AbortController();
  const stream = await client.chat.completions.create({ model: 'x', temperature: 0,
    messages: [{ role: 'user', content: 'In the beginning' }], stream: true },
  { signal: ac.signal });
  let n = 0;
  // The SDK ends the iteration quietly once its request is aborted (chunks it had already
  // read may still come out).
  for await (const c of stream) {
    if (c.choices[0]?.delta?.content && ++n === 3) ac.abort();
  }
  assert.ok(n >= 3);
  const deadline = Date.now() + 5000;
  let now = before;
  while (Date.now() < deadline) {
    now = await metric(w.base, 'rbee_worker_requests_total{outcome="cancelled"}');
    if (now === before + 1) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(now, before + 1, `cancelled counter ${before} -> ${now}; log: ${w.log()}`);
  assert.match(w.log(), /job chatcmpl-\S+ cancelled after \d+ tokens .*client disconnected/);
});

test('network mode: the API key is the bearer token', T, async () => {
  const token = 'test-token-0123456789';
  const nw = await startWorker(['--advertise-host', '127.0.0.1'], { RBEE_API_TOKEN: token });
  try {
    const ok = new OpenAI({ baseURL: `${nw.base}/v1`, apiKey: token, timeout: 20000,
      maxRetries: 0 });
    const r = await ok.completions.create({ model: 'x', prompt: PROMPT, max_tokens: 2 });
    assert.equal(r.usage.completion_tokens, 2);
    const wrong = new OpenAI({ baseURL: `${nw.base}/v1`, apiKey: 'wrong', timeout: 20000,
      maxRetries: 0 });
    await assert.rejects(wrong.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
  } finally {
    assert.equal(await stopWorker(nw), 0, `worker exit; log: ${nw.log()}`);
  }
});
