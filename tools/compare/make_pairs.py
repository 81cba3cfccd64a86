"""Build verification pair protocols for the ORL, Yale and faces94 face sets.

    python tools/compare/make_pairs.py [--datasets /work/shared/datasets] [--seed 0] [OUT_DIR]

For each set it writes, into OUT_DIR (default /tmp/facegate-pairs/):

  NAME_pairs.tsv       header `image_a<TAB>image_b<TAB>same`, then one pair per line (same: 1/0)
  NAME_identities.tsv  header `image<TAB>identity`, one line per image

Paths are relative to the dataset folder (pass it as --root to `facegate eval` and
dlib_reference.py eval). Every same-identity pair is listed, plus as many different-identity
pairs sampled uniformly without replacement (random.Random(seed), so the files are reproducible);
the pair list is then shuffled with the same generator, so the position-based 10-fold split
(pair i in fold i % 10) mixes identities and labels.

  orl        orl_faces/sK/N.pgm: 40 people x 10 images -> 1800 same + 1800 different pairs
  yalefaces  yalefaces/subjectNN.CONDITION: 15 people x 11 conditions, one file missing
             -> 815 same + 815 different. The files are GIFs without an extension; the paths are
             kept as they are (facegate and PIL both decode by content).
  faces94    faces94_subset/Training/K/NAME.N.jpg: 18 people x 16-20 images (identity = folder K)
             -> 2230 same + 2230 different. Test/ is left out: five of its files (m, n, x, y,
             z.jpg) carry no identity.

The datasets' terms allow local evaluation only: the output stays outside the repository.
"""
import argparse
import itertools
import random
import sys
from pathlib import Path


def orl_images(root):
    """(relative path, identity) for orl_faces/sK/N.pgm."""
    out = [(f"{d.name}/{f.name}", d.name)
           for d in root.iterdir() if d.is_dir() and d.name.startswith("s")
           for f in d.glob("*.pgm")]
    return sorted(out, key=lambda x: (int(x[1][1:]), int(Path(x[0]).stem)))


def yale_images(root):
    """(relative path, identity) for yalefaces/subjectNN.condition (no extension, GIF content)."""
    out = []
    for f in sorted(root.iterdir()):
        subject, dot, condition = f.name.partition(".")
        if f.is_file() and subject.startswith("subject") and dot and condition.isalpha():
            out.append((f.name, subject))
    return out


def faces94_images(root):
    """(relative path, identity) for faces94_subset/Training/K/NAME.N.jpg."""
    train = root / "Training"
    out = [(f"Training/{d.name}/{f.name}", d.name)
           for d in train.iterdir() if d.is_dir() for f in d.glob("*.jpg")]
    return sorted(out, key=lambda x: (int(x[1]), x[0].rsplit("/", 1)[1].split(".")[0],
                                      int(x[0].rsplit(".", 2)[1])))


SETS = {"orl": ("orl_faces", orl_images), "yalefaces": ("yalefaces", yale_images),
        "faces94": ("faces94_subset", faces94_images)}


def make_pairs(images, rng):
    """All same pairs, an equal number of sampled different pairs, shuffled."""
    same, diff = [], []
    for (a, ia), (b, ib) in itertools.combinations(images, 2):
        (same if ia == ib else diff).append((a, b, 1 if ia == ib else 0))
    if len(diff) < len(same):
        raise SystemExit(f"error: only {len(diff)} different pairs for {len(same)} same pairs")
    pairs = same + rng.sample(diff, len(same))
    rng.shuffle(pairs)
    return pairs


def write_tsv(path, header, rows):
    with open(path, "w") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(str(x) for x in row) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default="/tmp/facegate-pairs", help="output directory")
    ap.add_argument("--datasets", default="/work/shared/datasets", help="folder holding orl_faces/, yalefaces/, faces94_subset/")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (folder, lister) in SETS.items():
        root = Path(args.datasets) / folder
        if not root.is_dir():
            sys.exit(f"error: {root} not found (pass --datasets DIR)")
        images = lister(root)
        if not images:
            sys.exit(f"error: no images recognised in {root}")
        pairs = make_pairs(images, random.Random(args.seed))
        write_tsv(out / f"{name}_pairs.tsv", ("image_a", "image_b", "same"), pairs)
        write_tsv(out / f"{name}_identities.tsv", ("image", "identity"), images)
        n_same = sum(p[2] for p in pairs)
        people = len({i for _, i in images})
        print(f"{name}: {len(images)} images of {people} people -> {n_same} same + {len(pairs) - n_same} "
              f"different pairs; root {root}; wrote {out}/{name}_pairs.tsv, {name}_identities.tsv")


if __name__ == "__main__":
    main()
