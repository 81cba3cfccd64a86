"""onnxruntime timings of every ONNX model in models/, to set beside tract's (`facegate bench`).

    python tools/compare/ort_bench.py [--runs 200] [--warmup 20] [--image tests/fixtures/faces/obama1.jpg] [--json]

For each [encoder.*] / [detector.*] entry of models/models.toml: one onnxruntime CPU session with one
intra-op and one inter-op thread, sequential execution, full graph optimisation; the time of
session.run per inference, median and p95 over --runs runs after --warmup runs. Inputs are real,
built as facegate builds them (shapes, mean and std from models.toml):
  encoders   the 150x150 dlib face chip of the image (dlib HOG + 5-point predictor + get_face_chip,
             padding 0.25), raw 0..255 RGB, NCHW
  detectors  the image fitted into a 640x480 black frame (as `facegate bench`), letterboxed whole to
             the model's square input (centred black padding, bilinear), (x - mean) / std, NCHW
The script also reports each model's session creation time and the max |output| difference
between two runs, as a sanity check.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tomllib  # noqa: E402
from pathlib import Path  # noqa: E402

import dlib  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from PIL import Image  # noqa: E402

from dlib_reference import PREDICTOR, camera_frame, load_rgb  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"


def chip_input(rgb, size, padding):
    rects = dlib.get_frontal_face_detector()(rgb, 1)
    if not rects:
        sys.exit("error: dlib found no face in the image; pass --image with a clear frontal face")
    rect = max(rects, key=lambda r: r.width() * r.height())
    shape = dlib.shape_predictor(str(PREDICTOR))(rgb, rect)
    chip = np.asarray(dlib.get_face_chip(rgb, shape, size=size, padding=padding))
    return chip


def letterbox(rgb, side):
    scale = side / max(rgb.shape[:2])
    w, h = round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)
    out = Image.new("RGB", (side, side))
    out.paste(Image.fromarray(rgb).resize((w, h), Image.BILINEAR), ((side - w) // 2, (side - h) // 2))
    return np.asarray(out)


def to_nchw(rgb, mean, std):
    x = (rgb.astype(np.float32) - np.float32(mean)) / np.float32(std)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def time_model(path, name, x, runs, warmup):
    t0 = time.perf_counter()
    sess = session(path)
    load_ms = (time.perf_counter() - t0) * 1e3
    feed = {name: x}
    first = sess.run(None, feed)
    for _ in range(warmup):
        sess.run(None, feed)
    t = []
    for _ in range(runs):
        s = time.perf_counter()
        out = sess.run(None, feed)
        t.append(time.perf_counter() - s)
    t = np.sort(np.array(t) * 1e3)
    drift = max(float(np.max(np.abs(a - b))) for a, b in zip(first, out))
    return {"median_ms": float(t[len(t) // 2]), "p95_ms": float(t[min(int(np.ceil(0.95 * len(t))), len(t)) - 1]),
            "mean_ms": float(t.mean()), "session_ms": load_ms, "rerun_max_diff": drift}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", default=str(REPO / "tests/fixtures/faces/obama1.jpg"))
    ap.add_argument("--models", default=str(MODELS), help="folder holding models.toml and the ONNX files")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    models = Path(args.models)
    manifest = models / "models.toml"
    if not manifest.is_file():
        sys.exit(f"error: {manifest} not found")
    if not Path(args.image).is_file():
        sys.exit(f"error: {args.image} not found")
    cfg = tomllib.loads(manifest.read_text())
    rgb = load_rgb(args.image)
    frame = np.asarray(Image.open(io.BytesIO(camera_frame(rgb))).convert("RGB"))
    results = []
    for kind in ("encoder", "detector"):
        for variant, m in cfg.get(kind, {}).items():
            path = models / m["file"]
            if not path.is_file():
                sys.exit(f"error: {path} (from {manifest.name} [{kind}.{variant}]) not found")
            _, c, h, w = m["input_shape"]
            if kind == "encoder":
                img = chip_input(frame, m["chip_size"], m["chip_padding"])
            else:
                img = letterbox(frame, h)
            assert img.shape == (h, w, c), (img.shape, m["input_shape"])
            r = time_model(path, m["input_name"], to_nchw(img, m["mean"], m["std"]), args.runs, args.warmup)
            results.append({"model": f"{kind}.{variant}", "file": m["file"], "input_shape": m["input_shape"], **r})
    report = {"onnxruntime": ort.__version__, "threads": 1, "runs": args.runs, "warmup": args.warmup,
              "image": args.image, "models": results,
              "load_average_1min": os.getloadavg()[0], "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"onnxruntime {ort.__version__}, 1 intra-op thread, sequential; {args.runs} runs after "
          f"{args.warmup} warm-up; input from {Path(args.image).name}; "
          f"load average {report['load_average_1min']:.1f} on {report['cpus']} CPUs")
    print(f"{'model':<22} {'file':<36} {'median ms':>9} {'p95 ms':>8} {'session ms':>10}")
    for r in results:
        print(f"{r['model']:<22} {r['file']:<36} {r['median_ms']:>9.2f} {r['p95_ms']:>8.2f} {r['session_ms']:>10.0f}")


if __name__ == "__main__":
    main()
