"""Cuts a deepface backbone file after a given convolution, for the browser: the fitted models
read nothing deeper than conv5_1, and conv5_2/conv5_3 are 9.4 MB of the 29.4 MB download.
The manifest in the header lists the layers kept and records the sha256 of the full file
(`trimmed_from`), which is what model bundles check against.

Usage: python3 trim_backbone.py IN OUT [--upto conv5_1]
"""
import argparse
import hashlib
import json
import os
import struct
import sys

CONVS = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
         "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"]


def read_backbone(src):
    """(raw bytes, safetensors header, body, deepface manifest), or exits with the reason."""
    try:
        raw = open(src, "rb").read()
    except OSError as e:
        sys.exit(f"{src}: cannot read it ({e.strerror})")
    try:
        n = struct.unpack("<Q", raw[:8])[0]
        if n > len(raw) - 8:
            raise ValueError("header longer than the file")
        header = json.loads(raw[8:8 + n])
        meta = json.loads(header["__metadata__"]["deepface"])
        names = [l["name"] for l in meta["layers"]]
    except (struct.error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        sys.exit(f"{src}: not a deepface backbone (a safetensors file with a deepface manifest, "
                 "as `deepface import-vgg` or scripts/fetch_vgg16.sh write)")
    return raw, header, raw[8 + n:], meta, names


def main():
    ap = argparse.ArgumentParser(description="Cut a deepface backbone after one convolution.")
    ap.add_argument("src", metavar="IN")
    ap.add_argument("out", metavar="OUT")
    ap.add_argument("--upto", default="conv5_1", choices=CONVS, help="last convolution kept (default conv5_1)")
    a = ap.parse_args()
    src, out, upto = a.src, a.out, a.upto
    raw, header, body, meta, names = read_backbone(src)
    keep = CONVS[:CONVS.index(upto) + 1]
    if names[:len(keep)] != keep:
        sys.exit(f"{src}: holds {', '.join(names) or 'no layers'}, not every layer up to {upto}")
    meta["layers"] = meta["layers"][:len(keep)]
    # Trimming a trimmed file keeps the full file's checksum: that is what bundles name.
    meta["trimmed_from"] = meta.get("trimmed_from") or hashlib.sha256(raw).hexdigest()
    new_header = {"__metadata__": {"deepface": json.dumps(meta, separators=(",", ":"))}}
    data = bytearray()
    for name in sorted(k for k in header if k != "__metadata__" and k.split(".")[0] in keep):
        t = header[name]
        a, b = t["data_offsets"]
        new_header[name] = {"dtype": t["dtype"], "shape": t["shape"], "data_offsets": [len(data), len(data) + b - a]}
        data += body[a:b]
    head = json.dumps(new_header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(out + ".partial", "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + bytes(data))
    os.replace(out + ".partial", out)
    print(f"{out}: {len(keep)} convolutions up to {upto}, {(8 + len(head) + len(data)) / 1e6:.1f} MB (from {len(raw) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
