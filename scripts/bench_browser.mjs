// Browser half of `scripts/bench.sh`: the real page in headless Chromium, on the CPU fallback
// (threaded build, and one thread for comparison) and on WebGPU. Prints markdown rows: time
// from navigation to the first finished face (cold cache), per-step ms of a generation, the
// edit of a 1024 px photo with the page's defaults (CPU only), and download sizes (raw and
// gzip) of a first visit on each path.
// Usage: node scripts/bench_browser.mjs [cpuSteps] [webgpuSteps]; without cpuSteps (or with
// "default") the CPU page runs the model's default step count.
import fs from 'node:fs';
import zlib from 'node:zlib';
import path from 'node:path';
import { repo, startServer, eachBackend, waitRun } from '../tests/browser/harness.mjs';

const cpuSteps = /^\d+$/.test(process.argv[2] || '') ? Number(process.argv[2]) : null;
const gpuSteps = Number(process.argv[3] || 3);
const server = await startServer();
const rows = [];
const edits = [];
// The photo of an edit: a committed real face scaled to 1024 px by the browser (the size the
// real-photo edit target names; the edit's time hardly depends on what the photo shows).
const PHOTO = fs.readFileSync(path.join(repo, 'data/real_faces/astronaut_collins.png')).toString('base64');
const EDIT_SIDE = 1024;
try {
  await eachBackend(async (browser, webgpu) => {
    const steps = webgpu ? gpuSteps : cpuSteps;
    for (const threads of webgpu ? [true] : [true, false]) {
      const page = await browser.newPage();
      const t0 = Date.now();
      await page.goto(`${server.url}/?attrs=Male,Smiling&seed=3${steps ? `&steps=${steps}` : ''}&model=linear${threads ? '' : '&threads=0'}${webgpu ? '&backend=webgpu' : ''}`);
      await page.waitForFunction(() => /^Ready|could not be loaded/.test(document.getElementById('status').textContent), null, { timeout: 600_000 });
      const ready = (Date.now() - t0) / 1000;
      const status = await page.textContent('#status');
      const ran = await page.inputValue('#steps');
      await page.click('#generate');
      const done = await waitRun(page, 1_800_000, 1000);
      const total = (Date.now() - t0) / 1000;
      const ms = Number((done.match(/\((\d+) ms per step\)/) || [])[1]);
      const backend = status.replace(/^Ready: running on /, '').replace(/\.$/, '');
      rows.push(`| ${webgpu ? 'WebGPU (SwiftShader)' : 'CPU fallback (flex, wasm)'} | ${backend} | ${ran} | ${ms} | ${ready.toFixed(1)} | ${total.toFixed(1)} |`);
      if (!webgpu) {
        // Edit the photo toward Smiling with the page's default steps and strength; the page
        // times it from the click to the finished photo on the canvas.
        const big = await page.evaluate(async ({ src, side }) => {
          const bytes = Uint8Array.from(atob(src), (c) => c.charCodeAt(0));
          const c = new OffscreenCanvas(side, side);
          c.getContext('2d').drawImage(await createImageBitmap(new Blob([bytes], { type: 'image/png' })), 0, 0, side, side);
          return Array.from(new Uint8Array(await (await c.convertToBlob({ type: 'image/png' })).arrayBuffer()));
        }, { src: PHOTO, side: EDIT_SIDE });
        await page.click('#tab-edit');
        await page.setInputFiles('#file', { name: 'photo.png', mimeType: 'image/png', buffer: Buffer.from(big) });
        await page.waitForFunction(() => /Photo .* loaded/.test(document.getElementById('progress-text').textContent) && !document.getElementById('edit').disabled, null, { timeout: 300_000, polling: 1000 });
        await page.selectOption('[aria-labelledby="attr-Male"]', 'any');
        const [editSteps, strength] = [await page.inputValue('#edit-steps'), await page.inputValue('#edit-strength')];
        await page.click('#edit');
        const edited = await waitRun(page, 1_800_000, 1000);
        const [, s, per] = edited.match(/^Done in ([\d.]+) s \((\d+) ms per step\)/) || [];
        edits.push(`| ${backend} | ${EDIT_SIDE} x ${EDIT_SIDE} | Smiling | ${editSteps} | ${strength} | ${per ?? edited} | ${s ?? '—'} |`);
      }
      await page.close();
    }
  });
} finally {
  server.stop();
}
console.log('| page | backend | steps | ms/step | load to ready, s | load to first face, s |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
console.log('');
console.log('| page (CPU fallback) | photo | request | steps | strength | ms/step | click to edited photo, s |');
console.log('|---|---|---|---|---|---|---|');
for (const r of edits) console.log(r);
console.log('');
console.log('| file | MB | MB sent (gzip -6 for code) |');
console.log('|---|---|---|');
// What the page downloads on a first visit; scripts/serve.py gzips code, not model files. The
// worker loads one build: pkg/ for WebGPU (and the one-thread CPU), pkg/threads/ for the CPU.
const size = (f) => {
  const b = fs.readFileSync(path.join(repo, f));
  return [b.length, /\.(wasm|js|css|html)$/.test(f) ? zlib.gzipSync(b, { level: 6 }).length : b.length];
};
const common = ['www/worker.js', 'www/wasm.js', 'www/app.js', 'www/style.css', 'index.html', 'pkg/vgg16_conv5_1.safetensors', 'model/default.bundle'];
const paths = { WebGPU: ['pkg/deepface_bg.wasm', 'pkg/deepface.js'], 'CPU, threaded': ['pkg/threads/deepface_bg.wasm', 'pkg/threads/deepface.js'] };
for (const f of [...paths.WebGPU, ...paths['CPU, threaded'], ...common]) {
  const [raw, gz] = size(f);
  console.log(`| ${f} | ${(raw / 1e6).toFixed(1)} | ${(gz / 1e6).toFixed(1)} |`);
}
for (const [name, files] of Object.entries(paths)) {
  const [raw, gz] = [...files, ...common].map(size).reduce(([a, b], [c, d]) => [a + c, b + d], [0, 0]);
  console.log(`| total first visit, ${name} | ${(raw / 1e6).toFixed(1)} | ${(gz / 1e6).toFixed(1)} |`);
}
