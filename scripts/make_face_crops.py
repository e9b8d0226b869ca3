#!/usr/bin/env python3
"""Make tests/fixtures/faces/*.png: real face crops from the Solvay 1927 photo (public domain)
that ships as test.png in the `rustface` crate.

That copy has red detection boxes drawn on it. The photo itself is greyscale, so every
coloured pixel is box, and is filled from its grey neighbours before cropping.

    python3 scripts/make_face_crops.py ~/.cargo/registry/src/*/rustface-0.1.7/test.png
    # then: target/debug/deepface crop-faces /tmp/solvay_clean.png --out tests/fixtures/faces ...
"""
import sys

import numpy as np
from PIL import Image

src = np.asarray(Image.open(sys.argv[1]).convert("RGB")).astype(np.float32)
out = sys.argv[2] if len(sys.argv) > 2 else "/tmp/solvay_clean.png"
grey = src.mean(axis=2)
bad = (np.abs(src[..., 0] - src[..., 1]) > 24) | (np.abs(src[..., 0] - src[..., 2]) > 24)
bad = bad | np.roll(bad, 1, 0) | np.roll(bad, -1, 0) | np.roll(bad, 1, 1) | np.roll(bad, -1, 1)
img = np.where(bad, np.nan, grey)
# Fill holes from the mean of known 4-neighbours, a ring at a time.
while np.isnan(img).any():
    padded = np.pad(img, 1, constant_values=np.nan)
    neigh = np.stack([padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]])
    known = ~np.isnan(neigh)
    fill = np.where(known, neigh, 0).sum(0) / np.maximum(known.sum(0), 1)
    img = np.where(np.isnan(img) & known.any(0), fill, img)
print(f"filled {int(bad.sum())} box pixels")
Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).convert("RGB").save(out)
