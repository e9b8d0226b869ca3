"""Cuts a deepface backbone file after a given convolution, for the browser: the fitted models
read nothing deeper than conv5_1, and conv5_2/conv5_3 are 9.4 MB of the 29.4 MB download.
The manifest in the header lists the layers kept and records the sha256 of the full file
(`trimmed_from`), which is what model bundles check against.

Usage: python3 trim_backbone.py IN OUT [--upto conv5_1]
"""
import hashlib
import json
import struct
import sys

CONVS = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
         "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    upto = sys.argv[sys.argv.index("--upto") + 1] if "--upto" in sys.argv else "conv5_1"
    if upto in args:
        args.remove(upto)
    src, out = args
    raw = open(src, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    meta = json.loads(header["__metadata__"]["deepface"])
    keep = CONVS[:CONVS.index(upto) + 1]
    if [l["name"] for l in meta["layers"]][:len(keep)] != keep:
        sys.exit(f"{src}: its layers do not start with {keep}")
    meta["layers"] = meta["layers"][:len(keep)]
    meta["trimmed_from"] = hashlib.sha256(raw).hexdigest()
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
    import os
    os.replace(out + ".partial", out)
    print(f"{out}: {len(keep)} convolutions up to {upto}, {(8 + len(head) + len(data)) / 1e6:.1f} MB (from {len(raw) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
