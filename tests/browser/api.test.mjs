// The wasm API itself (pkg/deepface.js as the worker uses it), in headless Chromium on the CPU
// backend, without the page: loading, validation, one operation at a time, cancel, results.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch } from './harness.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launch(false); });
after(async () => { if (browser) await browser.close(); if (server) server.stop(); });

test('wasm API: load, validate, generate, classify, cancel, busy', { timeout: 600_000 }, async () => {
  const page = await browser.newPage();
  // Any same-origin document will do: the module is imported into it.
  await page.goto(`${server.url}/tests/browser/`);
  const r = await page.evaluate(async () => {
    const out = {};
    const m = await import('/pkg/deepface.js');
    await m.default();
    const get = async (u) => new Uint8Array(await (await fetch(u)).arrayBuffer());
    const [backbone, bundle] = await Promise.all([get('/model/vgg16_conv.safetensors'), get('/model/default.bundle')]);
    const err = async (f) => { try { await f(); return 'no error'; } catch (e) { return e.message; } };

    out.loadGarbage = await err(() => m.DeepFace.load(backbone, new Uint8Array([1, 2, 3]), 'cpu'));
    out.loadSwapped = await err(() => m.DeepFace.load(bundle, backbone, 'cpu'));
    const df = await m.DeepFace.load(backbone, bundle, 'cpu');
    const info = df.info();
    out.backend = info.backend;
    out.names = info.attributes.map((a) => a.name);
    out.unknown = await err(() => df.check_attributes('Male,Beard'));
    out.exclusive = await err(() => df.check_attributes('Child,Senior'));
    out.valid = await err(() => df.check_attributes('Male,Smiling=0.5,-Senior'));
    out.badRgba = await err(() => df.classify(new Uint8Array(10), 4, 4));
    out.badModel = await err(() => df.generate('Male', { steps: 2, model: 'gan' }, () => true));
    out.badStrength = await err(() => df.alter(new Uint8Array(64 * 64 * 4).fill(128), 64, 64, 'Smiling', { strength: 100, steps: 2, centreIfNoFace: true }, () => true));
    out.noFace = await err(() => df.alter(new Uint8Array(64 * 64 * 4).fill(128), 64, 64, 'Smiling', { steps: 2 }, () => true));
    // A setting the chosen route would not use is refused by name (through the face generator
    // the seed's face sets the person, not a temperature).
    out.unusedTemperature = await err(() => df.generate('Male', { steps: 2, model: 'linear', prior: 'generator', temperature: 1 }, () => true));
    // Options are read strictly: a misspelt key, a value of the wrong type or a setting the
    // call does not read is refused by name, never replaced by the defaults.
    out.misspelt = await err(() => df.generate('Male', { sed: 7, steps: 2 }, () => true));
    out.wrongType = await err(() => df.generate('Male', { seed: 'seven', steps: 2 }, () => true));
    out.notObject = await err(() => df.alter(new Uint8Array(64 * 64 * 4).fill(128), 64, 64, 'Smiling', 'strong', () => true));
    out.previewTemperature = await err(() => df.preview('Male', { seed: 1, temperature: 1 }));
    out.tooManySteps = await err(() => df.generate('Male', { steps: 5000 }, () => true));
    out.previewDefaults = await err(() => df.preview('Male', undefined));
    // Numbers that are not finite are refused, not read as "not given".
    out.nanSteps = await err(() => df.generate('Male', { steps: NaN }, () => true));
    out.nanTemperature = await err(() => df.generate('Male', { steps: 2, model: 'linear', prior: 'pixels', temperature: NaN }, () => true));

    // Two operations at once: the second is refused, the first completes.
    const reports = [];
    const first = df.generate('Male,Smiling', { seed: 7, steps: 20 }, (p) => { reports.push(p.step); return true; });
    out.busy = await err(() => df.generate('Male', { steps: 2 }, () => true));
    const g = await first;
    out.image = [g.image.width, g.image.height, g.image.rgba.length];
    out.probs = g.probs.length;
    out.reports = reports;
    // The same request twice gives the same image (seeded).
    const g2 = await df.generate('Male,Smiling', { seed: 7, steps: 20 }, () => true);
    out.deterministic = g.image.rgba.every((v, i) => v === g2.image.rgba[i]);

    // Cancel from the progress callback and by cancel().
    out.cancelByCallback = await err(() => df.generate('Male', { steps: 50 }, (p) => p.step < 20));
    const running = df.generate('Male', { steps: 500 }, () => true);
    setTimeout(() => df.cancel(), 300);
    out.cancelByCall = await err(() => running);

    // keepColours, on by default: the edited image differs from the colour input by the same
    // amount in its three channels (up to rounding), and it does differ. keepColours: false
    // lets the edit's colour through, so its image is another.
    const k = await df.alter(g.image.rgba, 64, 64, '-Smiling', { steps: 5, centreIfNoFace: true }, () => true);
    const tinted = await df.alter(g.image.rgba, 64, 64, '-Smiling', { steps: 5, centreIfNoFace: true, keepColours: false }, () => true);
    out.colourChangeDiffers = tinted.image.rgba.some((v, i) => v !== k.image.rgba[i]);
    let tint = 0, light = 0;
    for (let i = 0; i < k.image.rgba.length; i += 4) {
      const d = [0, 1, 2].map((c) => k.image.rgba[i + c] - g.image.rgba[i + c]);
      if ([0, 1, 2].every((c) => k.image.rgba[i + c] > 0 && k.image.rgba[i + c] < 255)) tint = Math.max(tint, Math.max(...d) - Math.min(...d));
      light = Math.max(light, Math.abs(d[0] + d[1] + d[2]) / 3);
    }
    out.keepColours = { tint, light };

    // Classify a whole image (the generated face, scaled up): probabilities per attribute.
    const c = await df.classify(g.image.rgba, g.image.width, g.image.height);
    out.classify = [c.probs.length, Math.round(c.probs[0] * 100) / 100 === Math.round(g.probs[0] * 100) / 100];
    return out;
  });
  assert.match(r.loadGarbage, /not a deepface model bundle/);
  assert.match(r.loadSwapped, /not a deepface model bundle/);
  assert.equal(r.backend, 'CPU');
  assert.deepEqual(r.names, ['Male', 'Child', 'Youth', 'Middle_Aged', 'Senior', 'Smiling']);
  assert.match(r.unknown, /unknown attribute `Beard`.*Male, Child, Youth, Middle_Aged, Senior, Smiling/);
  assert.match(r.exclusive, /mutually exclusive \(group Age\)/);
  assert.equal(r.valid, 'no error');
  assert.match(r.badRgba, /10 bytes do not make a 4x4 RGBA image/);
  assert.match(r.badModel, /gan/);
  assert.match(r.badStrength, /invalid strength: 100/);
  assert.match(r.noFace, /no face found/);
  assert.match(r.unusedTemperature, /invalid temperature: the linear model on the face generator does not use it/);
  assert.match(r.misspelt, /^invalid generate options: unknown field `sed`/);
  assert.match(r.wrongType, /^invalid generate options: `seed`: invalid type: string "seven"/);
  assert.match(r.notObject, /^invalid alter options: "strong" is not an object/);
  assert.match(r.previewTemperature, /^invalid preview options: unknown field `temperature`/);
  assert.match(r.tooManySteps, /^invalid steps: 5000; the page runs at most 2000/);
  assert.equal(r.previewDefaults, 'no error');
  assert.match(r.nanSteps, /^invalid generate options: `steps`: invalid type/);
  assert.match(r.nanTemperature, /^invalid temperature: NaN; use a number between 0 and 10/);
  assert.ok(r.keepColours.tint <= 5 && r.keepColours.light >= 1, JSON.stringify(r.keepColours));
  assert.ok(r.colourChangeDiffers, 'keepColours: false gave the same image as the default');
  assert.match(r.busy, /^busy: another generation or edit is running/);
  assert.deepEqual(r.image, [64, 64, 64 * 64 * 4]);
  assert.equal(r.probs, 6);
  assert.deepEqual(r.reports, [10, 20]);
  assert.equal(r.deterministic, true);
  assert.match(r.cancelByCallback, /^cancelled at step 20$/);
  assert.match(r.cancelByCall, /^cancelled at step \d+$/);
  assert.equal(r.classify[0], 6);
  console.log(JSON.stringify({ ...r, names: undefined }));
  await page.close();
});
