// The real page in headless Chromium: generate a face and edit a committed real face photo
// on the CPU fallback (WebGPU off), and check that the WebGPU path (SwiftShader, a CPU
// Vulkan: ~16 s per step here, so only a few steps) computes the same image as the CPU path.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { repo, startServer, launch, openApp, waitRun, canvasPixels, stdOf, scores } from './harness.mjs';

const CPU_STEPS = Number(process.env.CPU_STEPS || 60);
const GPU_STEPS = Number(process.env.WEBGPU_STEPS || 3);
const shots = process.env.SCREENSHOTS ? path.join(repo, 'docs') : null;
let server;
before(async () => { server = await startServer(); });
after(() => server && server.stop());

const rmsOf = (a, b) => Math.sqrt(a.reduce((acc, v, i) => acc + (v - b[i]) ** 2, 0) / a.length);

async function generateOnce(webgpu, query) {
  const browser = await launch(webgpu);
  try {
    const page = await openApp(browser, server.url, query);
    const status = await page.textContent('#status');
    await page.click('#generate');
    const done = await waitRun(page);
    return { status, done, message: await page.textContent('#message-text'), pixels: await canvasPixels(page), errors: page.errors };
  } finally {
    await browser.close();
  }
}

test('CPU fallback: generate a face, then edit a real photo', { timeout: 1_200_000 }, async () => {
  const browser = await launch(false);
  try {
    const page = await openApp(browser, server.url, `?attrs=Male,Smiling&seed=3&steps=${CPU_STEPS}&model=linear`);
    const status = await page.textContent('#status');
    assert.match(status, /running on CPU \((this browser has no WebGPU|WebGPU offered no adapter)\)/, `${status} ${await page.textContent('#message-text')}`);

    // A non-blank face that the app's detector accepts and the classifier reads as asked.
    await page.click('#generate');
    const done = await waitRun(page);
    assert.match(done, /^Done/, `${done} / ${await page.textContent('#message-text')}`);
    console.log(`cpu: generate: ${done}`);
    const a = await canvasPixels(page);
    assert.ok(stdOf(a) > 15, `a blank image (std ${stdOf(a)})`);
    assert.equal(await page.getAttribute('#verdict', 'data-face'), 'true', await page.textContent('#verdict'));
    const s = await scores(page);
    console.log(`cpu: classifier: Male ${s.Male[1]}%, Smiling ${s.Smiling[1]}%`);
    assert.ok(s.Male[1] > 50 && s.Smiling[1] > 50, JSON.stringify(s));
    if (shots) await page.screenshot({ path: path.join(shots, 'screenshot-generate.png'), fullPage: true });

    // Another seed, another face.
    await page.fill('#seed', '4');
    await page.click('#generate');
    assert.match(await waitRun(page), /^Done/);
    const b = await canvasPixels(page);
    assert.ok(rmsOf(a, b) > 2, `seeds 3 and 4 gave the same image (RMS ${rmsOf(a, b)})`);

    // Edit a real face: asking for Smiling raises the classifier's Smiling score, and the face
    // stays close to the original.
    await page.click('#tab-edit');
    await page.setInputFiles('#file', path.join(repo, 'tests/fixtures/faces/solvay_7.png'));
    await page.waitForFunction(() => /Photo .* loaded/.test(document.getElementById('progress-text').textContent) && !document.getElementById('edit').disabled, null, { timeout: 300_000 });
    await page.selectOption('[aria-labelledby="attr-Male"]', 'any');
    await page.fill('#edit-steps', String(CPU_STEPS));
    await page.click('#edit');
    const edited = await waitRun(page);
    assert.match(edited, /^Done/, `${edited} / ${await page.textContent('#message-text')}`);
    const e = await scores(page);
    const psnr = Number(await page.getAttribute('#verdict', 'data-psnr'));
    console.log(`cpu: edit: ${edited} Smiling ${e.Smiling[0]}% -> ${e.Smiling[1]}%, face PSNR ${psnr.toFixed(1)} dB`);
    assert.ok(e.Smiling[1] > e.Smiling[0] + 20, `Smiling went ${e.Smiling[0]}% -> ${e.Smiling[1]}%`);
    assert.ok(psnr > 20, `the edit changed the face too much (${psnr} dB)`);
    if (shots) await page.screenshot({ path: path.join(shots, 'screenshot-edit.png'), fullPage: true });
    assert.deepEqual(page.errors, []);
  } finally {
    await browser.close();
  }
});

test('WebGPU computes the same face as the CPU backend', { timeout: 1_200_000 }, async () => {
  const q = `?attrs=-Male,Senior&seed=11&steps=${GPU_STEPS}&model=linear`;
  const gpu = await generateOnce(true, q);
  assert.match(gpu.status, /running on WebGPU/, `${gpu.status} ${gpu.message}`);
  assert.match(gpu.done, /^Done/, `${gpu.done} / ${gpu.message}`);
  console.log(`webgpu: generate: ${gpu.done}`);
  const cpu = await generateOnce(false, `${q}&backend=cpu`);
  assert.match(cpu.done, /^Done/, `${cpu.done} / ${cpu.message}`);
  console.log(`cpu (same request): ${cpu.done}`);
  const rms = rmsOf(gpu.pixels, cpu.pixels);
  console.log(`webgpu vs cpu: RMS difference ${rms.toFixed(2)} (of 255), image std ${stdOf(gpu.pixels).toFixed(1)}`);
  assert.ok(stdOf(gpu.pixels) > 5, 'a blank image');
  assert.ok(rms < 4, `WebGPU and CPU disagree: RMS ${rms}`);
  assert.deepEqual(gpu.errors, []);
});
