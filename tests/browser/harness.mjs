// Shared set-up of the browser tests: the app's own server and Debian's Chromium, with
// WebGPU (SwiftShader, a CPU Vulkan) or without it.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

async function freePort() {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  return port;
}

export async function startServer() {
  const port = await freePort();
  const proc = spawn('python3', ['scripts/serve.py', String(port), '-q'], { cwd: repo, stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((r) => { const s = net.connect(port, '127.0.0.1', () => { s.end(); r(true); }); s.on('error', () => r(false)); });
    if (ok) return { url: `http://127.0.0.1:${port}`, stop: () => proc.kill() };
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill();
  throw new Error('the app server did not start');
}

export async function launch(webgpu) {
  const args = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'];
  if (webgpu) args.push('--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-angle=swiftshader', '--use-webgpu-adapter=swiftshader');
  else args.push('--disable-webgpu', '--disable-features=WebGPU');
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args });
}

// Runs fn(browser, webgpu) in a fresh Chromium without WebGPU, then in one with WebGPU
// (SwiftShader), closing each afterwards (the benchmarks' loop over backends).
export async function eachBackend(fn) {
  for (const webgpu of [false, true]) {
    const browser = await launch(webgpu);
    try {
      await fn(browser, webgpu);
    } finally {
      await browser.close();
    }
  }
}

// Opens the page and waits until the model is loaded; returns the page.
export async function openApp(browser, url, query = '') {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  // Every request the page and its worker make, for the privacy test.
  page.requests = [];
  page.context().on('request', (r) => page.requests.push({ url: r.url(), method: r.method(), body: r.postDataBuffer() }));
  page.on('console', (m) => { if (process.env.DEBUG) console.log('[page]', m.text()); });
  await page.goto(`${url}/${query}`);
  await page.waitForFunction(() => /^Ready|could not be loaded/.test(document.getElementById('status').textContent), null, { timeout: 300_000 });
  return page;
}

// Waits for the current run to finish (the progress text says Done, Cancelled, or a message shows).
// `polling` is Playwright's: every animation frame by default; the benchmarks look once a
// second, since frames drawn for the check took a fifth of a page edit's time on 2 cores.
export async function waitRun(page, timeout = 900_000, polling = 'raf') {
  await page.waitForFunction(() => {
    const t = document.getElementById('progress-text').textContent;
    return /^Done|^Cancelled/.test(t) || !document.getElementById('message').hidden;
  }, null, { timeout, polling });
  return page.evaluate(() => document.getElementById('progress-text').textContent);
}

// Pixels of a canvas as an array of RGBA bytes.
export async function canvasPixels(page, id = 'canvas') {
  return page.evaluate((id) => {
    const c = document.getElementById(id);
    return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
  }, id);
}

// Root-mean-square difference of two equally long pixel arrays, in 0..255 units.
export const rmsOf = (a, b) => Math.sqrt(a.reduce((acc, v, i) => acc + (v - b[i]) ** 2, 0) / a.length);

export function stdOf(px) {
  const v = px.filter((_, i) => i % 4 !== 3);
  const m = v.reduce((a, b) => a + b, 0) / v.length;
  return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length);
}

// The classifier table as {attribute: [before, now]} percentages (NaN where empty).
export async function scores(page) {
  return page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#scores tbody tr')].map((tr) => {
    const cells = [...tr.querySelectorAll('td')].map((td) => parseFloat(td.textContent));
    return [tr.querySelector('th').textContent.replace(/ /g, '_'), cells];
  })));
}

// The independent judges of scripts/scoreboard.py (dlib's networks and FER in onnxruntime,
// which no generation or edit of deepface backpropagates through) on an edit: the original
// photo's file and the edited photo's PNG bytes. Returns {before, after, samePerson} with each
// side's scores ({fer: {p_happy}, 'dlib-gender': {p_male}, 'dlib-age': {age_years}, ...}).
export function judgeEdit(originalPath, editedPng, wants) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deepface-judge-'));
  try {
    fs.copyFileSync(originalPath, path.join(dir, 'original.png'));
    fs.writeFileSync(path.join(dir, 'edited.png'), editedPng);
    const manifest = { kind: 'edited', optimised_against: ['deepface-vgg16'], items: [{ file: 'edited.png', original: 'original.png', wants }] };
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
    // The scoreboard's pinned venv (made once, about a minute; scripts/test.sh makes it first).
    const py = execFileSync('bash', [path.join(repo, 'scripts/scoreboard_env.sh')], { encoding: 'utf8' }).trim().split('\n').pop();
    execFileSync(py, [path.join(repo, 'scripts/scoreboard.py'), 'score', path.join(dir, 'manifest.json'), '--out', path.join(dir, 'scores.json')], { stdio: ['ignore', 'ignore', 'inherit'] });
    const item = JSON.parse(fs.readFileSync(path.join(dir, 'scores.json'), 'utf8')).items[0];
    return { before: item.original_scores, after: item.scores, samePerson: item.edit.same_person, identityDistance: item.edit.identity_distance };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
