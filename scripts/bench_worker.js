// Module worker for scripts/bench_tfjs.mjs: times deepface's inversion step where the app runs
// it, off the page's thread (the threaded build needs a worker: it blocks while rayon works).
self.onmessage = async ({ data: { threads, backend, layer, size, steps, runs } }) => {
  try {
    const m = await import(threads > 1 ? '/pkg/threads/deepface.js' : '/pkg/deepface.js');
    await m.default();
    if (threads > 1) await m.initThreadPool(threads);
    const get = async (u) => new Uint8Array(await (await fetch(u)).arrayBuffer());
    const df = await m.DeepFace.load(await get('/model/vgg16_conv.safetensors'), await get('/model/default.bundle'), backend);
    const r = await df.bench(layer, size, steps, runs);
    const name = df.info().backend;
    self.postMessage({ msPerStep: r.msPerStep, msPerStepMin: r.msPerStepMin, backend: threads > 1 ? `${name}, ${threads} threads` : name });
  } catch (e) {
    self.postMessage({ error: String(e) });
  }
};
