#!/usr/bin/env python3
"""Tests of the independent quality scoreboard (scripts/scoreboard.py). Run with its venv:

    $(bash scripts/scoreboard_env.sh) scripts/test_scoreboard.py

Fixtures: the four Solvay 1927 crops of tests/fixtures/faces (128 px, greyscale photos):
solvay_0, solvay_5 and solvay_7 (Einstein) are men, solvay_3 is Marie Curie.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCOREBOARD = os.path.join(HERE, "scoreboard.py")
FACES = ["solvay_0.png", "solvay_3.png", "solvay_5.png", "solvay_7.png"]
MEN = ["solvay_0.png", "solvay_5.png", "solvay_7.png"]


def run(*args):
    return subprocess.run([sys.executable, SCOREBOARD, *args], capture_output=True, text=True, cwd=ROOT)


def dist(a, b):
    return float(np.linalg.norm(np.array(a["scores"]["dlib-identity"]["descriptor"]) -
                                np.array(b["scores"]["dlib-identity"]["descriptor"])))


class Refusal(unittest.TestCase):
    def manifest(self, tmp, **fields):
        m = {"kind": "photos", "items": [{"file": "x.png"}], **fields}
        path = os.path.join(tmp, "m.json")
        with open(path, "w") as f:
            json.dump(m, f)
        return path

    def test_refuses_a_judge_the_images_were_optimised_against(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "s.json")
            p = run("score", self.manifest(tmp, optimised_against=["deepface-vgg16", "fer"]), "--out", out)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("refusing to score with fer", p.stderr)
            self.assertIn("optimised against it", p.stderr)
            self.assertFalse(os.path.exists(out))

    def test_refuses_a_manifest_that_does_not_say_what_it_was_optimised_against(self):
        with tempfile.TemporaryDirectory() as tmp:
            p = run("score", self.manifest(tmp), "--out", os.path.join(tmp, "s.json"))
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("optimised_against", p.stderr)


class SolvayCrops(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        items = []
        for f in FACES:
            shutil.copy(os.path.join(ROOT, "tests", "fixtures", "faces", f), cls.tmp)
            items.append({"file": f, "request": "", "wants": {}})
        img = Image.open(os.path.join(cls.tmp, "solvay_7.png")).convert("RGB")
        img.transpose(Image.FLIP_LEFT_RIGHT).save(os.path.join(cls.tmp, "mirror_7.png"))
        items.append({"file": "mirror_7.png", "request": "mirror", "wants": {}})
        ImageEnhance.Brightness(img).enhance(1.2).save(os.path.join(cls.tmp, "bright_7.png"))
        img.filter(ImageFilter.GaussianBlur(2)).save(os.path.join(cls.tmp, "blur_7.png"))
        cls.scores = cls.score({"kind": "photos", "optimised_against": [], "items": items}, "photos")
        edit = {"file": "bright_7.png", "original": "solvay_7.png", "request": "Smiling",
                "wants": {"Smiling": 1}, "face_box": [20, 28, 80, 80], "ours_before": {"Smiling": 0.1},
                "ours_after": {"Smiling": 0.2}}
        blur = dict(edit, file="blur_7.png", solve_side=64)
        # the same blurred face as if it had been solved at 16 px, where a 2 px blur is a fraction
        # of a pixel
        blur16 = dict(blur, solve_side=16, request="Smiling at 16")
        # blur16 before blur: `score` keys items by file, so the 64 px reading is the one kept there
        cls.edited = cls.score({"kind": "edited", "optimised_against": ["deepface-vgg16"], "items": [edit, blur16, blur]}, "edited")
        with open(os.path.join(cls.tmp, "edited_scores.json")) as f:
            cls.blur16 = next(it for it in json.load(f)["items"] if it["request"] == "Smiling at 16")

    @classmethod
    def score(cls, manifest, name):
        m, out = os.path.join(cls.tmp, f"{name}.json"), os.path.join(cls.tmp, f"{name}_scores.json")
        with open(m, "w") as f:
            json.dump(manifest, f)
        p = run("score", m, "--out", out)
        assert p.returncode == 0, p.stderr
        with open(out) as f:
            return {it["file"]: it for it in json.load(f)["items"]}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_both_dlib_detectors_find_the_faces(self):
        for f in FACES:
            self.assertTrue(self.scores[f]["scores"]["dlib-cnn"]["found"], f)
        # HOG: solvay_0's best window scores -0.12 against dlib's threshold 0 (found with two
        # pyramid upsamplings); the other three are clear.
        self.assertGreaterEqual(sum(self.scores[f]["scores"]["dlib-hog"]["found"] for f in FACES), 3)

    def test_identity_descriptor(self):
        self.assertTrue(all(self.scores[f]["scores"]["dlib-identity"]["identity_box"] == "cnn" for f in FACES))
        mirror = dist(self.scores["solvay_7.png"], self.scores["mirror_7.png"])
        self.assertLess(mirror, 0.6)
        pairs = [dist(self.scores[a], self.scores[b]) for i, a in enumerate(FACES) for b in FACES[i + 1:]]
        self.assertEqual(len(pairs), 6)
        # Every pair of different people is further apart than the face and its mirror image.
        # The authors' 0.6 threshold is NOT met on these small greyscale 1927 faces: the six
        # distances are 0.46-0.67, so most pairs would be called the same person (see report).
        self.assertGreater(min(pairs), mirror + 0.2)

    def test_gender(self):
        for f in MEN:
            self.assertGreater(self.scores[f]["scores"]["dlib-gender"]["p_male"], 0.5, f)
        self.assertLess(self.scores["solvay_3.png"]["scores"]["dlib-gender"]["p_male"], 0.5)  # Marie Curie

    def test_labeller_outputs_are_distributions(self):
        for f in FACES:
            s = self.scores[f]["scores"]
            self.assertAlmostEqual(sum(s["dlib-age"]["groups"].values()), 1.0, places=3)
            self.assertAlmostEqual(sum(s["fer"]["probs"].values()), 1.0, places=3)
            self.assertTrue(0 < s["dlib-age"]["age_years"] < 80)

    def test_edit_measures_and_report(self):
        e = self.edited["bright_7.png"]["edit"]
        self.assertTrue(e["same_person"])
        self.assertGreater(e["change_outside"], 5)
        self.assertGreater(e["change_inside"], 5)
        # brighter by 1.2: every difference 1.2 times larger, its variance 1.44 times (less clipping)
        self.assertTrue(1.2 < e["detail_ratio"] < 1.5, e["detail_ratio"])
        # a blurred face keeps less detail at the solve scale than the 20% the check allows
        blur = self.edited["blur_7.png"]["edit"]
        self.assertLess(blur["detail_ratio"], 0.8)
        # the manifest's solve size is the scale the detail is read at (64 when not stated)
        self.assertEqual((e["solve_side"], blur["solve_side"], self.blur16["edit"]["solve_side"]), (64, 64, 16))
        # (0.08 at 64 px, 0.52 at 16)
        self.assertGreater(self.blur16["edit"]["detail_ratio"], blur["detail_ratio"] + 0.3)
        out = os.path.join(self.tmp, "r.md")
        labels = os.path.join(self.tmp, "faces.csv")
        with open(labels, "w") as f:
            f.write("file,gender_guess,age_group_guess,skin,smiling_guess,source\nsolvay_7.png,m,middle_aged,light,n,test\n")
        p = run("report", os.path.join(self.tmp, "photos_scores.json"), os.path.join(self.tmp, "edited_scores.json"),
                "--labels", labels, "--out", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out) as f:
            text = f.read()
        self.assertIn("| Smiling | 2 |", text)
        self.assertIn("face box at 16/64 px", text)
        # both readers against the hand labels: ours read Smiling 0.1 (not smiling, as labelled)
        # and nothing of Male; the judges read a man who does not smile (P(happy) 0.33)
        self.assertIn("| Smiling | 1/1 | 1/1 | 1/1 |", text)
        self.assertIn("| Male | — | — | 1/1 |", text)
        # a labels file that is missing or not a faces.csv is refused with the reason, no traceback
        bad = os.path.join(self.tmp, "bad.csv")
        with open(bad, "w") as f:
            f.write("name,gender\nsolvay_7.png,m\n")
        for path, reason in ((os.path.join(self.tmp, "none.csv"), "cannot read the hand labels"), (bad, "has no `file` column")):
            p = run("report", os.path.join(self.tmp, "edited_scores.json"), "--labels", path, "--out", out)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(reason, p.stderr)
            self.assertNotIn("Traceback", p.stderr)
        self.assertIn("ours (optimised against; not a judge)", text)


if __name__ == "__main__":
    unittest.main()
