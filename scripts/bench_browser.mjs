// Browser half of `scripts/bench.sh`: the real page in headless Chromium, on the CPU fallback
// and on WebGPU. Prints markdown rows: time from navigation to the first finished face (cold
// cache), per-step ms of a generation, and download sizes (raw and gzip).
// Usage: node scripts/bench_browser.mjs [cpuSteps] [webgpuSteps]
import fs from 'node:fs';
import zlib from 'node:zlib';
import path from 'node:path';
import { repo, startServer, launch, waitRun } from '../tests/browser/harness.mjs';

const cpuSteps = Number(process.argv[2] || 60);
const gpuSteps = Number(process.argv[3] || 3);
const server = await startServer();
const rows = [];
try {
  for (const [webgpu, steps] of [[false, cpuSteps], [true, gpuSteps]]) {
    const browser = await launch(webgpu);
    try {
      const page = await browser.newPage();
      const t0 = Date.now();
      await page.goto(`${server.url}/?attrs=Male,Smiling&seed=3&steps=${steps}&model=linear`);
      await page.waitForFunction(() => /^Ready|could not be loaded/.test(document.getElementById('status').textContent), null, { timeout: 600_000 });
      const ready = (Date.now() - t0) / 1000;
      const status = await page.textContent('#status');
      await page.click('#generate');
      const done = await waitRun(page, 1_800_000);
      const total = (Date.now() - t0) / 1000;
      const ms = Number((done.match(/\((\d+) ms per step\)/) || [])[1]);
      rows.push(`| ${webgpu ? 'WebGPU (SwiftShader)' : 'CPU fallback (flex, wasm)'} | ${status.replace(/^Ready: running on /, '').replace(/\.$/, '')} | ${steps} | ${ms} | ${ready.toFixed(1)} | ${total.toFixed(1)} |`);
    } finally {
      await browser.close();
    }
  }
} finally {
  server.stop();
}
console.log('| page | backend | steps | ms/step | load to ready, s | load to first face, s |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
console.log('');
console.log('| file | MB | MB sent (gzip -6 for code) |');
console.log('|---|---|---|');
let sum = 0, sumGz = 0;
// What the page downloads on a first visit; scripts/serve.py gzips code, not model files.
for (const f of ['pkg/deepface_bg.wasm', 'pkg/deepface.js', 'www/worker.js', 'www/app.js', 'www/style.css', 'index.html', 'pkg/vgg16_conv5_1.safetensors', 'model/default.bundle']) {
  const b = fs.readFileSync(path.join(repo, f));
  const gz = /\.(wasm|js|css|html)$/.test(f) ? zlib.gzipSync(b, { level: 6 }).length : b.length;
  sum += b.length; sumGz += gz;
  console.log(`| ${f} | ${(b.length / 1e6).toFixed(1)} | ${(gz / 1e6).toFixed(1)} |`);
}
console.log(`| total first visit | ${(sum / 1e6).toFixed(1)} | ${(sumGz / 1e6).toFixed(1)} |`);
