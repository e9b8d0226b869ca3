// Module worker for scripts/bench_tfjs.mjs: times deepface's inversion step where the app runs
// it, off the page's thread (the threaded build needs a worker: it blocks while rayon works),
// started the way the app starts it. On WebGPU it also counts the GPU calls of one step.
import { loadWasm } from '/www/wasm.js';
import { installGpuCounter, callsPerStep } from '/scripts/gpu_count.js';

const counter = installGpuCounter(self);

self.onmessage = async ({ data: { threads, backend, layer, size, steps, runs } }) => {
  try {
    const m = await loadWasm(backend, threads);
    const get = async (u) => new Uint8Array(await (await fetch(u)).arrayBuffer());
    const df = await m.DeepFace.load(await get('/model/vgg16_conv.safetensors'), await get('/model/default.bundle'), backend);
    const r = await df.bench(layer, size, steps, runs);
    const out = { msPerStep: r.msPerStep, msPerStepMin: r.msPerStepMin, forwardMs: r.forwardMs, backend: df.info().backend };
    if (df.info().backend === 'WebGPU') {
      out.perStep = await callsPerStep(counter, (s) => df.bench(layer, size, s, 1));
    }
    self.postMessage(out);
  } catch (e) {
    self.postMessage({ error: String(e) });
  }
};
