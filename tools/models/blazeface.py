"""MediaPipe BlazeFace (Google, Apache-2.0): tflite -> ONNX conversion and the published decoding.

Conversion: tflite2onnx 0.4.1 (NHWC tflite -> NCHW ONNX, opset 11), then the ONNX version converter to
opset 13 so the same file can later be quantised per channel; the fixed input shape is kept.

Decoding follows MediaPipe's face_detection_{short,full}_range_common.pbtxt (SsdAnchorsCalculator +
TensorsToDetectionsCalculator + NonMaxSuppressionCalculator):
- anchors: cell centres ((x + 0.5) / grid, (y + 0.5) / grid), fixed size 1x1, generated layer by
  layer; consecutive layers with the same stride are merged and each contributes 2 anchors per cell
  (aspect ratio 1 + interpolated scale) when interpolated_scale_aspect_ratio = 1.0, else 1.
  short-range 128x128: strides [8, 16, 16, 16] -> 16x16x2 + 8x8x6 = 896 anchors, in that order;
  full-range 192x192: stride [4], 1 anchor per cell -> 48x48 = 2304 anchors.
- regressors [16] per anchor, in input pixels: cx, cy, w, h, then 6 keypoints (x, y):
  centre = anchor + reg / input_size; size = reg / input_size (fractions of the model input).
  Keypoints: 0 eye on the image left (subject's right eye), 1 eye on the image right, 2 nose tip,
  3 mouth centre, 4 ear tragion image left, 5 ear tragion image right.
- score = sigmoid(clip(logit, -100, 100)); keep score >= min_score; weighted NMS at IoU threshold.
"""
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import version_converter


@dataclass(frozen=True)
class Spec:
    """One BlazeFace variant: file stem, input size, anchor layout and thresholds."""
    stem: str
    input_size: int
    strides: tuple
    interpolated: bool       # interpolated_scale_aspect_ratio == 1.0 -> 2 anchors per layer
    min_score: float = 0.5
    nms_iou: float = 0.3

    @property
    def anchors_per_layer(self):
        return 2 if self.interpolated else 1

    def grid_layout(self):
        """[(grid_size, anchors_per_cell)] after merging same-stride layers, in anchor order."""
        layout = []
        for stride in self.strides:
            grid = self.input_size // stride
            if layout and layout[-1][0] == grid:
                layout[-1] = (grid, layout[-1][1] + self.anchors_per_layer)
            else:
                layout.append((grid, self.anchors_per_layer))
        return layout


SHORT = Spec("face_detection_short_range", 128, (8, 16, 16, 16), interpolated=True)
FULL = Spec("face_detection_full_range", 192, (4,), interpolated=False)
SPECS = {"short_range": SHORT, "full_range": FULL}
RAW_SCORE_LIMIT = 100.0


def convert(tflite_path, onnx_path, opset=13):
    """tflite2onnx, then upgrade to `opset`; returns the saved ModelProto.

    tflite2onnx emits initialisers and value_info in set-iteration order (varies with the Python hash
    seed): both are sorted by name so that the file is reproducible."""
    import tflite2onnx  # imported here: only the build needs it

    tflite2onnx.convert(str(tflite_path), str(onnx_path))
    model = version_converter.convert_version(onnx.load(str(onnx_path)), opset)
    for field in (model.graph.initializer, model.graph.value_info):
        items = sorted(field, key=lambda t: t.name)
        del field[:]
        field.extend(items)
    model.producer_name = "facegate tools/models (tflite2onnx 0.4.1)"
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_path))
    return model


def anchors(spec):
    """float32 [N, 2] anchor centres (x, y) in [0, 1], MediaPipe order (row-major cells, k per cell)."""
    out = []
    for grid, per_cell in spec.grid_layout():
        for y in range(grid):
            for x in range(grid):
                out.extend([((x + 0.5) / grid, (y + 0.5) / grid)] * per_cell)
    return np.array(out, np.float32)


def preprocess(rgb_square, spec):
    """HxWx3 uint8 RGB already resized to input_size -> float32 NCHW in [-1, 1]."""
    x = rgb_square.astype(np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def decode(regressors, logits, spec):
    """Raw outputs [1, N, 16], [1, N, 1] -> (scores [N], boxes [N, 4] cx,cy,w,h, keypoints [N, 6, 2]),
    all in fractions of the model input."""
    reg = regressors.reshape(-1, 16).astype(np.float64) / spec.input_size
    anc = anchors(spec).astype(np.float64)
    boxes = np.concatenate([reg[:, 0:2] + anc, reg[:, 2:4]], axis=1)
    keypoints = reg[:, 4:].reshape(-1, 6, 2) + anc[:, None, :]
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1).astype(np.float64), -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
    return scores, boxes, keypoints


def iou(box, others):
    """IoU of one cx,cy,w,h box against many."""
    def corners(b):
        return b[..., 0] - b[..., 2] / 2, b[..., 1] - b[..., 3] / 2, b[..., 0] + b[..., 2] / 2, b[..., 1] + b[..., 3] / 2
    ax0, ay0, ax1, ay1 = corners(box)
    bx0, by0, bx1, by1 = corners(others)
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = box[2] * box[3] + others[:, 2] * others[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(scores, boxes, keypoints, spec):
    """MediaPipe weighted NMS: each kept detection is the score-weighted mean of the candidates
    overlapping the best remaining one by more than nms_iou; its score is the best one.
    Returns a list of (score, box cx,cy,w,h, keypoints 6x2)."""
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] >= spec.min_score]
    out = []
    while len(order):
        overlap = iou(boxes[order[0]], boxes[order])
        group = order[overlap > spec.nms_iou]
        group = group if len(group) else order[:1]
        w = scores[group][:, None]
        out.append((float(scores[order[0]]), (boxes[group] * w).sum(0) / w.sum(),
                    (keypoints[group] * w[:, :, None]).sum(0) / w.sum()))
        order = order[overlap <= spec.nms_iou]
    return out


def letterbox(rgb, size):
    """Pad an image to a centred square with black, resize to size x size (bilinear).
    Returns (square uint8 image, scale, pad_x, pad_y) with original = model * scale - pad."""
    from PIL import Image

    h, w = rgb.shape[:2]
    side = max(h, w)
    pad_x, pad_y = (side - w) // 2, (side - h) // 2
    canvas = np.zeros((side, side, 3), np.uint8)
    canvas[pad_y:pad_y + h, pad_x:pad_x + w] = rgb
    square = np.asarray(Image.fromarray(canvas).resize((size, size), Image.BILINEAR))
    return square, side / size, pad_x, pad_y


def io_names(model):
    """(input name, regressors output name, scores output name) of a converted BlazeFace ModelProto,
    told apart by the last output dimension (16 regressors vs 1 logit)."""
    outputs = {o.type.tensor_type.shape.dim[-1].dim_value: o.name for o in model.graph.output}
    return model.graph.input[0].name, outputs[16], outputs[1]


def detect(session, rgb, spec):
    """Run a BlazeFace ONNX session on a whole image (letterboxed) and return detections in original
    image pixels: list of (score, (cx, cy, w, h), keypoints 6x2)."""
    square, scale, pad_x, pad_y = letterbox(rgb, spec.input_size)
    outs = session.run(None, {session.get_inputs()[0].name: preprocess(square, spec)})
    regressors = next(o for o in outs if o.shape[-1] == 16)
    logits = next(o for o in outs if o.shape[-1] == 1)
    dets = weighted_nms(*decode(regressors, logits, spec), spec)
    size = spec.input_size * scale
    offset = np.array([pad_x, pad_y], np.float64)
    return [(s, np.concatenate([b[:2] * size - offset, b[2:] * size]), k * size - offset) for s, b, k in dets]
