// The page: attribute picker, generation and editing through the worker, URL state,
// messages. No framework; the model never runs on this thread.

const $ = (id) => document.getElementById(id);
// Absolute: the worker resolves relative URLs against its own location (www/).
const MODEL_URLS = { backboneUrl: new URL('pkg/vgg16_conv5_1.safetensors', location.href).href, bundleUrl: new URL('model/default.bundle', location.href).href };
// Uploads larger than this are scaled down before anything else touches them.
const MAX_UPLOAD_SIDE = 2048;
const MAX_UPLOAD_BYTES = 64 * 1024 * 1024;

const state = {
  worker: null,
  info: null,
  busy: false,
  nextId: 1,
  pending: new Map(),
  photo: null, // {width, height, rgba} of the uploaded photo (possibly downscaled)
  result: null, // last image shown in the main canvas
  before: null, // classifier probabilities of the edited face before the edit
  // auto: WebGPU on a real GPU, else the CPU; webgpu: WebGPU even on a software renderer.
  backend: ['cpu', 'webgpu'].includes(new URLSearchParams(location.search).get('backend')) ? new URLSearchParams(location.search).get('backend') : 'auto',
  // ?threads=0 keeps the CPU backend on one thread (to compare, or where workers misbehave).
  threads: new URLSearchParams(location.search).get('threads') !== '0',
  timings: {},
  editDefaults: false, // the edit fields were given the model's defaults
  // Fault injection for the tests (?nanAtStep=N): the next generation's loss turns NaN at
  // step N, to prove the divergence message. Used once, and only in a browser driven by a test
  // (navigator.webdriver), so that a shared link cannot make someone's first run fail.
  nanAtStep: (navigator.webdriver && Math.round(Number(new URLSearchParams(location.search).get('nanAtStep')))) || null,
};

// ---------- messages ----------
function showMessage(text, action) {
  $('message-text').textContent = text;
  const btn = $('message-action');
  if (action) {
    btn.textContent = action.label;
    btn.onclick = () => { hideMessage(); action.run(); };
    btn.hidden = false;
  } else {
    btn.hidden = true;
  }
  $('message').hidden = false;
}
function hideMessage() { $('message').hidden = true; }
$('message-close').onclick = hideMessage;
const setStatus = (t) => { $('status').textContent = t; };

// ---------- worker ----------
function startWorker() {
  if (state.worker) state.worker.terminate();
  for (const p of state.pending.values()) p.reject(new Error('the worker was restarted'));
  state.pending.clear();
  const w = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  w.onmessage = ({ data }) => {
    if (data.type === 'download') return onDownload(data);
    if (data.type === 'device-lost') return onDeviceLost(data);
    const p = state.pending.get(data.id);
    if (!p) return;
    if (data.type === 'progress') return p.onProgress && p.onProgress(data);
    state.pending.delete(data.id);
    if (data.type === 'result') p.resolve(data.result);
    else {
      const e = new Error(data.message);
      e.fatal = data.fatal;
      p.reject(e);
    }
  };
  w.onerror = (e) => {
    for (const p of state.pending.values()) {
      const err = new Error(`the model worker failed: ${e.message || 'unknown error'}`);
      err.fatal = true;
      p.reject(err);
    }
    state.pending.clear();
  };
  state.worker = w;
}

// The browser took the WebGPU device away: whatever was running is lost, the page moves to
// the CPU and keeps every setting, the uploaded photo and the last result.
function onDeviceLost({ reason, message }) {
  if (state.worker.lost) return;
  state.worker.lost = true;
  for (const p of state.pending.values()) {
    const e = new Error('the WebGPU device was lost');
    e.handled = true;
    p.reject(e);
  }
  state.pending.clear();
  state.backend = 'cpu';
  $('backend').value = 'cpu';
  $('progress-text').textContent = '';
  showMessage(`The WebGPU device was lost (${reason || 'unknown'}: ${message}). Restarted on the CPU; your settings and photo are kept.`);
  loadModel({ keepMessage: true });
}

function call(type, payload = {}, onProgress, transfer = []) {
  const id = state.nextId++;
  return new Promise((resolve, reject) => {
    state.pending.set(id, { resolve, reject, onProgress });
    state.worker.postMessage({ type, id, ...payload }, transfer);
  });
}

const downloads = {};
function onDownload(d) {
  downloads[d.label] = d;
  const all = Object.values(downloads);
  const loaded = all.reduce((s, x) => s + x.loaded, 0);
  const total = all.reduce((s, x) => s + (x.total || x.loaded), 0);
  $('download').value = total ? loaded / total : 0;
  const cached = all.every((x) => x.cached);
  setStatus(cached ? 'Loading the model from this browser\'s cache…' : `Downloading the model: ${(loaded / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB (once; it is cached for next time)`);
}

async function loadModel({ keepMessage = false } = {}) {
  if (!keepMessage) hideMessage();
  // A reload (other backend, lost device) keeps the picked attributes: they go into the URL,
  // which the rebuilt picker reads back.
  if (state.info) writeUrl();
  // A newer reload (a second fatal error meanwhile) replaces this one, which then stops quietly.
  const gen = state.loadGen = (state.loadGen || 0) + 1;
  state.loading = true;
  setBusy(true);
  $('download').hidden = false;
  startWorker();
  try {
    const r = await call('load', { backend: state.backend, threads: state.threads, ...MODEL_URLS });
    if (gen !== state.loadGen) return;
    state.info = r.info;
    state.timings.load = r.ms;
    state.sizes = r.bytes;
    $('download').hidden = true;
    const why = r.why ? ` (${r.why})` : '';
    setStatus(`Ready: running on ${r.info.backend}${why}.`);
    document.body.dataset.backend = r.info.backend.startsWith('WebGPU') ? 'webgpu' : 'cpu';
    if (!state.userModel) buildPicker(r.info);
    if (!state.editDefaults) {
      // Once: a reload after a lost device keeps what the user set.
      $('edit-steps').value = String(r.info.defaults.edit_steps);
      $('edit-strength').value = $('edit-strength-out').textContent = String(r.info.defaults.edit_strength);
      state.editDefaults = true;
    }
    if (state.userModel) {
      // The user's model comes back with its own attributes (the picker still shows them).
      try {
        await useModel(state.userModel);
      } catch (e) {
        if (gen !== state.loadGen) return;
        showMessage(`Your model “${state.userModel.name}” could not be loaded again (${e.message}); the default model is loaded.`);
        state.userModel = null;
        state.info = r.info;
        buildPicker(r.info);
        applyUrl();
      }
    } else {
      applyUrl();
    }
    renderInfo();
  } catch (e) {
    if (gen !== state.loadGen) return;
    // Nothing runs until a model is loaded (Generate and Edit stay disabled).
    state.info = null;
    setStatus('The model could not be loaded.');
    showMessage(`Could not load the model: ${e.message}`, { label: 'Try again', run: loadModel });
  } finally {
    if (gen === state.loadGen) {
      state.loading = false;
      setBusy(false);
    }
  }
  if (gen !== state.loadGen) return;
  // The first face, at once: the request's latent code through the generator.
  if (state.info) { updateAgeHint(); schedulePreview(); }
}

// ---------- attribute picker ----------
function buildPicker(info) {
  const list = $('attribute-list');
  list.textContent = '';
  const groups = new Map();
  for (const a of info.attributes) {
    const g = a.group || 'Other';
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(a);
  }
  for (const [g, attrs] of groups) {
    const box = document.createElement('div');
    box.className = 'group';
    const h = document.createElement('h3');
    h.textContent = g === 'Other' ? 'Traits' : `${g} (pick one)`;
    box.append(h);
    for (const a of attrs) {
      const row = document.createElement('div');
      row.className = 'attr';
      row.dataset.name = a.name;
      const label = document.createElement('span');
      label.className = 'attr-name';
      label.id = `attr-${a.name}`;
      label.textContent = a.name.replace(/_/g, ' ');
      label.title = a.description;
      const choice = document.createElement('select');
      choice.setAttribute('aria-labelledby', label.id);
      for (const [v, t] of [['any', "don't care"], ['yes', 'want'], ['no', 'not']]) choice.append(new Option(t, v));
      const strength = document.createElement('input');
      Object.assign(strength, { type: 'range', min: '0.25', max: '1', step: '0.25', value: '1' });
      strength.setAttribute('aria-label', `${a.name} strength`);
      strength.disabled = true;
      choice.onchange = () => {
        strength.disabled = choice.value === 'any';
        // Exclusive groups: wanting one member clears the other wanted ones.
        if (a.group && choice.value === 'yes') {
          for (const other of list.querySelectorAll('.attr')) {
            const s = other.querySelector('select');
            if (other !== row && other.dataset.group === a.group && s.value === 'yes') { s.value = 'any'; s.onchange(); }
          }
        }
        writeUrl();
        updateAgeHint();
        schedulePreview();
      };
      strength.oninput = () => schedulePreview();
      strength.onchange = writeUrl;
      row.dataset.group = a.group || '';
      row.append(label, choice, strength);
      box.append(row);
    }
    list.append(box);
  }
}

function attrSpec() {
  const parts = [];
  for (const row of $('attribute-list').querySelectorAll('.attr')) {
    const v = row.querySelector('select').value;
    if (v === 'any') continue;
    const s = Number(row.querySelector('input').value);
    parts.push(`${v === 'no' ? '-' : ''}${row.dataset.name}${s < 1 ? `=${s}` : ''}`);
  }
  return parts.join(',');
}

function setSpec(spec) {
  const rows = new Map([...$('attribute-list').querySelectorAll('.attr')].map((r) => [r.dataset.name.toLowerCase(), r]));
  const unknown = [];
  for (const row of rows.values()) { row.querySelector('select').value = 'any'; row.querySelector('input').disabled = true; }
  for (let item of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const neg = item.startsWith('-');
    if (neg) item = item.slice(1);
    const [name, s] = item.split('=');
    const row = rows.get(name.toLowerCase());
    if (!row) { unknown.push(name); continue; }
    row.querySelector('select').value = neg ? 'no' : 'yes';
    const input = row.querySelector('input');
    input.disabled = false;
    const v = Number(s);
    input.value = s !== undefined && v > 0 && v <= 1 ? String(v) : '1';
  }
  return unknown;
}

// ---------- URL state ----------
function writeUrl() {
  const p = new URLSearchParams();
  const spec = attrSpec();
  if (spec) p.set('attrs', spec);
  p.set('seed', $('seed').value);
  p.set('model', $('model').value);
  p.set('prior', $('prior').value);
  p.set('steps', $('steps').value);
  if (state.backend !== 'auto') p.set('backend', state.backend);
  if (!state.threads) p.set('threads', '0');
  history.replaceState(null, '', `${location.pathname}?${p}`);
}

function applyUrl() {
  const p = new URLSearchParams(location.search);
  if (p.has('seed')) $('seed').value = String(Math.min(4294967295, Math.max(0, Math.floor(Number(p.get('seed')) || 0))));
  if (['linear', 'cgmm'].includes(p.get('model'))) $('model').value = p.get('model');
  else $('model').value = state.info.default_model;
  const d = state.info.defaults;
  // A bundle without the face generator (an older or a user's model) generates on pixels.
  $('prior').querySelector('option[value="generator"]').disabled = !state.info.has_prior;
  $('prior').value = state.info.has_prior && p.get('prior') !== 'pixels' ? 'generator' : 'pixels';
  const stepsOf = () => ($('prior').value === 'generator' ? d.prior_steps : d.steps);
  $('steps').value = String(p.has('steps') ? Math.min(1000, Math.max(10, Math.round(Number(p.get('steps'))) || stepsOf())) : stepsOf());
  const unknown = setSpec(p.get('attrs') || '');
  if (unknown.length) {
    const valid = state.info.attributes.map((a) => a.name).join(', ');
    showMessage(`The link asks for unknown attribute${unknown.length > 1 ? 's' : ''} ${unknown.map((u) => `“${u}”`).join(', ')}; ignored. Valid attributes: ${valid}.`);
  }
  writeUrl();
}

// ---------- drawing ----------
function draw(canvas, img) {
  const off = new OffscreenCanvas(img.width, img.height);
  off.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(img.rgba), img.width, img.height), 0, 0);
  const ctx = canvas.getContext('2d');
  if (canvas.id === 'canvas') {
    // The main canvas takes the image's aspect ratio, at least 256 px on its long side.
    const scale = Math.max(1, 256 / Math.max(img.width, img.height));
    canvas.width = Math.round(img.width * scale);
    canvas.height = Math.round(img.height * scale);
  }
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
}

function renderScores(probs, before) {
  const body = $('scores').querySelector('tbody');
  body.textContent = '';
  state.info.attributes.forEach((a, i) => {
    const tr = document.createElement('tr');
    const cell = (p) => {
      const td = document.createElement('td');
      if (p === undefined) { td.textContent = '–'; return td; }
      const bar = document.createElement('meter');
      Object.assign(bar, { min: 0, max: 1, value: p });
      bar.setAttribute('aria-label', `${a.name} ${(100 * p).toFixed(0)}%`);
      td.append(bar, ` ${(100 * p).toFixed(0)}%`);
      return td;
    };
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = a.name.replace(/_/g, ' ');
    tr.append(th, cell(before ? before[i] : undefined), cell(probs[i]));
    body.append(tr);
  });
}

function renderInfo() {
  const dl = $('info');
  dl.textContent = '';
  const add = (k, v) => { const dt = document.createElement('dt'); dt.textContent = k; const dd = document.createElement('dd'); dd.textContent = v; dl.append(dt, dd); };
  const i = state.info;
  add('Compute', i.backend);
  add('Image size', `${i.image_size} px`);
  if (i.report && i.report.mean_accuracy) add('Classifier (held-out)', `${(100 * i.report.mean_accuracy).toFixed(1)}% mean accuracy, ${(100 * i.report.mean_balanced).toFixed(1)}% balanced`);
  if (state.sizes) add('Downloaded', `backbone ${(state.sizes.backbone / 1e6).toFixed(1)} MB, model ${(state.sizes.bundle / 1e6).toFixed(1)} MB`);
  if (state.timings.load) add('Start-up', `${(state.timings.load / 1000).toFixed(1)} s`);
  if (state.timings.run) add('Last run', `${(state.timings.run.total / 1000).toFixed(1)} s, ${state.timings.run.perStep.toFixed(0)} ms per step`);
}

// ---------- running ----------
function setBusy(b) {
  b = b || state.loading;
  state.busy = b;
  $('generate').disabled = b || !state.info;
  $('edit').disabled = b || !state.info || !state.photo;
  // Only a generation or an edit can be cancelled (not a download or a photo's reading).
  $('cancel').disabled = !b || !state.running;
  $('backend').disabled = b;
  $('model-file').disabled = b || !state.info;
  // Screen readers hear the outcome, not every step.
  $('progress-text').setAttribute('aria-busy', String(b));
  $('status').setAttribute('aria-busy', String(Boolean(state.loading)));
}

// A whole-number field checked against its own min and max. Without `quiet`, a bad value is
// explained by the field's name (and focused); either way it gives null and nothing runs.
function fieldInt(id, name, quiet = false) {
  const el = $(id);
  const v = Number(el.value);
  const [lo, hi] = [Number(el.min), Number(el.max)];
  if (el.value.trim() !== '' && Number.isInteger(v) && v >= lo && v <= hi) return v;
  if (!quiet) {
    showMessage(`${name} must be a whole number from ${lo} to ${hi}; it is ${el.value.trim() === '' ? 'empty or not a number' : `“${el.value}”`}.`);
    el.focus();
  }
  return null;
}

// The worker's backend failed for good: restart it on the CPU, keeping the settings.
// A second failure before anything has run since the last restart is not retried on its own
// (it would fail again, for ever): the user gets a Try again button.
function restartAfterFatal(e) {
  if (state.loading) return; // a restart is already under way
  if (state.restarted) {
    showMessage(`The compute backend failed again (${e.message}).`, { label: 'Try again', run: () => { state.restarted = false; loadModel(); } });
    return;
  }
  state.restarted = true;
  showMessage(`The compute backend failed (${e.message}). Restarted on the CPU; your settings are kept.`);
  state.backend = 'cpu';
  $('backend').value = 'cpu';
  loadModel({ keepMessage: true });
}

function onProgress(p) {
  $('progress').value = p.step / p.steps;
  $('progress-text').textContent = `Step ${p.step} of ${p.steps} · loss ${p.loss.toFixed(4)} · ${p.msPerStep.toFixed(0)} ms per step`;
  if (p.preview) draw($('canvas'), p.preview);
}

async function run(kind, payload, transfer) {
  hideMessage();
  state.running = true;
  state.cancelRequested = false;
  setBusy(true);
  $('verdict').textContent = '';
  $('progress').value = 0;
  $('progress-text').textContent = 'Starting…';
  const t0 = performance.now();
  try {
    // A preview still in the worker finishes first (the worker runs one call at a time); the
    // page already shows this run as started, and the preview will not be drawn over it.
    if (state.previewing) await state.previewing;
    // Cancel pressed while that preview finished: the run never starts (the worker would
    // otherwise clear the cancel as the run begins).
    if (state.cancelRequested) throw new Error('cancelled before it started');
    const r = await call(kind, payload, onProgress, transfer);
    state.restarted = false;
    state.timings.run = { total: performance.now() - t0, perStep: r.msPerStep };
    state.result = r.image;
    draw($('canvas'), r.image);
    $('download-png').disabled = false;
    $('share').disabled = kind !== 'generate';
    $('progress-text').textContent = `Done in ${((performance.now() - t0) / 1000).toFixed(1)} s (${r.msPerStep.toFixed(0)} ms per step).`;
    renderInfo();
    return r;
  } catch (e) {
    $('progress-text').textContent = '';
    if (e.handled) {
      // Already explained (a lost device).
    } else if (/^cancelled/.test(e.message)) {
      $('progress-text').textContent = `Cancelled (${e.message.replace('cancelled ', '')}).`;
    } else if (e.fatal) {
      restartAfterFatal(e);
    } else if (/diverged at step (\d+)/.test(e.message)) {
      const step = e.message.match(/diverged at step (\d+)/)[1];
      showMessage(`The optimisation went wrong at step ${step} (its loss stopped being a number) and was stopped; nothing else changed. Try again, or another seed.`);
    } else if (/no face found/.test(e.message) && kind === 'alter') {
      showMessage('No face found in this photo: try a frontal, well-lit face, or edit the centre of the photo.', {
        label: 'Edit the centre instead',
        run: () => runEdit(true),
      });
    } else {
      showMessage(e.message);
    }
    return null;
  } finally {
    state.running = false;
    setBusy(false);
  }
}

// The generator route's known gap, said where it matters: a request for an age group the
// generator hardly draws (docs/method.md, "Age through the generator").
function updateAgeHint() {
  const wantsAge = attrSpec().split(',').some((p) => /^(Child|Senior)(=|$)/.test(p));
  $('age-hint').hidden = !(wantsAge && $('prior').value === 'generator');
}

// ---------- live preview (face generator) ----------
// A request as a download's file name: only the characters an attribute spec is made of
// (no path separators or spaces from a hand-edited link), and a name for the empty request.
function fileStem(spec) {
  return spec.replace(/[^A-Za-z0-9_=,.-]/g, '') || 'face';
}

// Moving an attribute control re-renders the face from the request's latent code: one
// generator pass and the classifier, no optimisation. One preview at a time; a change that
// arrives meanwhile is rendered once the running one is done. Generate refines the face.
function schedulePreview() {
  // Only on the Generate tab: there the attribute controls describe a face to make.
  if (!state.info || !state.info.has_prior || $('prior').value !== 'generator' || state.busy || $('generate-panel').hidden) return;
  if (state.previewing) { state.previewAgain = true; return; }
  state.previewing = (async () => {
    do {
      state.previewAgain = false;
      const t0 = performance.now();
      try {
        // The image first (one generator pass), drawn at once; its scores follow.
        const seed = fieldInt('seed', 'Seed', true);
        if (seed === null) break; // explained when Generate is pressed
        // The link and file name of this preview, taken from the fields it is made from.
        const spec = attrSpec();
        writeUrl();
        const shown = { url: location.href, name: `${fileStem(spec)}-${seed}-preview` };
        const r = await call('preview', { attrs: spec, opts: { seed, scores: false } });
        if (state.busy || $('generate-panel').hidden) break; // a generation started, or the user left the tab
        state.result = r.image;
        state.restarted = false;
        state.shown = shown;
        draw($('canvas'), r.image);
        // From the control's change to the new face on the canvas, as the user waits for it.
        $('canvas').dataset.previewDrawMs = String(Math.round(performance.now() - t0));
        const probs = await call('scoreFace', { image: r.image });
        if (state.busy || $('generate-panel').hidden) break;
        renderScores(probs);
        $('comparison').hidden = true;
        $('download-png').disabled = false;
        $('share').disabled = false;
        $('verdict').textContent = '';
        $('progress-text').textContent = `Preview in ${$('canvas').dataset.previewDrawMs} ms (the request's face from the generator alone); Generate refines it.`;
        $('canvas').dataset.previews = String(Number($('canvas').dataset.previews || 0) + 1);
      } catch (e) {
        // An attribute set the model refuses (two of one group) is explained on Generate.
        if (e.fatal) restartAfterFatal(e);
        else if (!state.busy && !/busy/.test(e.message) && !e.handled) $('progress-text').textContent = `No preview: ${e.message}`;
        break;
      }
    } while (state.previewAgain);
    state.previewing = null;
  })();
}

async function runGenerate() {
  const [seed, steps] = [fieldInt('seed', 'Seed'), fieldInt('steps', 'Steps')];
  if (seed === null || steps === null) return;
  writeUrl();
  const opts = { seed, steps, model: $('model').value, prior: $('prior').value };
  const attrs = attrSpec();
  // What the link and the download name describe: this face, even after the fields change.
  const shown = { url: location.href, name: `${fileStem(attrs)}-${seed}` };
  if (state.nanAtStep) { opts.nanAtStep = state.nanAtStep; state.nanAtStep = null; }
  $('comparison').hidden = true;
  const r = await run('generate', { attrs, opts });
  if (!r) return;
  state.shown = shown;
  renderScores(r.probs);
  $('verdict').textContent = r.faceFound ? 'The face detector finds a face in it.' : 'The face detector does not find a face in it: try another seed or more steps.';
  $('verdict').dataset.face = String(r.faceFound);
}

async function runEdit(centreIfNoFace = false) {
  const attrs = attrSpec();
  if (!attrs) return showMessage('Choose at least one attribute to change (want or not).');
  const steps = fieldInt('edit-steps', 'Edit steps');
  if (steps === null) return;
  const photo = state.photo;
  const image = { width: photo.width, height: photo.height, rgba: photo.rgba.slice() };
  const opts = { strength: Number($('edit-strength').value), steps, centreIfNoFace, keepColours: $('keep-colours').checked };
  const r = await run('alter', { attrs, opts, image }, [image.rgba.buffer]);
  if (!r) return;
  state.shown = { url: null, name: `edited-${fileStem(attrs)}` };
  $('comparison').hidden = false;
  draw($('before'), r.before);
  draw($('after'), r.after);
  renderScores(r.probsAfter, r.probsBefore);
  $('verdict').textContent = `The edited face is ${r.psnr.toFixed(1)} dB PSNR from the original face.`;
  $('verdict').dataset.psnr = String(r.psnr);
  if (r.faces > 1) showMessage(`${r.faces} faces found; the largest was edited.`);
}

// ---------- uploads ----------
async function readPhoto(file) {
  if (!file) return;
  hideMessage();
  if (file.size === 0) return showMessage(`“${file.name}” is empty (0 bytes): choose a photo.`);
  if (file.size > MAX_UPLOAD_BYTES) return showMessage(`“${file.name}” is ${(file.size / 1e6).toFixed(0)} MB; photos up to ${MAX_UPLOAD_BYTES / 1e6} MB are accepted.`);
  let bmp;
  try {
    bmp = await createImageBitmap(file);
  } catch {
    return showMessage(`“${file.name}” is not an image this browser can read (JPEG, PNG, WebP…).`);
  }
  let { width, height } = bmp;
  let note = '';
  if (Math.max(width, height) > MAX_UPLOAD_SIDE) {
    const s = MAX_UPLOAD_SIDE / Math.max(width, height);
    const w = Math.max(1, Math.round(width * s));
    const h = Math.max(1, Math.round(height * s));
    bmp.close();
    try {
      bmp = await createImageBitmap(file, { resizeWidth: w, resizeHeight: h, resizeQuality: 'high' });
    } catch {
      return showMessage(`“${file.name}” (${width}×${height}) could not be scaled down to ${w}×${h} in this browser: try a smaller photo.`);
    }
    note = `Scaled down from ${width}×${height} to ${w}×${h}.`;
    width = w; height = h;
  }
  const off = new OffscreenCanvas(width, height);
  const ctx = off.getContext('2d');
  ctx.drawImage(bmp, 0, 0);
  bmp.close();
  const rgba = new Uint8Array(ctx.getImageData(0, 0, width, height).data.buffer);
  state.photo = { width, height, rgba };
  state.result = { width, height, rgba };
  draw($('canvas'), state.photo);
  // The photo is on screen now: no face of ours to link to or download.
  $('download-png').disabled = true;
  $('share').disabled = true;
  state.shown = null;
  setBusy(state.busy);
  $('progress-text').textContent = `Photo ${width}×${height} loaded. ${note} Choose attributes and press “Edit the face”.`;
  if (!state.busy) {
    // The worker runs one operation at a time: Edit waits until this reading is done (on a
    // slow backend it takes seconds).
    setBusy(true);
    try {
      const r = await call('classify', { image: { width, height, rgba: rgba.slice() } });
      renderScores(r.probs);
      if (r.faces === 0) showMessage('No face found in this photo; an edit would need the centre of the photo.', { label: 'Edit the centre', run: () => runEdit(true) });
    } catch (e) {
      if (e.fatal) restartAfterFatal(e);
      else if (!e.handled) showMessage(e.message);
    } finally {
      setBusy(false);
    }
  }
}

// A model the user fitted with `deepface fit`, opened from disk (it never leaves the machine).
async function useModelFile(file) {
  if (!file) return;
  hideMessage();
  if (file.size === 0) return showMessage(`“${file.name}” is empty (0 bytes): choose a model file made by \`deepface fit\`.`);
  setBusy(true);
  try {
    const bytes = await file.arrayBuffer();
    await useModel({ name: file.name, bytes });
  } catch (e) {
    if (e.fatal) restartAfterFatal(e);
    else showMessage(`Could not use “${file.name}”: ${e.message}. The previous model is still loaded.`);
  } finally {
    setBusy(false);
  }
}

// Loads the user's model into the worker and the page: the picked attributes, seed and image
// model carry over where the model has them. Kept, so that a reload (another backend, a lost
// device) brings it back instead of the default.
async function useModel(model) {
  writeUrl();
  const r = await call('useModel', { bundle: model.bytes.slice(0) }, null);
  state.userModel = model;
  state.info = r.info;
  state.sizes = { ...state.sizes, bundle: r.bytes };
  buildPicker(r.info);
  applyUrl();
  renderInfo();
  setStatus(`Ready: model “${model.name}” loaded, running on ${r.info.backend}.`);
}

// ---------- wiring ----------
function selectTab(edit) {
  $('tab-generate').setAttribute('aria-selected', String(!edit));
  $('tab-edit').setAttribute('aria-selected', String(edit));
  $('generate-panel').hidden = edit;
  $('edit-panel').hidden = !edit;
}

function wire() {
  $('tab-generate').onclick = () => selectTab(false);
  $('tab-edit').onclick = () => selectTab(true);
  $('generate').onclick = runGenerate;
  $('edit').onclick = () => runEdit(false);
  $('cancel').onclick = () => { state.cancelRequested = true; if (state.worker) state.worker.postMessage({ type: 'cancel' }); };
  $('dice').onclick = () => { $('seed').value = String(crypto.getRandomValues(new Uint32Array(1))[0]); writeUrl(); schedulePreview(); };
  for (const id of ['model', 'steps']) $(id).onchange = writeUrl;
  $('seed').onchange = () => { writeUrl(); schedulePreview(); };
  $('prior').onchange = () => {
    const d = state.info.defaults;
    $('steps').value = String($('prior').value === 'generator' ? d.prior_steps : d.steps);
    writeUrl();
    updateAgeHint();
    schedulePreview();
  };
  $('edit-strength').oninput = () => { $('edit-strength-out').textContent = $('edit-strength').value; };
  $('backend').onchange = () => { state.backend = $('backend').value; writeUrl(); loadModel(); };
  $('file').onchange = (e) => { readPhoto(e.target.files[0]); e.target.value = ''; };
  $('camera').onchange = (e) => { readPhoto(e.target.files[0]); e.target.value = ''; };
  $('model-file').onchange = (e) => { useModelFile(e.target.files[0]); e.target.value = ''; };
  const drop = $('drop');
  drop.ondragover = (e) => { e.preventDefault(); drop.classList.add('over'); };
  drop.ondragleave = () => drop.classList.remove('over');
  // The drop zone is focusable: Enter or Space opens the file chooser.
  drop.onkeydown = (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); $('file').click(); } };
  drop.ondrop = (e) => { e.preventDefault(); drop.classList.remove('over'); selectTab(true); readPhoto(e.dataTransfer.files[0]); };
  $('download-png').onclick = () => {
    const img = state.result;
    if (!img) return;
    const c = document.createElement('canvas');
    c.width = img.width; c.height = img.height;
    c.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(img.rgba), img.width, img.height), 0, 0);
    c.toBlob((blob) => {
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = `deepface-${state.shown ? state.shown.name : 'image'}.png`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    }, 'image/png');
  };
  $('share').onclick = async () => {
    // The link of the face on screen, taken when it was made (the fields may have moved since).
    const url = state.shown && state.shown.url;
    if (!url) return;
    try { await navigator.clipboard.writeText(url); setStatus('Link copied: it reproduces the face shown.'); } catch { setStatus(url); }
  };
}

wire();
$('backend').value = state.backend;
loadModel();
