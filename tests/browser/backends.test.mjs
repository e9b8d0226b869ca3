// The WebGPU backend runs the network through deepface's own convolution kernel (src/backbone/gpu_conv.rs),
// the CPU backend through its own CPU layers (src/backbone/cpu_kernels.rs): both, in one page of a Chromium with WebGPU (SwiftShader), must
// classify a real photo alike and take a seeded generation to the same image.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, rmsOf, stdOf } from './harness.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launch(true); });
after(async () => { if (browser) await browser.close(); if (server) server.stop(); });

test("wasm API: WebGPU gives the CPU backend's probabilities and generated image", { timeout: 900_000 }, async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}/tests/browser/`);
  const r = await page.evaluate(async () => {
    const m = await import('/pkg/deepface.js');
    await m.default();
    const get = async (u) => new Uint8Array(await (await fetch(u)).arrayBuffer());
    const [backbone, bundle, photo] = await Promise.all([get('/model/vgg16_conv.safetensors'), get('/model/default.bundle'), get('/tests/fixtures/faces/solvay_3.png')]);
    const bmp = await createImageBitmap(new Blob([photo]));
    const ctx = new OffscreenCanvas(bmp.width, bmp.height).getContext('2d');
    ctx.drawImage(bmp, 0, 0);
    const rgba = new Uint8Array(ctx.getImageData(0, 0, bmp.width, bmp.height).data.buffer);
    const out = {};
    for (const backend of ['webgpu', 'cpu']) {
      const df = await m.DeepFace.load(backbone, bundle, backend);
      const c = await df.classify(rgba, bmp.width, bmp.height);
      const g = await df.generate('Male,Smiling', { seed: 3, steps: 4 }, () => true);
      out[backend] = { label: df.info().backend, faces: c.faces, probs: Array.from(c.probs), px: Array.from(g.image.rgba) };
      df.free();
    }
    return out;
  });
  assert.equal(r.webgpu.label, 'WebGPU');
  assert.match(r.cpu.label, /^CPU/);
  assert.equal(r.webgpu.faces, r.cpu.faces);
  const dp = Math.max(...r.webgpu.probs.map((p, i) => Math.abs(p - r.cpu.probs[i])));
  const rms = rmsOf(r.webgpu.px, r.cpu.px);
  console.log(`webgpu vs cpu: probabilities ${r.webgpu.probs.map((p) => p.toFixed(3))} vs ${r.cpu.probs.map((p) => p.toFixed(3))} (max difference ${dp.toExponential(2)}); 4-step image RMS difference ${rms.toFixed(3)} of 255 (the image's own std ${stdOf(r.cpu.px).toFixed(1)})`);
  assert.ok(dp < 0.01, `probabilities differ by ${dp}`);
  assert.ok(rms < 1, `generated images differ: RMS ${rms}`);
  await page.close();
});
