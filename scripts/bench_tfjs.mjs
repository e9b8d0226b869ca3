// In-browser peer comparison: the same inversion step (same VGG16 weights, layers, loss, Adam
// settings, step count, image size) timed for deepface's wasm API and for TensorFlow.js, in one
// headless Chromium, one after the other: deepface's CPU fallback (burn flex, wasm) against
// TF.js's wasm backend, and deepface's WebGPU against TF.js's WebGPU backend.
// Prints markdown rows. Usage: [BENCH_ONLY=cpu|webgpu] [LAYER=conv3_1] node scripts/bench_tfjs.mjs [size] [cpuSteps] [gpuSteps] [runs]
import { startServer, eachBackend } from '../tests/browser/harness.mjs';

const size = Number(process.argv[2] || 64);
const cpuSteps = Number(process.argv[3] || 10);
const gpuSteps = Number(process.argv[4] || 2);
const runs = Number(process.argv[5] || 5);
const LAYER = process.env.LAYER || 'conv3_1';

// Runs in the page: TF.js version of the step. Kept as one function so it can be sent over.
async function tfjsStep({ backend, layer, size, steps, runs, threads }) {
  const tf = window.tf;
  if (backend === 'wasm') {
    tf.wasm.setWasmPaths('/node_modules/@tensorflow/tfjs-backend-wasm/dist/');
    if (threads) tf.wasm.setThreadsCount(threads);
  }
  if (!(await tf.setBackend(backend))) throw new Error(`TF.js backend ${backend} unavailable`);
  await tf.ready();
  const raw = new Uint8Array(await (await fetch('/model/vgg16_conv.safetensors')).arrayBuffer());
  const n = Number(new DataView(raw.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(raw.subarray(8, 8 + n)));
  const meta = JSON.parse(header.__metadata__.deepface);
  const body = raw.subarray(8 + n);
  const f16 = (h) => {
    const s = h >> 15 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
    if (e === 0) return s * 2 ** -14 * (m / 1024);
    if (e === 31) return m ? NaN : s * Infinity;
    return s * 2 ** (e - 15) * (1 + m / 1024);
  };
  const tensor = (name) => {
    const t = header[name];
    const [a, b] = t.data_offsets;
    const bytes = body.slice(a, b);
    const dv = new DataView(bytes.buffer);
    const v = new Float32Array(t.shape.reduce((x, y) => x * y, 1));
    for (let i = 0; i < v.length; i++) v[i] = t.dtype === 'F16' ? f16(dv.getUint16(2 * i, true)) : dv.getFloat32(4 * i, true);
    return { v, shape: t.shape };
  };
  const ORDER = ['conv1_1', 'conv1_2', 'pool', 'conv2_1', 'conv2_2', 'pool', 'conv3_1', 'conv3_2', 'conv3_3', 'pool', 'conv4_1', 'conv4_2', 'conv4_3', 'pool', 'conv5_1'];
  const upto = ORDER.indexOf(layer);
  const params = {};
  for (const name of ORDER.slice(0, upto + 1)) {
    if (name === 'pool') continue;
    const w = tensor(`${name}.weight`);
    // OIHW -> HWIO (TF.js filters), NHWC activations.
    params[name] = { w: tf.transpose(tf.tensor4d(w.v, w.shape), [2, 3, 1, 0]), b: tf.tensor1d(tensor(`${name}.bias`).v) };
  }
  const bgr = meta.input.channel_order === 'BGR';
  const mean = tf.tensor1d(meta.input.mean);
  const forward = (x) => {
    let h = tf.mul(x, meta.input.range);
    if (bgr) h = tf.reverse(h, 3);
    h = tf.sub(h, mean);
    for (const name of ORDER.slice(0, upto + 1)) {
      h = name === 'pool' ? tf.maxPool(h, 2, 2, 'valid') : tf.relu(tf.add(tf.conv2d(h, params[name].w, 1, 'same'), params[name].b));
    }
    return h;
  };
  const rand = (std, seed) => { let s = seed; const v = new Float32Array(size * size * 3); for (let i = 0; i < v.length; i++) { s = (s * 1103515245 + 12345) % 2147483648; const u = s / 2147483648, u2 = ((s * 7 + 3) % 1000 + 0.5) / 1000; v[i] = Math.min(1, Math.max(0, 0.5 + std * Math.sqrt(-2 * Math.log(u2)) * Math.cos(2 * Math.PI * u))); } return tf.tensor4d(v, [1, size, size, 3]); };
  const target = tf.tidy(() => forward(rand(0.2, 1)));
  const invNorm = 1 / Math.max((await tf.sum(tf.square(target)).data())[0], 1e-6);
  const init = rand(0.05, 2);
  const tvW = 3e-5, b1 = 0.9, b2 = 0.999, eps = 1e-8, lr0 = 0.05;
  const lossOf = (x) => {
    const d = tf.sub(forward(x), target);
    const dy = tf.sub(tf.slice(x, [0, 1, 0, 0], [1, size - 1, size, 3]), tf.slice(x, [0, 0, 0, 0], [1, size - 1, size, 3]));
    const dx = tf.sub(tf.slice(x, [0, 0, 1, 0], [1, size, size - 1, 3]), tf.slice(x, [0, 0, 0, 0], [1, size, size - 1, 3]));
    const tv = tf.add(tf.sum(tf.square(dy)), tf.sum(tf.square(dx)));
    return tf.add(tf.mul(tf.sum(tf.square(d)), invNorm), tf.mul(tv, tvW));
  };
  const grad = tf.valueAndGrad(lossOf);
  const run = async (steps) => {
    let x = tf.clone(init), m = tf.zerosLike(init), v = tf.zerosLike(init);
    for (let t = 1; t <= steps; t++) {
      const p = (t - 1) / Math.max(steps - 1, 1);
      const lr = lr0 * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * p)));
      const next = tf.tidy(() => {
        const { grad: g } = grad(x);
        const m2 = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
        const v2 = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2));
        const stepSize = lr * Math.sqrt(1 - b2 ** t) / (1 - b1 ** t);
        return [tf.clipByValue(tf.sub(x, tf.mul(tf.div(m2, tf.add(tf.sqrt(v2), eps)), stepSize)), 0, 1), m2, v2];
      });
      x.dispose(); m.dispose(); v.dispose();
      [x, m, v] = next;
    }
    await x.data();
    x.dispose(); m.dispose(); v.dispose();
  };
  await run(2);
  const times = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    await run(steps);
    times.push((performance.now() - t0) / steps);
  }
  times.sort((a, b) => a - b);
  // A forward pass alone, read back as deepface's bench reads its own (the sum of the output).
  const fwd = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    const s = tf.tidy(() => tf.sum(forward(init)));
    await s.data();
    s.dispose();
    fwd.push(performance.now() - t0);
  }
  fwd.sort((a, b) => a - b);
  // GPU calls of one step, counted as scripts/bench_worker.js counts deepface's.
  const perStep = window.gpuCounter && (await window.gpuCallsPerStep(window.gpuCounter, run));
  return { msPerStep: times[runs >> 1], msPerStepMin: times[0], forwardMs: fwd[runs >> 1], backend: tf.getBackend(), threads: backend === 'wasm' ? tf.wasm.getThreadsCount?.() : undefined, perStep };
}

async function ours(page, backend, steps, threads = 1) {
  const r = await page.evaluate((o) => new Promise((resolve) => {
    const w = new Worker('/scripts/bench_worker.js', { type: 'module' });
    w.onmessage = ({ data }) => { w.terminate(); resolve(data); };
    w.postMessage(o);
  }), { backend, threads, layer: LAYER, size, steps, runs });
  if (r.error) throw new Error(`deepface (${backend}, ${threads} threads): ${r.error}`);
  return r;
}

async function peer(page, backend, steps, threads) {
  if (backend === 'webgpu') await page.addScriptTag({ type: 'module', content: "import { installGpuCounter, callsPerStep } from '/scripts/gpu_count.js'; window.gpuCounter = installGpuCounter(window); window.gpuCallsPerStep = callsPerStep;" });
  await page.addScriptTag({ url: '/node_modules/@tensorflow/tfjs/dist/tf.min.js' });
  await page.addScriptTag({ url: `/node_modules/@tensorflow/tfjs-backend-${backend}/dist/tf-backend-${backend}.min.js` });
  return page.evaluate(tfjsStep, { backend, layer: LAYER, size, steps, runs, threads });
}

const server = await startServer();
const rows = [];
let calls;
try {
  await eachBackend(async (browser, webgpu) => {
    // BENCH_ONLY=cpu or BENCH_ONLY=webgpu runs one half (the other takes minutes).
    if (process.env.BENCH_ONLY && process.env.BENCH_ONLY !== (webgpu ? 'webgpu' : 'cpu')) return;
    const steps = webgpu ? gpuSteps : cpuSteps;
    // TF.js's threaded wasm backend starts its workers from blob: URLs, which the app's
    // Content-Security-Policy allows only for workers of its own: its page runs with the
    // policy bypassed.
    const fresh = async (bypassCSP = false) => {
      const p = await browser.newPage({ bypassCSP });
      if (process.env.DEBUG) { p.on('console', (m) => console.error('[page]', m.text())); p.on('pageerror', (e) => console.error('[error]', e)); }
      await p.goto(`${server.url}/tests/browser/`);
      return p;
    };
    const cores = (await (await fresh()).evaluate(() => navigator.hardwareConcurrency)) || 1;
    const mine = webgpu ? [await ours(await fresh(), 'webgpu', steps)] : [await ours(await fresh(), 'cpu', steps), await ours(await fresh(), 'cpu', steps, cores)];
    const peers = webgpu ? [['webgpu', 0]] : [['wasm', 1], ['wasm', cores]];
    for (const [backend, threads] of peers) {
      const t = await peer(await fresh(true), backend, steps, threads);
      // TF.js decides itself whether its threaded build can run; say what it used.
      const what = backend === 'wasm' ? `TF.js wasm (${threads} thread${threads > 1 ? 's' : ''} asked, ${t.threads} used)` : 'TF.js webgpu';
      if (webgpu) calls = [mine[0].perStep, t.perStep];
      for (const o of mine) {
        rows.push(`| ${o.backend} | ${o.msPerStep.toFixed(1)} | ${what} | ${t.msPerStep.toFixed(1)} | ${(t.msPerStep / o.msPerStep).toFixed(2)} | ${o.forwardMs.toFixed(1)} | ${t.forwardMs.toFixed(1)} | ${(t.forwardMs / o.forwardMs).toFixed(2)} |`);
      }
    }
  });
} finally {
  server.stop();
}
console.log(`Layer ${LAYER}, ${size} px, median of ${runs} runs (${cpuSteps} steps per run on the CPU, ${gpuSteps} on WebGPU):`);
console.log('');
console.log('| deepface backend | deepface ms/step | peer | peer ms/step | peer/deepface (>1: deepface faster) | deepface forward ms | peer forward ms | peer/deepface forward |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
if (calls) {
  // SwiftShader's times above say little about a GPU; these counts are the same on any
  // adapter; at this size (1.8 GFLOP a step) the launches weigh heavily in a GPU's step.
  console.log('');
  console.log('WebGPU calls per inversion step (counted in the browser; the same on any adapter):');
  console.log('');
  console.log('| per step | deepface | TF.js webgpu | TF.js/deepface |');
  console.log('|---|---|---|---|');
  for (const [k, what] of [['dispatches', 'compute dispatches'], ['submits', 'queue submissions']]) {
    // 0 submissions: the step's work went out with the readback that ends the run.
    const ratio = calls[0][k] > 0 ? (calls[1][k] / calls[0][k]).toFixed(2) : 'n/a';
    console.log(`| ${what} | ${calls[0][k]} | ${calls[1][k]} | ${ratio} |`);
  }
}
