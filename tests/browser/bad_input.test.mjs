// Bad input on the real page (CPU fallback, where most of it is backend-independent): each
// case asserts the exact message shown and that the page still generates a face afterwards.
// The lost WebGPU device is tested on WebGPU (SwiftShader).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { repo, startServer, launch, openApp, waitRun, canvasPixels, stdOf } from './harness.mjs';

let server;
let browser;
let tmp;
before(async () => {
  server = await startServer();
  browser = await launch(false);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deepface-bad-'));
});
after(async () => {
  if (browser) await browser.close();
  if (server) server.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const message = (page) => page.evaluate(() => (document.getElementById('message').hidden ? '' : document.getElementById('message-text').textContent));

// The page still works: a short generation finishes with a non-blank image.
async function stillWorks(page) {
  await page.click('#tab-generate');
  await page.fill('#steps', '10');
  await page.click('#generate');
  const done = await waitRun(page);
  assert.match(done, /^Done/, `after the bad input the page did not generate: ${done} / ${await message(page)}`);
  assert.ok(stdOf(await canvasPixels(page)) > 5, 'blank image after the bad input');
  assert.deepEqual(page.errors, []);
}

// A greyscale PNG of any size, written without loading it into memory as pixels.
function png(file, w, h, pixel) {
  const crcTable = Array.from({ length: 256 }, (_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
  const crc = (buf) => { let c = 0xffffffff; for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const sum = Buffer.alloc(4); sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 0;
  const deflate = zlib.createDeflate({ level: 9 });
  const parts = [];
  deflate.on('data', (d) => parts.push(d));
  const row = Buffer.alloc(w + 1);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) row[x + 1] = pixel(x, y);
    deflate.write(Buffer.from(row));
  }
  return new Promise((resolve) => {
    deflate.end(() => {
      fs.writeFileSync(file, Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), chunk('IHDR', ihdr), chunk('IDAT', Buffer.concat(parts)), chunk('IEND', Buffer.alloc(0))]));
      resolve(file);
    });
  });
}

async function upload(page, file) {
  await page.click('#tab-edit');
  await page.setInputFiles('#file', file);
}

test('bad uploads, a bad link, bad model files, cancel: exact messages, page keeps working', { timeout: 1_200_000 }, async () => {
  const page = await openApp(browser, server.url, '?attrs=Male,Beard&steps=10&backend=cpu');
  const t = (name) => console.log(`  ok: ${name}`);

  // Unknown attribute in the link: named, the valid ones listed, the known one kept.
  assert.equal(await message(page), 'The link asks for unknown attribute “Beard”; ignored. Valid attributes: Male, Child, Youth, Middle_Aged, Senior, Smiling.');
  assert.match(await page.evaluate(() => location.search), /attrs=Male(&|$)/);
  await stillWorks(page); t('unknown attribute in the URL');

  // Number fields that are not whole numbers in their range: named, nothing runs.
  for (const [id, value, want] of [
    ['steps', '15.5', 'Steps must be a whole number from 10 to 1000; it is “15.5”.'],
    ['steps', '', 'Steps must be a whole number from 10 to 1000; it is empty or not a number.'],
    ['seed', '-1', 'Seed must be a whole number from 0 to 4294967295; it is “-1”.'],
  ]) {
    const before = await page.textContent('#progress-text');
    await page.fill(`#${id}`, value);
    await page.click('#generate');
    await page.waitForFunction(() => !document.getElementById('message').hidden);
    assert.equal(await message(page), want);
    assert.equal(await page.textContent('#progress-text'), before, 'nothing ran');
    await page.fill(`#${id}`, id === 'seed' ? '1' : '10');
  }
  await stillWorks(page); t('number fields');

  // A text file named .jpg.
  const text = path.join(tmp, 'text.jpg');
  fs.writeFileSync(text, 'this is not a photo\n');
  await upload(page, text);
  await page.waitForFunction(() => !document.getElementById('message').hidden);
  assert.equal(await message(page), '“text.jpg” is not an image this browser can read (JPEG, PNG, WebP…).');
  assert.equal(await page.isDisabled('#edit'), true, 'edit must stay off without a photo');
  await stillWorks(page); t('text file renamed .jpg');

  // A 0-byte file.
  const empty = path.join(tmp, 'empty.png');
  fs.writeFileSync(empty, '');
  await upload(page, empty);
  await page.waitForFunction(() => !document.getElementById('message').hidden);
  assert.equal(await message(page), '“empty.png” is empty (0 bytes): choose a photo.');
  await stillWorks(page); t('0-byte file');

  // A photo with no face (smooth shading and stripes): the offer to edit the centre.
  const noFace = await png(path.join(tmp, 'no_face.png'), 320, 240, (x, y) => (x * 3 + ((y >> 3) & 1) * 60) & 255);
  await upload(page, noFace);
  await page.waitForFunction(() => !document.getElementById('message').hidden, null, { timeout: 120_000 });
  assert.equal(await message(page), 'No face found in this photo; an edit would need the centre of the photo.');
  assert.equal(await page.textContent('#message-action'), 'Edit the centre');
  await stillWorks(page); t('photo with no face');

  // A 12000x12000 image: scaled down before anything else touches it.
  const huge = await png(path.join(tmp, 'huge.png'), 12000, 12000, (x, y) => ((x >> 6) + (y >> 6)) & 1 ? 200 : 40);
  await upload(page, huge);
  await page.waitForFunction(() => /loaded/.test(document.getElementById('progress-text').textContent), null, { timeout: 300_000 });
  assert.equal((await page.textContent('#progress-text')).trim(), 'Photo 2048×2048 loaded. Scaled down from 12000×12000 to 2048×2048. Choose attributes and press “Edit the face”.');
  await page.waitForFunction(() => !document.getElementById('message').hidden, null, { timeout: 120_000 });
  assert.equal(await message(page), 'No face found in this photo; an edit would need the centre of the photo.');
  await stillWorks(page); t('12000x12000 image');

  // Model files: corrupt, another format version, not a model at all. The loaded model stays.
  const good = fs.readFileSync(path.join(repo, 'model/default.bundle'));
  const corrupt = Buffer.from(good); corrupt[corrupt.length >> 1] ^= 0xff;
  const v2 = Buffer.from(good); v2.writeUInt32LE(2, 8);
  const cases = [
    ['corrupt.bundle', corrupt, 'Could not use “corrupt.bundle”: model bundle: corrupt: checksum mismatch (the file was damaged or cut short; download or fit it again). The previous model is still loaded.'],
    ['v2.bundle', v2, 'Could not use “v2.bundle”: model bundle: bundle format version 2, but this deepface reads version 1: fit the model again with this version (`deepface fit`). The previous model is still loaded.'],
    ['photo.bundle', fs.readFileSync(path.join(repo, 'tests/fixtures/faces/solvay_7.png')), 'Could not use “photo.bundle”: model bundle: not a deepface model bundle (it does not start with the bundle signature). The previous model is still loaded.'],
  ];
  for (const [name, bytes, want] of cases) {
    const f = path.join(tmp, name);
    fs.writeFileSync(f, bytes);
    await page.setInputFiles('#model-file', f);
    await page.waitForFunction(() => !document.getElementById('message').hidden, null, { timeout: 120_000 });
    assert.equal(await message(page), want);
    await stillWorks(page); t(`model file: ${name}`);
  }
  // And a good one loads.
  const ok = path.join(tmp, 'mine.bundle');
  fs.writeFileSync(ok, good);
  await page.setInputFiles('#model-file', ok);
  await page.waitForFunction(() => /model “mine.bundle” loaded/.test(document.getElementById('status').textContent), null, { timeout: 120_000 });
  await stillWorks(page); t('model file: a good one');
  // A reload (another compute choice) brings the user's model back, not the default.
  await page.selectOption('#backend', 'auto');
  await page.waitForFunction(() => !/mine\.bundle/.test(document.getElementById('status').textContent), null, { timeout: 120_000 });
  await page.waitForFunction(() => /model “mine.bundle” loaded/.test(document.getElementById('status').textContent), null, { timeout: 120_000 });
  await stillWorks(page); t('model file: kept on a reload');

  // Cancel during a generation: stopped at a step, the previous image stays, next run works.
  const beforeCancel = await canvasPixels(page);
  await page.fill('#steps', '1000');
  await page.click('#generate');
  await page.waitForFunction(() => /^Step \d+ of 1000/.test(document.getElementById('progress-text').textContent), null, { timeout: 120_000 });
  await page.click('#cancel');
  const cancelled = await waitRun(page, 120_000);
  assert.match(cancelled, /^Cancelled \(at step \d+\)\.$/);
  const step = Number(cancelled.match(/step (\d+)/)[1]);
  assert.ok(step > 0 && step < 1000, cancelled);
  assert.equal(await page.isDisabled('#generate'), false);
  assert.equal(await page.isDisabled('#cancel'), true);
  assert.equal(await message(page), '');
  assert.ok(stdOf(beforeCancel) > 5);
  await stillWorks(page); t(`cancel (${cancelled})`);
  await page.close();
});

test('NaN in the optimisation: stopped with the step named, page keeps working', { timeout: 600_000 }, async () => {
  const page = await openApp(browser, server.url, '?attrs=Smiling&steps=40&backend=cpu&nanAtStep=13');
  await page.click('#generate');
  await waitRun(page);
  assert.equal(await message(page), 'The optimisation went wrong at step 20 (its loss stopped being a number) and was stopped; nothing else changed. Try again, or another seed.');
  assert.equal(await page.textContent('#progress-text'), '');
  await stillWorks(page);
  await page.close();
});

test('WebGPU device lost (device.destroy()) during a generation: restarted on the CPU, settings kept', { timeout: 900_000 }, async () => {
  const gpu = await launch(true);
  try {
    const page = await openApp(gpu, server.url, '?attrs=-Male,Smiling&seed=5&steps=20&backend=webgpu');
    assert.match(await page.textContent('#status'), /running on WebGPU/);
    await page.click('#generate');
    await page.waitForFunction(() => /^Step|Starting/.test(document.getElementById('progress-text').textContent));
    const worker = page.workers()[0];
    assert.ok(worker, 'the model worker');
    assert.equal(await worker.evaluate(() => { self.deepfaceGpuDevice.destroy(); return true; }), true);
    await page.waitForFunction(() => /^Ready: running on CPU/.test(document.getElementById('status').textContent), null, { timeout: 300_000 });
    assert.match(await message(page), /^The WebGPU device was lost \(destroyed: .*\)\. Restarted on the CPU; your settings and photo are kept\.$/);
    assert.equal(await page.inputValue('#backend'), 'cpu');
    assert.equal(await page.inputValue('#seed'), '5');
    assert.match(await page.evaluate(() => location.search), /attrs=-Male%2CSmiling|attrs=-Male,Smiling/);
    await stillWorks(page);
    await page.close();
  } finally {
    await gpu.close();
  }
});
