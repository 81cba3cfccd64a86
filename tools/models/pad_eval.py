"""Cross-check of MiniFASNet's per-frame error rates on nuaa_dev (onnxruntime + BlazeFace, no Rust).

    tools/models/.venv/bin/python tools/models/pad_eval.py [--datasets ../shared/datasets] [--json OUT]

The Rust `facegate eval-pad` is the authority; this is the independent Python figure. Reads
<datasets>/nuaa_dev/{live,print}/<subject>/*.jpg (research use only: nothing is written into the
repository; --json writes where you say). Per frame: the best BlazeFace short-range box on the whole
frame, the upstream crop per model (minifasnet.crop), onnxruntime (1 thread), live probability = softmax[1].
Scores: v2, v1se and their mean. ISO/IEC 30107-3 terms, attack = accepted when score >= threshold:
APCER = attack frames accepted / attack frames, BPCER = live frames rejected / live frames.
- at threshold 0.5 and at the argmax rule (upstream: argmax of the summed class probabilities == live);
- BPCER at APCER <= 5% and <= 1% (threshold: the lowest that keeps APCER within the target);
- leave-one-subject-out: for each subject, the APCER <= 1% threshold chosen on the other subjects,
  APCER/BPCER on the held-out subject's frames.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import blazeface
import evaluate
import minifasnet as mf
from faces import load_rgb

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PERCENTILES = (0, 1, 5, 25, 50, 75, 95, 99, 100)
SCORERS = ("v2", "v1se", "mean")


def frames(root):
    """[(kind, subject, path)] for kind in live/print, sorted."""
    out = []
    for kind in ("live", "print"):
        for subject in sorted(p for p in (root / kind).iterdir() if p.is_dir()):
            out.extend((kind, subject.name, f) for f in sorted(subject.glob("*.jpg")))
    return out


def score_frames(items, models_dir):
    det = evaluate.session(models_dir / f"{blazeface.SHORT.stem}.onnx")
    pad = {m.key: evaluate.session(models_dir / m.file) for m in mf.MODELS}
    rows, missed, times = [], [], {m.key: [] for m in mf.MODELS}
    for i, (kind, subject, path) in enumerate(items):
        rgb = load_rgb(path)
        dets = blazeface.detect(det, rgb, blazeface.SHORT)
        if not dets:
            missed.append(str(path.name))
            continue
        box = mf.detector_box(max(dets, key=lambda d: d[0]))
        probs = {}
        for m in mf.MODELS:
            crop, _ = mf.crop(rgb, box, m.crop_scale)
            x = mf.to_input(crop)
            t0 = time.perf_counter()
            logits = pad[m.key].run(None, {"input": x})[0][0]
            times[m.key].append(time.perf_counter() - t0)
            probs[m.key] = mf.softmax(logits)
        rows.append({"kind": kind, "subject": subject, "file": path.name, "v2": probs["v2"],
                     "v1se": probs["v1se"]})
        if (i + 1) % 100 == 0:
            print(f"  {i + 1}/{len(items)} frames", file=sys.stderr, flush=True)
    return rows, missed, {k: float(np.median(v) * 1e3) for k, v in times.items()}


def live_scores(rows, scorer):
    if scorer == "mean":
        return np.array([(r["v2"][1] + r["v1se"][1]) / 2 for r in rows])
    return np.array([r[scorer][1] for r in rows])


def argmax_live(rows, scorer):
    if scorer == "mean":
        return np.array([np.argmax(r["v2"] + r["v1se"]) == mf.LIVE_CLASS for r in rows])
    return np.array([np.argmax(r[scorer]) == mf.LIVE_CLASS for r in rows])


def rates(live_accept, attack_accept):
    """(APCER, BPCER) from boolean acceptance arrays."""
    apcer = float(np.mean(attack_accept)) if len(attack_accept) else float("nan")
    bpcer = float(1 - np.mean(live_accept)) if len(live_accept) else float("nan")
    return apcer, bpcer


def threshold_for_apcer(attack, target):
    """Lowest threshold t (accept when score >= t) with APCER = mean(attack >= t) <= target."""
    desc = np.sort(attack)[::-1]
    k = int(np.floor(target * len(desc) + 1e-9))  # attack frames allowed through
    if k >= len(desc):
        return 0.0
    return float(np.nextafter(desc[k], np.inf))


def evaluate_scorer(rows, scorer):
    live = [r for r in rows if r["kind"] == "live"]
    attack = [r for r in rows if r["kind"] == "print"]
    s_live, s_attack = live_scores(live, scorer), live_scores(attack, scorer)
    out = {"live_percentiles": dict(zip(map(str, PERCENTILES), np.round(np.percentile(s_live, PERCENTILES), 4).tolist())),
           "print_percentiles": dict(zip(map(str, PERCENTILES), np.round(np.percentile(s_attack, PERCENTILES), 4).tolist()))}
    out["at_0.5"] = dict(zip(("apcer", "bpcer"), rates(s_live >= 0.5, s_attack >= 0.5)))
    out["argmax"] = dict(zip(("apcer", "bpcer"), rates(argmax_live(live, scorer), argmax_live(attack, scorer))))
    for target in (0.05, 0.01):
        t = threshold_for_apcer(s_attack, target)
        apcer, bpcer = rates(s_live >= t, s_attack >= t)
        out[f"apcer_{target:g}"] = {"threshold": round(t, 6), "apcer": apcer, "bpcer": bpcer}
    out["loso"] = leave_one_subject_out(rows, scorer)
    return out


def leave_one_subject_out(rows, scorer, target=0.01):
    subjects = sorted({r["subject"] for r in rows})
    per, accepted_attack, rejected_live, n_attack, n_live = {}, 0, 0, 0, 0
    for s in subjects:
        train_attack = live_scores([r for r in rows if r["subject"] != s and r["kind"] == "print"], scorer)
        t = threshold_for_apcer(train_attack, target)
        h_live = live_scores([r for r in rows if r["subject"] == s and r["kind"] == "live"], scorer)
        h_attack = live_scores([r for r in rows if r["subject"] == s and r["kind"] == "print"], scorer)
        apcer, bpcer = rates(h_live >= t, h_attack >= t)
        per[s] = {"threshold": round(t, 6), "apcer": apcer, "bpcer": bpcer, "live": len(h_live),
                  "print": len(h_attack)}
        accepted_attack += int((h_attack >= t).sum())
        rejected_live += int((h_live < t).sum())
        n_attack += len(h_attack)
        n_live += len(h_live)
    thresholds = [v["threshold"] for v in per.values()]
    return {"target_apcer": target, "per_subject": per,
            "pooled_apcer": accepted_attack / n_attack, "pooled_bpcer": rejected_live / n_live,
            "max_subject_apcer": max(v["apcer"] for v in per.values()),
            "max_subject_bpcer": max(v["bpcer"] for v in per.values()),
            "threshold_range": [min(thresholds), max(thresholds)]}


def pct(x):
    return f"{100 * x:5.1f}%"


def report(result):
    print(f"nuaa_dev: {result['frames']['live']} live, {result['frames']['print']} print frames scored; "
          f"{len(result['no_face'])} without a BlazeFace face; onnxruntime {result['onnxruntime_version']}, "
          f"median ms per crop (1 thread): " + ", ".join(f"{k} {v:.2f}" for k, v in result["ms_per_crop"].items()))
    for scorer in SCORERS:
        r = result["scorers"][scorer]
        print(f"\n[{scorer}]")
        print("  live  prob percentiles " + " ".join(f"p{k}={v:.3f}" for k, v in r["live_percentiles"].items()))
        print("  print prob percentiles " + " ".join(f"p{k}={v:.3f}" for k, v in r["print_percentiles"].items()))
        for key in ("at_0.5", "argmax"):
            print(f"  {key:8}  APCER {pct(r[key]['apcer'])}  BPCER {pct(r[key]['bpcer'])}")
        for key in ("apcer_0.05", "apcer_0.01"):
            v = r[key]
            print(f"  {key:10} threshold {v['threshold']:.4f}  APCER {pct(v['apcer'])}  BPCER {pct(v['bpcer'])}")
        lo = r["loso"]
        print(f"  leave-one-subject-out (APCER <= 1% on the others): pooled APCER {pct(lo['pooled_apcer'])} "
              f"BPCER {pct(lo['pooled_bpcer'])}; worst subject APCER {pct(lo['max_subject_apcer'])} "
              f"BPCER {pct(lo['max_subject_bpcer'])}; thresholds {lo['threshold_range'][0]:.4f}-{lo['threshold_range'][1]:.4f}")
        for s, v in lo["per_subject"].items():
            print(f"    {s}: t {v['threshold']:.4f}  APCER {pct(v['apcer'])} ({v['print']} print)  "
                  f"BPCER {pct(v['bpcer'])} ({v['live']} live)")


def main():
    import onnxruntime as ort

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets",
                    help="folder holding nuaa_dev/ (default: ../shared/datasets next to the repository)")
    ap.add_argument("--models", type=Path, default=REPO / "models", help="models folder (default: models/)")
    ap.add_argument("--json", type=Path, help="also write the figures (and per-frame scores) here")
    args = ap.parse_args()
    root = args.datasets / "nuaa_dev"
    if not (root / "live").is_dir() or not (root / "print").is_dir():
        raise SystemExit(f"error: {root} has no live/ and print/ folders; pass --datasets DIR (the shared datasets folder)")
    items = frames(root)
    rows, missed, ms = score_frames(items, args.models)
    result = {"onnxruntime_version": ort.__version__, "ms_per_crop": ms, "no_face": missed,
              "frames": {k: sum(r["kind"] == k for r in rows) for k in ("live", "print")},
              "scorers": {s: evaluate_scorer(rows, s) for s in SCORERS}}
    report(result)
    if args.json:
        result["per_frame"] = [{**r, "v2": np.round(r["v2"], 6).tolist(), "v1se": np.round(r["v1se"], 6).tolist()}
                               for r in rows]
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
