"""int8 quantisation of the fp32 encoder, in ONNX QDQ form (tract runs QDQ; it rejects QOperator).

weight_only(): every Conv / MatMul weight becomes an int8 initializer with per-output-channel symmetric
    scales (zero point 0, range [-127, 127]) behind a DequantizeLinear; activations stay float. A runtime
    can fold the DequantizeLinear at load time: 4x smaller file, fp32 arithmetic. Pure numpy: deterministic.
static_qdq(): onnxruntime quantize_static, QuantFormat.QDQ, per-channel int8 weights, uint8 activations,
    MinMax calibration on real aligned face chips (and their mirror images). The activation ranges are
    rounded to 4 significant digits before the scales are derived, so that float noise between CPUs
    (different SIMD kernels in the calibration runs) does not change the file.
"""
import numpy as np
import onnx
from onnx import helper, numpy_helper

WEIGHT_AXIS = {"Conv": 0, "MatMul": 1}  # output-channel axis of the weight for each op
RANGE_DIGITS = 4


def weight_only(model):
    """Return a copy of `model` with int8 per-channel weights behind DequantizeLinear."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    new_nodes = []
    for node in graph.node:
        axis = WEIGHT_AXIS.get(node.op_type)
        if axis is not None and node.input[1] in inits:
            name = node.input[1]
            w = numpy_helper.to_array(inits[name]).astype(np.float64)
            reduce_axes = tuple(i for i in range(w.ndim) if i != axis)
            max_abs = np.abs(w).max(axis=reduce_axes)
            scale = np.where(max_abs > 0, max_abs / 127.0, 1.0).astype(np.float32)
            shape = [1] * w.ndim
            shape[axis] = -1
            q = np.clip(np.round(w / scale.reshape(shape).astype(np.float64)), -127, 127).astype(np.int8)
            graph.initializer.remove(inits[name])
            graph.initializer.extend([
                numpy_helper.from_array(q, name + "_q"),
                numpy_helper.from_array(scale, name + "_scale"),
                numpy_helper.from_array(np.zeros(scale.shape, np.int8), name + "_zero_point"),
            ])
            new_nodes.append(helper.make_node("DequantizeLinear", [name + "_q", name + "_scale", name + "_zero_point"],
                                              [name], name=name + "_dequantize", axis=axis))
        new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    model.doc_string += " Weight-only int8 (per-channel symmetric, QDQ DequantizeLinear on weights)."
    onnx.checker.check_model(model)
    return model


def _round_sig(x, digits):
    x = float(x)
    return 0.0 if x == 0 else float(f"{x:.{digits - 1}e}")


def calibration_ranges(fp32_path, inputs, work_dir):
    """Per-tensor activation [min, max] over `inputs` (list of {name: array}) with onnxruntime's MinMax
    calibrator, rounded to RANGE_DIGITS significant digits."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    calibrator = create_calibrator(str(fp32_path), augmented_model_path=str(work_dir / "augmented.onnx"),
                                   calibrate_method=CalibrationMethod.MinMax,
                                   extra_options={"symmetric": False})
    for start in range(0, len(inputs), 32):  # bounded memory: merge ranges every 32 samples
        calibrator.collect_data(_Reader(inputs[start:start + 32]))
    ranges = {}
    for name, rng in calibrator.compute_data().data.items():
        lo, hi = (float(np.asarray(v).ravel()[0]) for v in rng.range_value)
        ranges[name] = (_round_sig(lo, RANGE_DIGITS), _round_sig(hi, RANGE_DIGITS))
    return ranges


class _Reader:
    """Minimal CalibrationDataReader over an in-memory list of feeds."""

    def __init__(self, feeds):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)

    def __iter__(self):
        return self


def static_qdq(fp32_path, out_path, inputs, work_dir):
    """Full static QDQ, per-channel int8 weights, uint8 activations, from rounded MinMax ranges."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    ranges = calibration_ranges(fp32_path, inputs, work_dir)
    overrides = {name: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for name, (lo, hi) in sorted(ranges.items())}
    quantize_static(str(fp32_path), str(out_path), _Reader(inputs[:1]), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    extra_options={"TensorQuantOverrides": overrides})
    model = onnx.load(str(out_path))
    model.doc_string += " int8 static QDQ (per-channel weights, uint8 activations, MinMax calibration)."
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return model
