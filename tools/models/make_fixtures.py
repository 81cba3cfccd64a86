"""Reproduce tests/fixtures/ (and the ORL calibration set) from the shared datasets folder.

    python tools/models/make_fixtures.py [--datasets ../shared/datasets]

Only redistributable sources are used (see tests/fixtures/ATTRIBUTION.md):
- whitehouse/ (US federal government works, public domain): downscaled so the longest side is <= 800 px,
  EXIF orientation applied, saved as JPEG quality 90 without metadata; PNGs already small are copied;
- orl_faces/ (AT&T Laboratories Cambridge, credit required): a few original PGMs as fixtures, and all
  400 into tools/models/calibration/orl_faces/ for int8 calibration;
- spoof_samples/ (Apache-2.0): copied byte for byte with their LICENSE (they carry EXIF orientation 6);
- one face-free crop of a whitehouse photo (checked face-free by dlib HOG and BlazeFace at build time).
celeba_pairs, yalefaces and faces94 are never used here.
"""
import argparse
import shutil
from pathlib import Path

from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FIXTURES = REPO / "tests" / "fixtures"
CALIBRATION_ORL = HERE / "calibration" / "orl_faces"

WHITEHOUSE = ["obama/obama1.jpg", "obama/obama2.jpg", "obama/obama3.jpg", "obama/obama4.jpg",
              "biden/biden1.jpg", "biden/biden2.jpg", "group/obama_and_biden.jpg", "group/two_people.jpg",
              "hamilton/alex-lacamoire.png", "hamilton/alex-lacamoire2.jpg", "hamilton/alex-lacamoire3.jpg",
              "hamilton/lin-manuel-miranda.png"]
ORL_FIXTURES = [(s, i) for s in (1, 2, 3, 4) for i in (1, 2)]
SPOOF = ["image_T1.jpg", "image_F1.jpg", "image_F2.jpg", "LICENSE"]
# face-free region (left, top, right, bottom) of obama_and_biden.jpg in original pixels: streamers, wall
NO_FACE_SOURCE, NO_FACE_BOX = "group/obama_and_biden.jpg", (0, 760, 400, 1428)
MAX_SIDE = 800
JPEG_QUALITY = 90
PNG_MAX_BYTES = 600_000


def _downscaled(src):
    """EXIF-oriented RGB image with the longest side <= MAX_SIDE (Lanczos)."""
    with Image.open(src) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        scale = MAX_SIDE / max(im.size)
        if scale < 1:
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
        return im


def whitehouse(datasets, out):
    for rel in WHITEHOUSE:
        src = datasets / "whitehouse" / rel
        with Image.open(src) as im:
            small_png = im.format == "PNG" and max(im.size) <= MAX_SIDE and src.stat().st_size <= PNG_MAX_BYTES
        if small_png:
            shutil.copyfile(src, out / src.name)
        else:
            _downscaled(src).save(out / (src.stem + ".jpg"), "JPEG", quality=JPEG_QUALITY)


def orl(datasets, out):
    for s, i in ORL_FIXTURES:
        shutil.copyfile(datasets / "orl_faces" / f"s{s}" / f"{i}.pgm", out / f"orl_s{s}_{i}.pgm")
    if CALIBRATION_ORL.exists():
        shutil.rmtree(CALIBRATION_ORL)
    shutil.copytree(datasets / "orl_faces", CALIBRATION_ORL)


def spoof(datasets, out):
    for name in SPOOF:
        shutil.copyfile(datasets / "spoof_samples" / name, out / name)


def no_face(datasets, out):
    with Image.open(datasets / "whitehouse" / NO_FACE_SOURCE) as im:
        crop = ImageOps.exif_transpose(im).convert("RGB").crop(NO_FACE_BOX)
    crop.save(out / "no_face.jpg", "JPEG", quality=JPEG_QUALITY)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    args = ap.parse_args()
    if not (args.datasets / "orl_faces").is_dir():
        raise SystemExit(f"error: {args.datasets} has no orl_faces/; pass --datasets DIR (the shared datasets folder)")
    faces, spoof_dir = FIXTURES / "faces", FIXTURES / "spoof"
    for d in (faces, spoof_dir):
        d.mkdir(parents=True, exist_ok=True)
    whitehouse(args.datasets, faces)
    orl(args.datasets, faces)
    no_face(args.datasets, faces)
    spoof(args.datasets, spoof_dir)
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    print(f"fixtures written to {FIXTURES} ({total / 1e6:.2f} MB); ORL calibration set in {CALIBRATION_ORL}")


if __name__ == "__main__":
    main()
