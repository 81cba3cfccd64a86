#!/usr/bin/env python3
"""Leave-one-subject-out choice of the liveness threshold from `facegate eval-pad --scores` output.

    facegate eval-pad --live DIR/live --attack DIR/print --scores scores.tsv
    python3 tools/liveness/loso.py scores.tsv [--apcer 0.01]

For each scorer (each model's live probability, and their mean as the ensemble) it prints APCER/BPCER at
0.5, BPCER at APCER 5% and 1% (the threshold rule of src/pad.rs: the lowest threshold whose APCER is at
most the target), then for each subject the threshold chosen on the other subjects and the held-out
subject's APCER and BPCER at it, by two rules: the lowest threshold with APCER <= --apcer, and the highest
with BPCER <= --bpcer (the strictest threshold the bona fide frames allow). The subject is the image's parent folder; the live folder
is the TSV's first `folder`, every other folder is an attack. Standard library only.
"""
import argparse
import csv
import math
import statistics
import struct


def just_above(v):
    if v < 0:
        return 0.0
    return struct.unpack("<f", struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0] + 1))[0]


def apcer(attacks, t):
    return sum(a >= t for a in attacks) / max(len(attacks), 1)


def bpcer(live, t):
    return sum(s < t for s in live) / max(len(live), 1)


def threshold_for(attacks, target):
    s = sorted(attacks, reverse=True)
    k = math.floor(target * len(s) + 1e-9)
    return 0.0 if k >= len(s) else just_above(s[k])


def highest_for_bpcer(live, target):
    """The highest threshold whose BPCER is at most the target (at most k live scores below it)."""
    s = sorted(live)
    k = math.floor(target * len(s) + 1e-9)
    return 1.0 if k >= len(s) else s[k]


def loso(subjects, live, att, choose, label):
    ths, held_a, held_b, n_a_err, n_b_err = [], [], [], 0, 0
    for s in subjects:
        t = choose([v for q, v in live if q != s], [v for q, v in att if q != s])
        la = [v for q, v in att if q == s]
        ll = [v for q, v in live if q == s]
        ths.append(t)
        held_a.append(apcer(la, t))
        held_b.append(bpcer(ll, t))
        n_a_err += sum(v >= t for v in la)
        n_b_err += sum(v < t for v in ll)
        print(f"    held out {s}: threshold {t:.4f}  APCER {held_a[-1]:6.2%} ({len(la)})  "
              f"BPCER {held_b[-1]:6.2%} ({len(ll)})")
    print(f"  LOSO, {label}: thresholds {min(ths):.4f}..{max(ths):.4f} (median {statistics.median(ths):.4f}); "
          f"held-out APCER {min(held_a):.2%}..{max(held_a):.2%}, pooled {n_a_err / len(att):.2%}; "
          f"held-out BPCER {min(held_b):.2%}..{max(held_b):.2%}, pooled {n_b_err / len(live):.2%}")
    return ths


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scores")
    ap.add_argument("--apcer", type=float, default=0.01, help="target APCER for the LOSO threshold")
    ap.add_argument("--bpcer", type=float, default=0.02, help="target BPCER for the second LOSO rule")
    args = ap.parse_args()
    rows = list(csv.DictReader(open(args.scores), delimiter="\t"))
    live_folder = rows[0]["folder"]
    scorers = [c for c in rows[0] if c not in ("image", "folder", "subject")]
    subjects = sorted({r["subject"] for r in rows})
    print(f"{len(rows)} images, {len(subjects)} subjects, live folder {live_folder}")
    for sc in scorers:
        live = [(r["subject"], float(r[sc])) for r in rows if r["folder"] == live_folder]
        att = [(r["subject"], float(r[sc])) for r in rows if r["folder"] != live_folder]
        L = [v for _, v in live]
        A = [v for _, v in att]
        name = "ensemble (mean)" if sc == "score" else sc
        print(f"\n== {name}: {len(L)} live, {len(A)} attack frames")
        print(f"  at 0.5: APCER {apcer(A, 0.5):.2%}  BPCER {bpcer(L, 0.5):.2%}")
        for tgt in (0.05, 0.01, 0.0):
            t = threshold_for(A, tgt)
            print(f"  APCER <= {tgt:.0%}: threshold {t:.4f}  APCER {apcer(A, t):.2%}  BPCER {bpcer(L, t):.2%}")
        ths = loso(subjects, live, att, lambda l, a: threshold_for(a, args.apcer),
                   f"lowest threshold with APCER <= {args.apcer:.0%} on the other subjects")
        hi = loso(subjects, live, att, lambda l, a: highest_for_bpcer(l, args.bpcer),
                  f"highest threshold with BPCER <= {args.bpcer:.0%} on the other subjects")
        print(f"  all subjects: APCER <= {args.apcer:.0%} from {threshold_for(A, args.apcer):.4f}, "
              f"BPCER <= {args.bpcer:.0%} up to {highest_for_bpcer(L, args.bpcer):.4f}")
        print("  " + "  ".join(f"t={t:.1f}: {apcer(A, t):.1%}/{bpcer(L, t):.1%}"
                               for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)) + "  (APCER/BPCER)")


if __name__ == "__main__":
    main()
