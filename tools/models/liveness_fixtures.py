"""Write tests/fixtures/liveness/: MiniFASNet reference crops and onnxruntime logits on real photos.

    tools/models/.venv/bin/python tools/models/liveness_fixtures.py [--check]

For each image below: BlazeFace short-range (models/, decoded as tools/models/blazeface.py does, whole
image letterboxed) gives the best face box; for each model (v2, v1se) the upstream crop (crop_scale about
the box centre, clamped inside the frame, 80x80 cv2-style bilinear) is saved as an RGB PNG and run through
onnxruntime (1 thread). reference.json lists every (image, model) with the box, crop box, crop file,
logits and live probability. --check recomputes everything and exits 1 on any difference from the files
(PNG pixels exact; logits within 1e-5).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

import blazeface
import evaluate
import manifest
import minifasnet as mf
from faces import load_rgb

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FIXTURES = REPO / "tests" / "fixtures"
OUT = FIXTURES / "liveness"
MODELS_DIR = REPO / "models"

IMAGES = ["spoof/image_T1.jpg", "spoof/image_F1.jpg", "spoof/image_F2.jpg", "faces/obama1.jpg",
          "faces/biden2.jpg", "faces/alex-lacamoire2.jpg", "faces/orl_s1_1.pgm"]
EXPECTED = {"spoof/image_T1.jpg": "live", "spoof/image_F1.jpg": "print", "spoof/image_F2.jpg": "tablet"}

ABOUT = (
    "MiniFASNet reference results by tools/models/liveness_fixtures.py. image: path under tests/fixtures, "
    "decoded as the Rust image crate does (EXIF orientation applied; grey replicated to RGB). box = [x, y, w, h] "
    "in pixels: the highest-scoring BlazeFace short-range detection on the whole image (letterboxed to 128, "
    "weighted NMS), x = cx - w/2, y = cy - h/2, rounded to 1e-3 (these rounded values are the ones used). "
    "crop_box = [x1, y1, x2, y2] inclusive, upstream CropImage._get_new_box: s = min((H-1)/h, (W-1)/w, "
    "crop_scale); box of size w*s x h*s about (x + w/2, y + h/2); shifted back inside [0, W-1] x [0, H-1]; "
    "int() of each corner. crop = the 80x80 RGB PNG of img[y1:y2+1, x1:x2+1] resized like cv2.resize "
    "INTER_LINEAR bit for bit (tools/models/minifasnet.py resize_bilinear: half-pixel centres, no antialias, "
    "weights round(w*2048); columns clamp the position at the edges, rows clamp only the row indices; "
    "h = p0*a0 + p1*a1; v = ((h0 >> 4)*b0 >> 16) + ((h1 >> 4)*b1 >> 16); pixel = clamp((v + 2) >> 2, 0, 255)). "
    "Model input: the crop as BGR, 0..255 float32, NCHW [1, 3, 80, 80]. logits: onnxruntime CPU, 1 thread, on "
    "the PNG's pixels; live_prob = softmax(logits)[1].")


def best_box(sess, rgb):
    dets = blazeface.detect(sess, rgb, blazeface.SHORT)
    if not dets:
        return None
    return mf.detector_box(max(dets, key=lambda d: d[0]))


def sessions(models_dir=MODELS_DIR):
    man = manifest.load(models_dir / "models.toml")
    det = evaluate.session(models_dir / man["detector"]["short_range"]["file"])
    return det, {m.key: evaluate.session(models_dir / m.file) for m in mf.MODELS}


def compute(models_dir=MODELS_DIR):
    """[(entry dict, crop uint8)] for every image and model."""
    det, pad = sessions(models_dir)
    out = []
    for rel in IMAGES:
        rgb = load_rgb(FIXTURES / rel)
        box = best_box(det, rgb)
        if box is None:
            raise SystemExit(f"error: BlazeFace found no face in {rel}")
        stem = Path(rel).stem
        for m in mf.MODELS:
            crop, cbox = mf.crop(rgb, box, m.crop_scale)
            logits = pad[m.key].run(None, {"input": mf.to_input(crop)})[0][0]
            prob = mf.softmax(logits)[mf.LIVE_CLASS]
            out.append(({"image": rel, "model": m.key, "box": list(box), "crop_box": list(cbox),
                         "crop": f"{stem}_{m.key}.png", "logits": [round(float(v), 6) for v in logits],
                         "live_prob": round(float(prob), 6)}, crop))
    return out


def timings(models_dir=MODELS_DIR, runs=200):
    """Median onnxruntime ms per model on each fixture crop, 1 thread."""
    result = {}
    crops = [(e, c) for e, c in compute(models_dir)]
    for m in mf.MODELS:
        per = [evaluate.median_ms(models_dir / m.file, {"input": mf.to_input(c)}, runs=runs)
               for e, c in crops if e["model"] == m.key]
        result[m.key] = {"median_ms": round(float(np.median(per)), 3), "min_ms": round(min(per), 3),
                         "max_ms": round(max(per), 3), "crops": len(per)}
    return result


def document(entries):
    return {"about": ABOUT, "onnxruntime_version": ort.__version__, "entries": entries}


def write(results):
    OUT.mkdir(parents=True, exist_ok=True)
    for entry, crop in results:
        Image.fromarray(crop, "RGB").save(OUT / entry["crop"], format="PNG")
    doc = document([e for e, _ in results])
    (OUT / "reference.json").write_text(json.dumps(doc, indent=1) + "\n")


def check(results):
    doc = json.loads((OUT / "reference.json").read_text())
    old = {(e["image"], e["model"]): e for e in doc["entries"]}
    problems = []
    for entry, crop in results:
        ref = old.get((entry["image"], entry["model"]))
        if ref is None:
            problems.append(f"{entry['image']} {entry['model']}: missing from reference.json")
            continue
        for key in ("box", "crop_box", "crop"):
            if ref[key] != entry[key]:
                problems.append(f"{entry['crop']}: {key} {entry[key]} != committed {ref[key]}")
        png = np.asarray(Image.open(OUT / entry["crop"]).convert("RGB"))
        if not np.array_equal(png, crop):
            problems.append(f"{entry['crop']}: pixels differ from the recomputed crop")
        diff = np.abs(np.array(ref["logits"]) - np.array(entry["logits"])).max()
        if diff > 1e-5:
            problems.append(f"{entry['crop']}: logits differ by {diff:.2g}")
    if problems:
        raise SystemExit("liveness fixtures differ:\n  " + "\n  ".join(problems))
    print(f"liveness fixtures OK ({len(results)} crops)")


def summary(results):
    by_image = {}
    for e, _ in results:
        by_image.setdefault(e["image"], {})[e["model"]] = e["live_prob"]
    for image, p in by_image.items():
        print(f"  {image:28} {EXPECTED.get(image, 'photo'):6} v2 {p['v2']:.4f}  v1se {p['v1se']:.4f}  "
              f"mean {(p['v2'] + p['v1se']) / 2:.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed fixtures instead of writing")
    ap.add_argument("--timings", action="store_true", help="also time each model on each crop (1 thread)")
    args = ap.parse_args()
    results = compute()
    summary(results)
    if args.check:
        check(results)
    else:
        write(results)
        print(f"wrote {OUT}: {len(results)} crops and reference.json")
    if args.timings:
        print(json.dumps(timings(), indent=1))


if __name__ == "__main__":
    sys.exit(main())
