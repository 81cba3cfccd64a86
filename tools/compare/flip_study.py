"""Why `--flip` (average the embeddings of the chip and its mirror image) moves TAR at low FAR.

    PY=tools/compare/.venv/bin/python
    facegate embed IMAGES... > fg.jsonl                      # facegate's landmarks for every image
    $PY tools/compare/flip_study.py fg.jsonl --pairs P.tsv --identities I.tsv --root DIR [--json]

For every image of the protocol the largest facegate face (by box area, as `facegate eval`) is cut into
dlib's chip at facegate's landmarks (dlib.get_face_chip, which facegate's aligner reproduces), and each
encoder of models/models.toml given by --encoders runs through onnxruntime on the chip and on its mirror
image. Scored per encoder, without and with flip averaging, as `facegate eval --all-impostors` scores
(pairs in fold i % 10; genuine = the protocol's same pairs; impostors = every cross-identity image pair):
10-fold accuracy, EER, and at FAR 1e-3 and 1e-4 the distance threshold and TAR. Also reported: mean
and spread of genuine and impostor distances (flip averaging shrinks both), and how many of the
impostor pairs below the 1e-4 threshold are the same two images' near-duplicates (distance < 0.3).
"""
import argparse
import json
import sys
from pathlib import Path

import dlib
import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dlib_reference as dr  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FILES = {"fp32": "dlib_face_resnet_v1.onnx", "quantized": "dlib_face_resnet_v1.int8w.onnx",
         "int8qdq": "dlib_face_resnet_v1.int8qdq.onnx"}


def read_tsv(path):
    rows = [ln.split("\t") for ln in Path(path).read_text().splitlines() if ln.strip()]
    return rows[1:] if rows and rows[0][0].startswith("image") else rows


def largest_landmarks(faces):
    if not faces:
        return None
    f = max(faces, key=lambda f: f["detection"]["width"] * f["detection"]["height"])
    return np.array([[p["x"], p["y"]] for p in f["landmarks"]], np.float64)


def chip_of(rgb, p):
    rect = dlib.rectangle(0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1)
    shape = dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in p])
    return np.asarray(dlib.get_face_chip(rgb, shape, size=150, padding=0.25))


def embed_all(images, fg, root, encoders):
    sess = {e: ort.InferenceSession(str(REPO / "models" / FILES[e]), providers=["CPUExecutionProvider"])
            for e in encoders}
    out = {e: {} for e in encoders}
    for i, rel in enumerate(images):
        path = str(Path(root) / rel)
        p = largest_landmarks(fg.get(path, []))
        if p is None:
            continue
        chip = chip_of(dr.load_rgb(path), p)
        for e, s in sess.items():
            x = np.ascontiguousarray(chip.astype(np.float32).transpose(2, 0, 1)[None])
            xm = np.ascontiguousarray(x[:, :, :, ::-1])
            name = s.get_inputs()[0].name
            out[e][rel] = (s.run(None, {name: x})[0][0], s.run(None, {name: xm})[0][0])
        if i % 300 == 0:
            print(f"{i}/{len(images)}", file=sys.stderr)
    return out


def figures(emb, pairs, ident, probe=None):
    """Figures with `emb` on both sides, or `emb` enrolled (first image of a pair, rows of the impostor
    matrix) against `probe` (second image, columns) when given."""
    probe = emb if probe is None else probe
    d, same, fold = [], [], []
    for i, (a, b, s) in enumerate(pairs):
        if a in emb and b in emb:
            d.append(np.linalg.norm(emb[a] - probe[b]))
            same.append(s == "1")
            fold.append(i % dr.FOLDS)
    d, same, fold = np.array(d), np.array(same), np.array(fold)
    names = sorted(k for k in emb if k in ident)
    m = np.stack([emb[k] for k in names])
    q = np.stack([probe[k] for k in names])
    ids = np.array([ident[k] for k in names])
    dist = np.sqrt(np.maximum(np.sum(m * m, 1)[:, None] + np.sum(q * q, 1)[None] - 2 * m @ q.T, 0))
    iu = np.triu_indices(len(names), 1)
    imp = dist[iu][ids[iu[0]] != ids[iu[1]]]
    gen = d[same]
    acc, sd, _ = dr.kfold(d, same, fold)
    thr, far, tar = dr.roc(gen, imp)
    e, et = dr.eer(thr, far, tar)
    out = {"pairs": int(len(d)), "acc": round(acc, 4), "acc_sd": round(sd, 4), "eer": round(e, 4),
           "impostors": int(len(imp)),
           "genuine_mean": round(float(gen.mean()), 4), "genuine_sd": round(float(gen.std()), 4),
           "impostor_mean": round(float(imp.mean()), 4), "impostor_sd": round(float(imp.std()), 4),
           "dprime": round(float((imp.mean() - gen.mean()) / np.sqrt((imp.var() + gen.var()) / 2)), 3)}
    out["impostors_below_0.3"] = int(np.sum(imp < 0.3))
    accepted = {}
    for f in (1e-3, 1e-4):
        r = dr.tar_at_far(gen, imp, f)
        if r:
            out[f"tar@{f:g}"], out[f"thr@{f:g}"] = round(r[0], 4), round(r[1], 4)
            accepted[f] = gen < r[1]
    return out, accepted


def paired(base, other):
    """Genuine pairs accepted by `other` and not `base` (gained) and the reverse (lost), per FAR."""
    return {f"{f:g}": {"gained": int(np.sum(other[f] & ~base[f])), "lost": int(np.sum(base[f] & ~other[f]))}
            for f in base if f in other}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("facegate", help="JSON lines of `facegate embed` over the protocol's images")
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--identities", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--encoders", default="quantized,fp32")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    fg = {}
    for ln in Path(args.facegate).read_text().splitlines():
        if ln.startswith("{"):
            v = json.loads(ln)
            fg[str(v["image"])] = v.get("faces", [])
    pairs = [(a, b, s) for a, b, s in read_tsv(args.pairs)]
    ident = {a: b for a, b in read_tsv(args.identities)}
    encoders = args.encoders.split(",")
    embs = embed_all(sorted(ident), fg, args.root, encoders)
    result = {}
    for e in encoders:
        plain = {k: v[0] for k, v in embs[e].items()}
        flip = {k: (v[0] + v[1]) / 2 for k, v in embs[e].items()}
        mirror = {k: v[1] for k, v in embs[e].items()}
        runs = {"plain": figures(plain, pairs, ident), "flip": figures(flip, pairs, ident),
                "mirror_only": figures(mirror, pairs, ident),
                "flip_enrolled_only": figures(flip, pairs, ident, probe=plain)}
        result[e] = {k: v[0] for k, v in runs.items()}
        result[e]["images"] = len(plain)
        result[e]["flip_vs_plain_genuine_pairs"] = paired(runs["plain"][1], runs["flip"][1])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
