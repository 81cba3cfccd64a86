"""How far facegate's landmarks (BlazeFace box -> mapped rectangle -> dlib's 5-point predictor) are from
dlib's own (HOG rectangle -> the same predictor), and what that costs in chips and descriptors.

    PY=tools/compare/.venv/bin/python
    $PY tools/compare/landmark_error.py ref --out /tmp/lm/ref.json IMAGES...      # dlib's side, once
    facegate embed --encoder fp32 IMAGES... > /tmp/lm/fg.jsonl                     # facegate's side
    $PY tools/compare/landmark_error.py compare --ref /tmp/lm/ref.json --facegate /tmp/lm/fg.jsonl [--simulate] [--json]

ref: for each image, dlib's HOG detector (upsample 1, or 2 when 1 finds nothing), the 5 landmarks of the
predictor on each HOG rectangle, the face chip (get_face_chip, 150 px, padding 0.25) and dlib's ResNet
descriptor of that chip.

compare: each dlib face is matched to the facegate face whose box contains the HOG rectangle's centre
(nearest box centre if several). Per face, with IOD = the distance between dlib's two eye centres
(mean of points 0-1 and 2-3):
- landmark error: mean and max over the 5 points of |facegate point - dlib point| / IOD;
- chip RMS: root mean square difference, in grey levels (0-255), between dlib's chip cut at facegate's
  landmarks and dlib's chip cut at dlib's landmarks (the chip the encoder sees);
- descriptor L2 (landmarks only): dlib's ResNet on the chip from facegate's landmarks vs dlib's descriptor,
  so the encoder (int8, tract) plays no part;
- embedding L2 (whole pipeline): facegate's own embedding (from the JSON) vs dlib's descriptor.
Figures per set (the first folder under the datasets root, else the image's parent folder) and overall.

--simulate re-runs the predictor (dlib's, which facegate's port matches exactly on the same pixels) from
facegate's detections with alternative rectangle rules (--variants), to compare rules before porting one:
  mapped:    --coef, the box mapping alone (one pass; `facegate embed --no-landmark-refit`);
  second:    a second pass on the rectangle re-derived from the first pass's landmarks by --landmark-rect
             (dlib's rectangle-from-landmarks relation, as `fit` prints it; models.toml refit_* with
             side_iod = refit_side_eyes, side_nose = refit_side_nose, dx/dy = refit_offset_x/y);
  third:     one more such pass;
  keypoints: a rectangle from BlazeFace's eye, nose and mouth keypoints, fitted in-sample on the matched faces.
Descriptors of the simulated rules only with --desc-all (slow).
`fit` fits the rectangle-from-landmarks relation on dlib's own (rectangle, landmarks) pairs of REF.
"""
import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import dlib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dlib_reference as dr  # noqa: E402

CHIP = dict(size=150, padding=0.25)


def set_name(path):
    parts = Path(path).parts
    if "datasets" in parts:
        return parts[parts.index("datasets") + 1]
    return Path(path).parent.name


def points(shape):
    return np.array([[shape.part(k).x, shape.part(k).y] for k in range(shape.num_parts)], np.float64)


def iod(p):
    return float(np.linalg.norm(p[0:2].mean(0) - p[2:4].mean(0)))


# ---------------------------------------------------------------- rectangle rules

def rect_geometry(rect):
    l, t, r, b = rect
    return np.array([(l + r + 1) / 2, (t + b + 1) / 2, r - l + 1], np.float64)


def to_rect(cx, cy, side):
    side = max(round(side), 1)
    left, top = round(cx - side / 2), round(cy - side / 2)
    return dlib.rectangle(int(left), int(top), int(left + side - 1), int(top + side - 1))


def landmark_features(p):
    """(centre of the 5 points, eye-centre distance, eye-mid to nose distance)."""
    eyes = (p[0:2].mean(0) + p[2:4].mean(0)) / 2
    return p.mean(0), iod(p), float(np.linalg.norm(eyes - p[4]))


def fit_square(samples):
    """dlib's square rectangle from point features: centre = points' centre + (dx, dy) * side,
    side = s1 * f1 + s2 * f2; least squares on ((centre, f1, f2), dlib rect) samples.
    Returns (s1, s2, dx, dy)."""
    rows, side, dx, dy = [], [], [], []
    for (c, f1, f2), rect in samples:
        g = rect_geometry(rect)
        rows.append([f1, f2])
        side.append(g[2])
        dx.append(g[0] - c[0])
        dy.append(g[1] - c[1])
    a = np.linalg.lstsq(np.array(rows), np.array(side), rcond=None)[0]
    side = np.array(side)
    return (float(a[0]), float(a[1]),
            float(np.sum(np.array(dx) * side) / np.sum(side ** 2)),
            float(np.sum(np.array(dy) * side) / np.sum(side ** 2)))


def square_at(features, s1, s2, dx, dy):
    c, f1, f2 = features
    side = s1 * f1 + s2 * f2
    return to_rect(c[0] + dx * side, c[1] + dy * side, side)


def fit_landmark_rect(faces):
    """dlib's rectangle from its own 5 points (f1 = eye distance, f2 = eye-mid to nose)."""
    s1, s2, dx, dy = fit_square([(landmark_features(p), rect) for rect, p in faces])
    return {"side_iod": s1, "side_nose": s2, "dx": dx, "dy": dy}


def landmark_rect(p, k):
    return square_at(landmark_features(p), k["side_iod"], k["side_nose"], k["dx"], k["dy"])


def mapped_rect(det, coef):
    cx, cy = det["x"] + det["width"] / 2, det["y"] + det["height"] / 2
    w, h = det["width"], det["height"]
    return to_rect(cx + coef["box_offset_x"] * w, cy + coef["box_offset_y"] * h, coef["box_scale"] * w)


# ---------------------------------------------------------------- commands

def cmd_ref(args):
    ref = dr.Reference()
    out = {}
    if args.list:
        args.images += [ln for ln in Path(args.list).read_text().splitlines() if ln.strip()]
    for i, path in enumerate(args.images):
        try:
            rgb = dr.load_rgb(path)
        except Exception as e:  # noqa: BLE001  (Readme.txt in yalefaces)
            print(f"skip {path}: {e}", file=sys.stderr)
            continue
        faces = []
        for up in (1, 2):
            rects = ref.detector(rgb, up)
            if len(rects):
                break
        for r in rects:
            shape = ref.landmarks(rgb, r)
            chip = ref.chip(rgb, shape)
            faces.append({"rect": [r.left(), r.top(), r.right(), r.bottom()], "upsample": up,
                          "landmarks": points(shape).tolist(),
                          "descriptor": ref.descriptor(chip).round(7).tolist()})
        out[str(path)] = faces
        if i % 200 == 0:
            print(f"{i}/{len(args.images)}", file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out))


def load_refs(paths):
    out = {}
    for p in paths:
        out.update(json.loads(Path(p).read_text()))
    return out


def load_facegate(paths):
    fg = {}
    for line in (ln for p in paths for ln in Path(p).read_text().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            v = json.loads(line)
            fg[str(v["image"])] = v.get("faces", [])
    return fg


def match(ref_face, faces):
    g = rect_geometry(ref_face["rect"])
    best, dist = None, np.inf
    for f in faces:
        d = f["detection"]
        if d["x"] <= g[0] <= d["x"] + d["width"] and d["y"] <= g[1] <= d["y"] + d["height"]:
            c = np.array([d["x"] + d["width"] / 2, d["y"] + d["height"] / 2])
            dd = np.linalg.norm(c - g[:2])
            if dd < dist:
                best, dist = f, dd
    return best


def fg_points(face):
    return np.array([[p["x"], p["y"]] for p in face["landmarks"]], np.float64)


def shape_of(rect, p):
    return dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in p])


def measure(ref, rgb, rf, p, need_desc=True):
    """Figures for landmarks `p` against dlib's face `rf`."""
    q = np.array(rf["landmarks"], np.float64)
    e = np.linalg.norm(p - q, axis=1) / iod(q)
    r = dlib.rectangle(*rf["rect"])
    chip_ref = np.asarray(dlib.get_face_chip(rgb, shape_of(r, q), **CHIP), np.float64)
    chip = np.asarray(dlib.get_face_chip(rgb, shape_of(r, p), **CHIP))
    rms = float(np.sqrt(np.mean((chip.astype(np.float64) - chip_ref) ** 2)))
    out = {"nme": float(e.mean()), "max": float(e.max()), "chip_rms": rms}
    if need_desc:
        out["desc_l2"] = float(np.linalg.norm(ref.descriptor(chip) - np.array(rf["descriptor"])))
    return out


def summarise(rows):
    keys = [k for k in rows[0] if k != "set"] if rows else []
    by = defaultdict(list)
    for r in rows:
        by[r["set"]].append(r)
        by["ALL"].append(r)
    out = {}
    for s, rs in sorted(by.items()):
        out[s] = {"faces": len(rs)}
        for k in keys:
            v = np.array([r[k] for r in rs if k in r])
            if len(v):
                out[s][k] = {"mean": round(float(v.mean()), 4), "p95": round(float(np.percentile(v, 95)), 4),
                             "max": round(float(v.max()), 4)}
        if "max" in keys:
            out[s]["share_max_over_0.1"] = round(float(np.mean([r["max"] > 0.1 for r in rs])), 4)
    return out


def cmd_fit(args):
    refs = load_refs(args.ref)
    faces = [(f["rect"], np.array(f["landmarks"], np.float64)) for fs in refs.values() for f in fs]
    k = fit_landmark_rect(faces)
    print(json.dumps(k))
    # how well the relation reproduces dlib's own rectangles, and the landmarks from them
    pred = dlib.shape_predictor(str(dr.PREDICTOR))
    errs, sides = [], []
    for path, fs in list(refs.items())[:: args.every]:
        rgb = dr.load_rgb(path)
        for f in fs:
            q = np.array(f["landmarks"], np.float64)
            r = landmark_rect(q, k)
            g = rect_geometry(f["rect"])
            sides.append(abs(r.width() - g[2]) / g[2])
            errs.append(np.linalg.norm(points(pred(rgb, r)) - q, axis=1).mean() / iod(q))
    print(f"side error {np.mean(sides):.4f}; landmarks from the re-derived rect of dlib's own points: "
          f"NME {np.mean(errs):.4f}")


def keypoint_features(det):
    """BlazeFace keypoints: (centre of eyes, nose, mouth; eye distance; eye-mid to mouth distance)."""
    k = np.array(det["keypoints"], np.float64)
    eyes = (k[0] + k[1]) / 2
    return k[:4].mean(0), float(np.linalg.norm(k[0] - k[1])), float(np.linalg.norm(eyes - k[3]))


def fit_keypoint_rect(pairs):
    """dlib's rectangle from BlazeFace's keypoints (f1 = eye distance, f2 = eye-mid to mouth)."""
    s1, s2, dx, dy = fit_square([(keypoint_features(det), rect) for det, rect in pairs])
    return {"side_eyes": s1, "side_mouth": s2, "dx": dx, "dy": dy}


def keypoint_rect(det, k):
    return square_at(keypoint_features(det), k["side_eyes"], k["side_mouth"], k["dx"], k["dy"])


def cmd_compare(args):
    refs = load_refs(args.ref)
    fg = load_facegate(args.facegate)
    ref = dr.Reference()
    pred = ref.predictor
    coef = json.loads(args.coef) if args.coef else None
    lrect = json.loads(args.landmark_rect) if args.landmark_rect else None
    matched, unmatched = [], defaultdict(int)
    for path, rfs in refs.items():
        if path not in fg:
            continue
        for rf in rfs:
            face = match(rf, fg[path])
            if face is None:
                unmatched[set_name(path)] += 1
            else:
                matched.append((path, rf, face))
    kp = fit_keypoint_rect([(f["detection"], rf["rect"]) for _, rf, f in matched]) if args.simulate else None
    rows = defaultdict(list)
    for path, rf, face in matched:
        rgb = dr.load_rgb(path)
        s = set_name(path)
        m = measure(ref, rgb, rf, fg_points(face), need_desc=not args.no_desc)
        if face.get("embedding") is not None:
            m["emb_l2"] = float(np.linalg.norm(np.array(face["embedding"]) - np.array(rf["descriptor"])))
        rows["facegate"].append({"set": s, **m})
        if not args.simulate:
            continue
        det = face["detection"]
        nd = args.desc_all
        variants = args.variants.split(",")
        p1 = points(pred(rgb, mapped_rect(det, coef)))
        if "mapped" in variants:
            rows["mapped"].append({"set": s, **measure(ref, rgb, rf, p1, nd)})
        p2 = points(pred(rgb, landmark_rect(p1, lrect)))
        if "second" in variants:
            rows["second"].append({"set": s, **measure(ref, rgb, rf, p2, nd)})
        if "third" in variants:
            p3 = points(pred(rgb, landmark_rect(p2, lrect)))
            rows["third"].append({"set": s, **measure(ref, rgb, rf, p3, nd)})
        if "keypoints" in variants:
            pk = points(pred(rgb, keypoint_rect(det, kp)))
            rows["keypoints"].append({"set": s, **measure(ref, rgb, rf, pk, nd)})
    result = {name: summarise(r) for name, r in rows.items()}
    result["unmatched"] = dict(unmatched)
    result["keypoint_rect"] = kp
    print(json.dumps(result, indent=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("ref")
    a.add_argument("--out", required=True)
    a.add_argument("--list", help="a file of image paths, one per line (added to IMAGES)")
    a.add_argument("images", nargs="*")
    b = sub.add_parser("compare")
    b.add_argument("--ref", nargs="+", required=True, help="outputs of `ref`")
    b.add_argument("--facegate", nargs="+", required=True, help="JSON lines of `facegate embed`")
    b.add_argument("--simulate", action="store_true")
    b.add_argument("--no-desc", action="store_true", help="skip the descriptor of facegate's own landmarks")
    b.add_argument("--desc-all", action="store_true", help="descriptors for the simulated rules too (slow)")
    b.add_argument("--coef", help='JSON {"box_scale":..,"box_offset_x":..,"box_offset_y":..}')
    b.add_argument("--landmark-rect", help="JSON from `fit`")
    b.add_argument("--variants", default="mapped,second,third,keypoints", help="rules to simulate")
    c = sub.add_parser("fit")
    c.add_argument("--ref", nargs="+", required=True)
    c.add_argument("--every", type=int, default=1)
    args = ap.parse_args()
    {"ref": cmd_ref, "compare": cmd_compare, "fit": cmd_fit}[args.cmd](args)


if __name__ == "__main__":
    main()
