"""Local, out-of-sample evaluation on CelebA pairs (never calibration, never committed).

    tools/models/.venv/bin/python tools/models/local_eval.py [--datasets ../shared/datasets]

CelebA is for non-commercial research only: this script reads it in place and prints figures; it writes
nothing into the repository. For each image of celeba_pairs/pairs.tsv: dlib's pipeline on the largest HOG
face; then verification accuracy at 0.6 for dlib and each ONNX encoder, L2 and flipped decisions of the
int8 files against fp32, and the BlazeFace -> dlib rect mapping's effect on landmarks and descriptors.
"""
import argparse
import csv
import json
from pathlib import Path

import numpy as np

import boxmap
import evaluate
import manifest
from faces import DlibPipeline, load_rgb

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
MODELS = REPO / "models"
INPUTS = HERE / "build" / "inputs"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N pairs of each label (0 = all)")
    args = ap.parse_args()
    root = args.datasets / "celeba_pairs"
    with open(root / "pairs.tsv") as f:
        pairs = [(r["image_a"], r["image_b"], r["same"] == "1") for r in csv.DictReader(f, delimiter="\t")]
    if args.limit:
        pairs = [p for p in pairs if p[2]][:args.limit] + [p for p in pairs if not p[2]][:args.limit]
    man = manifest.load(MODELS / "models.toml")
    coef = {k: man["landmarks"][k] for k in ("box_scale", "box_offset_x", "box_offset_y")}
    pipeline = DlibPipeline(INPUTS / "shape_predictor_5_face_landmarks.dat",
                            INPUTS / "dlib_face_recognition_resnet_model_v1.dat")
    short = evaluate.session(MODELS / man["detector"]["short_range"]["file"])
    encoders = {k: evaluate.session(MODELS / v["file"]) for k, v in man["encoder"].items()}

    names = sorted({n for a, b, _ in pairs for n in (a, b)})
    chips, mapped_samples, found = {}, [], {}
    for name in names:
        rgb = load_rgb(root / "images" / name)
        faces = pipeline.faces(rgb)
        if not faces:
            continue
        face = max(faces, key=lambda fc: (fc.rect[2] - fc.rect[0]) * (fc.rect[3] - fc.rect[1]))
        chips[name] = face.chip
        found[name] = pipeline.descriptor(face.chip)
        box = boxmap.blazeface_box(short, rgb, face.rect)
        if box is not None:
            mapped_samples.append((rgb, face.rect, face.landmarks, found[name], box))
    order = sorted(chips)
    index = {n: i for i, n in enumerate(order)}
    stack = np.stack([chips[n] for n in order])
    emb = {"dlib": np.stack([found[n] for n in order])}
    emb.update({k: evaluate.embed(s, stack) for k, s in encoders.items()})

    usable = [(index[a], index[b], same) for a, b, same in pairs if a in index and b in index]
    ia, ib, same = (np.array(x) for x in zip(*usable))
    report = {"images": len(names), "faces": len(order), "pairs": len(pairs), "pairs_usable": len(usable)}
    for key, e in emb.items():
        d = np.linalg.norm(e[ia] - e[ib], axis=1)
        report[f"accuracy_{key}"] = float(((d < evaluate.THRESHOLD) == same).mean())
        if key not in ("dlib", "fp32"):
            d_fp = np.linalg.norm(emb["fp32"][ia] - emb["fp32"][ib], axis=1)
            l2 = np.linalg.norm(e - emb["fp32"], axis=1)
            report[f"{key}_vs_fp32"] = {"l2_mean": float(l2.mean()), "l2_max": float(l2.max()),
                                        "protocol_pairs_flipped": int(((d < 0.6) != (d_fp < 0.6)).sum())}
    report["fp32_vs_dlib_l2_max"] = float(np.linalg.norm(emb["fp32"] - emb["dlib"], axis=1).max())
    report["box_mapping_without"] = boxmap.measure(mapped_samples, boxmap.IDENTITY, pipeline)
    report["box_mapping_with"] = boxmap.measure(mapped_samples, coef, pipeline)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
