"""Numerical checks of the produced files against their references, and onnxruntime timings."""
import time

import numpy as np
import onnxruntime as ort

from faces import chip_to_input

THRESHOLD = 0.6


def session(path, threads=1, optimize=True):
    """onnxruntime CPU session. optimize=False disables graph optimisation, so QDQ models run as written
    (DequantizeLinear -> float op -> QuantizeLinear): the exact arithmetic of the file, without
    onnxruntime's fused int8 kernels (whose x86 u8*s8 path saturates 16-bit intermediate sums)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def embed(sess, chips):
    """Encoder outputs [N, 128] (float64) for uint8 chips [N, 150, 150, 3]."""
    return np.stack([sess.run(["embedding"], {"input": chip_to_input(c)})[0][0] for c in chips]).astype(np.float64)


def pair_distances(emb):
    """L2 distance of every unordered pair (i < j)."""
    i, j = np.triu_indices(len(emb), k=1)
    return np.linalg.norm(emb[i] - emb[j], axis=1), i, j


def compare_embeddings(ref, got, identity):
    """L2(ref, got) per face, and the same/different decisions at THRESHOLD over all pairs.
    identity: labels ('' = unknown) for verification accuracy on labelled pairs."""
    l2 = np.linalg.norm(ref - got, axis=1)
    d_ref, i, j = pair_distances(ref)
    d_got, _, _ = pair_distances(got)
    flips = (d_ref < THRESHOLD) != (d_got < THRESHOLD)
    labelled = (identity[i] != "") & (identity[j] != "")
    same = identity[i] == identity[j]

    def accuracy(d):
        return float(((d < THRESHOLD) == same)[labelled].mean())

    return {"faces": len(ref), "pairs": int(len(d_ref)), "l2_mean": float(l2.mean()), "l2_max": float(l2.max()),
            "max_abs": float(np.abs(ref - got).max()), "decisions_flipped": int(flips.sum()),
            "flipped_ref_distance_range": [round(float(d_ref[flips].min()), 4), round(float(d_ref[flips].max()), 4)] if flips.any() else [],
            "labelled_pairs": int(labelled.sum()), "accuracy_ref": accuracy(d_ref), "accuracy": accuracy(d_got)}


def median_ms(path, feed, runs=50, warmup=5):
    """Median wall time of one inference, onnxruntime, 1 thread."""
    sess = session(path, threads=1)
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def detector_vs_tflite(onnx_path, tflite_path, spec, images):
    """Run the ONNX file (onnxruntime) and the original tflite (LiteRT) on the same letterboxed images.
    Returns raw-output max differences and decoded-detection agreement (count, IoU, keypoints in px of
    the model input)."""
    import blazeface
    from ai_edge_litert.interpreter import Interpreter

    sess = session(onnx_path)
    interp = Interpreter(model_path=str(tflite_path), num_threads=1)
    interp.allocate_tensors()
    in_index = interp.get_input_details()[0]["index"]
    out_details = interp.get_output_details()
    reg_diff, logit_diff, score_diff, ious, kp_diff, count_mismatch = [], [], [], [], [], 0
    for rgb in images:
        x = blazeface.preprocess(blazeface.letterbox(rgb, spec.input_size)[0], spec)
        onnx_out = sorted(sess.run(None, {"input": x}), key=lambda a: -a.shape[-1])
        interp.set_tensor(in_index, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
        interp.invoke()
        tfl_out = sorted((interp.get_tensor(d["index"]) for d in out_details), key=lambda a: -a.shape[-1])
        reg_diff.append(np.abs(onnx_out[0] - tfl_out[0]).max())
        logit_diff.append(np.abs(onnx_out[1] - tfl_out[1]).max())
        a = blazeface.weighted_nms(*blazeface.decode(*onnx_out, spec), spec)
        b = blazeface.weighted_nms(*blazeface.decode(*tfl_out, spec), spec)
        if len(a) != len(b):
            count_mismatch += 1
            continue
        for (sa, ba, ka), (sb, bb, kb) in zip(a, b):
            score_diff.append(abs(sa - sb))
            ious.append(float(blazeface.iou(ba, bb[None])[0]))
            kp_diff.append(np.abs(ka - kb).max() * spec.input_size)
    return {"images": len(images), "detections": len(ious), "count_mismatches": count_mismatch,
            "regressors_max_abs": float(max(reg_diff)), "logits_max_abs": float(max(logit_diff)),
            "score_max_abs": float(max(score_diff, default=0.0)), "box_iou_min": float(min(ious, default=1.0)),
            "keypoint_max_px": float(max(kp_diff, default=0.0))}
