// The model runs here, off the page's thread: loading (with download progress and the Cache
// API), generation, editing and classification. Messages in: {type, id, ...}; out: progress,
// results and errors tagged with the same id.
import { loadWasm, cpuThreads } from './wasm.js';

const CACHE = 'deepface-models-v1';
let wasm = null; // the module's exports; one build per worker (a backend change restarts it)
let df = null;
let backboneBytes = null; // kept so another model file can be loaded without a download
let backendChoice = 'cpu';

// The WebGPU device is created inside wgpu; catching it here lets the page hear when the
// browser takes it away (driver reset, GPU process crash, device.destroy()) and move the work
// to the CPU instead of hanging. Tests reach it through self.deepfaceGpuDevice.
if (self.GPUAdapter && GPUAdapter.prototype.requestDevice) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    self.deepfaceGpuDevice = device;
    device.lost.then((info) => post({ type: 'device-lost', reason: info.reason, message: info.message || 'no details' }));
    return device;
  };
}

const post = (msg, transfer) => self.postMessage(msg, transfer || []);

// Fetches a model file, from the Cache API when it is there, reporting bytes as they arrive.
async function fetchModel(url, label) {
  const cache = 'caches' in self ? await caches.open(CACHE).catch(() => null) : null;
  const hit = cache && (await cache.match(url));
  if (hit) {
    const buf = new Uint8Array(await hit.arrayBuffer());
    post({ type: 'download', label, loaded: buf.length, total: buf.length, cached: true });
    return buf;
  }
  let res;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`could not download the ${label} (${url}): ${e.message}`);
  }
  if (!res.ok) throw new Error(`could not download the ${label} (${url}): HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length')) || 0;
  const reader = res.body.getReader();
  const parts = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.length;
    post({ type: 'download', label, loaded, total, cached: false });
  }
  const buf = new Uint8Array(loaded);
  let at = 0;
  for (const p of parts) { buf.set(p, at); at += p.length; }
  if (cache) await cache.put(url, new Response(buf.slice())).catch(() => {});
  return buf;
}

// WebGPU when the browser offers a hardware adapter; otherwise the CPU backend. A fallback
// adapter is a software renderer (Chrome's SwiftShader: 35-55x slower per step than the CPU
// backend here), used only when WebGPU is asked for by name.
async function chooseBackend(pref) {
  if (pref === 'cpu') return { backend: 'cpu', why: 'CPU chosen' };
  if (!('gpu' in navigator)) return { backend: 'cpu', why: 'this browser has no WebGPU' };
  let adapter;
  try {
    adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return { backend: 'cpu', why: 'WebGPU offered no adapter' };
  } catch (e) {
    return { backend: 'cpu', why: `WebGPU failed: ${e.message}` };
  }
  const info = adapter.info || {};
  if (pref !== 'webgpu' && (info.isFallbackAdapter || adapter.isFallbackAdapter)) {
    return { backend: 'cpu', why: `WebGPU here is the software renderer ${info.architecture || '(a fallback adapter)'}, slower than the CPU; choose WebGPU under Compute to use it anyway` };
  }
  return { backend: 'webgpu', why: '' };
}

async function ensureWasm(backend, wantThreads) {
  if (!wasm) wasm = await loadWasm(backend, wantThreads ? cpuThreads() : 1);
  return wasm;
}

const progress = (id) => (p) => {
  const msg = { type: 'progress', id, step: p.step, steps: p.steps, loss: p.loss, msPerStep: p.msPerStep };
  const transfer = [];
  if (p.preview) {
    msg.preview = p.preview;
    transfer.push(p.preview.rgba.buffer);
  }
  post(msg, transfer);
  return true;
};

const handlers = {
  async load({ backend: pref, threads: wantThreads = true, backboneUrl, bundleUrl }) {
    const t0 = performance.now();
    const { backend, why } = await chooseBackend(pref);
    const [, backbone, bundle] = await Promise.all([ensureWasm(backend, wantThreads), fetchModel(backboneUrl, 'backbone'), fetchModel(bundleUrl, 'model bundle')]);
    df = null;
    try {
      df = await wasm.DeepFace.load(backbone, bundle, backend);
    } catch (e) {
      // A damaged file must not stay in the cache and fail every later visit.
      if ('caches' in self) await caches.open(CACHE).then((c) => Promise.all([c.delete(backboneUrl), c.delete(bundleUrl)])).catch(() => {});
      throw e;
    }
    backboneBytes = backbone;
    backendChoice = backend;
    const info = df.info();
    return { info, why, bytes: { backbone: backbone.length, bundle: bundle.length }, ms: performance.now() - t0 };
  },
  // A model file the user fitted (`deepface fit`) and opened from disk. The current model
  // stays loaded unless the new one loads completely.
  async useModel({ bundle }) {
    const next = await wasm.DeepFace.load(backboneBytes, new Uint8Array(bundle), backendChoice);
    df = next;
    return { info: df.info(), bytes: bundle.byteLength };
  },
  async generate({ id, attrs, opts }) {
    return df.generate(attrs, opts, progress(id));
  },
  async preview({ attrs, opts }) {
    return df.preview(attrs, opts);
  },
  async scoreFace({ image }) {
    return df.score_face(image.rgba, image.width, image.height);
  },
  async alter({ id, image, attrs, opts }) {
    return df.alter(image.rgba, image.width, image.height, attrs, opts, progress(id));
  },
  async classify({ image }) {
    return df.classify(image.rgba, image.width, image.height);
  },
  async check({ attrs }) {
    df.check_attributes(attrs);
    return true;
  },
};

self.onmessage = async ({ data }) => {
  if (data.type === 'cancel') {
    if (df) df.cancel();
    return;
  }
  const h = handlers[data.type];
  if (!h) return post({ type: 'error', id: data.id, message: `unknown request ${data.type}` });
  if (data.type !== 'load' && !df) return post({ type: 'error', id: data.id, message: 'the model is not loaded yet' });
  try {
    const result = await h(data);
    const transfer = [];
    for (const k of ['image', 'before', 'after']) if (result && result[k] && result[k].rgba) transfer.push(result[k].rgba.buffer);
    post({ type: 'result', id: data.id, result }, transfer);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    // A Rust panic leaves the module unusable ("unreachable"): the page restarts the worker.
    post({ type: 'error', id: data.id, message, fatal: /unreachable|RuntimeError|memory access out of bounds/i.test(message) || e instanceof WebAssembly.RuntimeError });
  }
};
