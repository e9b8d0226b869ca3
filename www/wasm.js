// Which wasm build runs the model, and starting it: shared by the app's worker and the
// benchmark's worker, so both time and show the same thing.
//
// The WebGPU build (wgpu's browser objects are single-threaded), or for the CPU the threaded
// build: a rayon pool of Web Workers sharing the module's memory, which needs a cross-origin
// isolated page. Where that build is missing or will not start, the single-threaded one runs
// (the model's info() then says "CPU" instead of "CPU, N threads").
export async function loadWasm(backend, threads) {
  if (backend === 'cpu' && threads > 1 && self.crossOriginIsolated) {
    try {
      const m = await import('../pkg/threads/deepface.js');
      await m.default();
      await m.initThreadPool(threads);
      return m;
    } catch (e) {
      console.warn(`threaded CPU build unavailable (${e.message}); using one thread`);
    }
  }
  const m = await import('../pkg/deepface.js');
  await m.default();
  return m;
}

// One thread per core the browser reports, at most 16 (more only adds memory).
export const cpuThreads = () => Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 16));
