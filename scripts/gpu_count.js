// Counts the WebGPU work a page or worker issues (compute dispatches and queue submissions),
// for the benchmarks. SwiftShader runs every kernel on the CPU, so its times say little about a
// real GPU; these counts are the same on every adapter, and at the small sizes benchmarked
// here a real GPU's launches weigh heavily in its step.
// Wraps the prototypes, so it must run before the code it counts creates its first pass.
export function installGpuCounter(scope = globalThis) {
  const n = { dispatches: 0, submits: 0 };
  const wrap = (proto, name, key) => {
    const f = proto?.[name];
    if (!f) return;
    proto[name] = function (...args) { n[key]++; return f.apply(this, args); };
  };
  wrap(scope.GPUComputePassEncoder?.prototype, 'dispatchWorkgroups', 'dispatches');
  wrap(scope.GPUComputePassEncoder?.prototype, 'dispatchWorkgroupsIndirect', 'dispatches');
  wrap(scope.GPUQueue?.prototype, 'submit', 'submits');
  return { snapshot: () => ({ ...n }) };
}

// Calls per step: two runs that differ only by two steps, so whatever a run does once
// (warm-up, set-up, the final readback) cancels. `run(steps)` must finish its GPU work.
export async function callsPerStep(counter, run) {
  const calls = async (steps) => {
    const a = counter.snapshot();
    await run(steps);
    const b = counter.snapshot();
    return Object.fromEntries(Object.keys(a).map((k) => [k, b[k] - a[k]]));
  };
  const [one, three] = [await calls(1), await calls(3)];
  return Object.fromEntries(Object.keys(one).map((k) => [k, (three[k] - one[k]) / 2]));
}
