"""Peer for `deepface bench`: the same inversion step written in JAX (XLA on the CPU), with the
same weights (model/vgg16_conv.safetensors), layers, loss, optimiser and step count, so the two
can be compared side by side on one machine. Prints one markdown row per size:
| size | ms/step | min | forward ms |.

Usage: python3 bench_peer_jax.py --layers conv3_1 --sizes 64,128,224 --steps 10 --runs 5
"""
import argparse
import json
import struct
import time

import jax
import jax.numpy as jnp
import numpy as np

ORDER = ["conv1_1", "conv1_2", "pool", "conv2_1", "conv2_2", "pool", "conv3_1", "conv3_2", "conv3_3", "pool",
         "conv4_1", "conv4_2", "conv4_3", "pool", "conv5_1", "conv5_2", "conv5_3"]


def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["deepface"])
    body = raw[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        dtype = {"F16": np.float16, "F32": np.float32}[t["dtype"]]
        out[name] = jnp.asarray(np.frombuffer(body[a:b], dtype=dtype).astype(np.float32).reshape(t["shape"]))
    return out, meta["input"]


def forward(params, conv, x, layers):
    """x: [1, 3, H, W] RGB in [0, 1] -> activations at `layers` (NCHW, after ReLU)."""
    scale = conv["range"]
    mean = jnp.asarray(conv["mean"], jnp.float32).reshape(1, 3, 1, 1)
    h = x * scale
    if conv["channel_order"] == "BGR":
        h = h[:, ::-1]
    h = h - mean
    out = {}
    deepest = max(ORDER.index(l) for l in layers)
    for name in ORDER[:deepest + 1]:
        if name == "pool":
            h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
            continue
        h = jax.lax.conv_general_dilated(h, params[f"{name}.weight"], (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))
        h = jax.nn.relu(h + params[f"{name}.bias"].reshape(1, -1, 1, 1))
        if name in layers:
            out[name] = h
    return [out[l] for l in layers]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="model/vgg16_conv.safetensors")
    ap.add_argument("--layers", default="conv3_1")
    ap.add_argument("--sizes", default="64,128,224")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    params, conv = load(a.weights)
    layers = a.layers.split(",")
    lr, tv_w, b1, b2, eps = 0.05, 3e-5, 0.9, 0.999, 1e-8

    def loss_fn(x, targets, inv_norms):
        acts = forward(params, conv, x, layers)
        loss = sum(jnp.sum((p - t) ** 2) * n for p, t, n in zip(acts, targets, inv_norms))
        tv = jnp.sum((x[:, :, 1:, :] - x[:, :, :-1, :]) ** 2) + jnp.sum((x[:, :, :, 1:] - x[:, :, :, :-1]) ** 2)
        return loss + tv_w * tv

    @jax.jit
    def step(x, m, v, t, targets, inv_norms, step_lr):
        loss, g = jax.value_and_grad(loss_fn)(x, targets, inv_norms)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        size = step_lr * jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        return jnp.clip(x - size * m / (jnp.sqrt(v) + eps), 0.0, 1.0), m, v, loss

    fwd = jax.jit(lambda x: forward(params, conv, x, layers))
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, layers {a.layers}, {a.steps} steps per run, median of {a.runs} runs")
    print("| size | ms/step | min | forward ms |")
    print("|---|---|---|---|")
    rng = np.random.default_rng(1)
    for size in [int(s) for s in a.sizes.split(",")]:
        src = jnp.asarray(np.clip(0.5 + 0.2 * rng.standard_normal((1, 3, size, size)), 0, 1), jnp.float32)
        targets = fwd(src)
        inv_norms = [1.0 / max(float(jnp.sum(t * t)), 1e-6) for t in targets]
        init = jnp.asarray(np.clip(0.5 + 0.05 * rng.standard_normal((1, 3, size, size)), 0, 1), jnp.float32)

        def run(steps):
            x, m, v = init, jnp.zeros_like(init), jnp.zeros_like(init)
            for s in range(1, steps + 1):
                p = (s - 1) / max(steps - 1, 1)
                step_lr = lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * p)))
                x, m, v, loss = step(x, m, v, float(s), targets, inv_norms, step_lr)
            loss.block_until_ready()

        run(2)  # compiles
        per_step = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            run(a.steps)
            per_step.append((time.perf_counter() - t0) * 1000 / a.steps)
        forward_ms = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            jax.block_until_ready(fwd(init))
            forward_ms.append((time.perf_counter() - t0) * 1000)
        per_step.sort()
        forward_ms.sort()
        print(f"| {size} | {per_step[a.runs // 2]:.1f} | {per_step[0]:.1f} | {forward_ms[a.runs // 2]:.1f} |")


if __name__ == "__main__":
    main()
