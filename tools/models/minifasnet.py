"""MiniFASNet (Minivision Silent-Face-Anti-Spoofing, Apache-2.0): read the upstream .pth without PyTorch,
check the ONNX exports tensor by tensor and output by output, and the upstream preprocessing (crop +
cv2-style bilinear resize).

    tools/models/.venv/bin/python tools/models/minifasnet.py list FILE.pth     # every tensor
    tools/models/.venv/bin/python tools/models/minifasnet.py check             # both ONNX files vs .pth

`check` exits 1 naming the tensor on any mismatch or on any tensor not accounted for in either direction,
then compares onnxruntime's logits with the upstream network run in numpy from the .pth (reference_logits)
on the committed fixture crops.

Legacy torch.save format (PyTorch < 1.6, not a zip), as torch/serialization.py `_legacy_save` writes it:
  1. pickle: magic number 0x1950a86a20f9469cfc6c
  2. pickle: protocol version 1001
  3. pickle: sys info {protocol_version, little_endian, type_sizes}
  4. pickle: the object (here an OrderedDict name -> tensor). Tensors are
     torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks); storages are
     persistent ids ('storage', torch.<Type>Storage, key, location, numel, view_metadata), view_metadata
     None or (view_key, offset, view_numel) for a view into the root storage `key`.
  5. pickle: list of storage keys, in the order their bytes follow
  6. per key: int64 little-endian element count, then count * element_size raw little-endian bytes.
Only the globals above are allowed (a restricted unpickler); anything else is an error.
"""
import collections
import io
import pickle
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
UPSTREAM = HERE / "upstream" / "minifasnet"

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"), "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class Model:
    """One MiniFASNet variant: manifest key, upstream files, crop scale."""
    key: str          # models.toml [liveness.<key>]
    file: str         # name in models/
    onnx: str         # upstream ONNX file in upstream/minifasnet/
    pth: str          # upstream .pth in upstream/minifasnet/
    crop_scale: float


V2 = Model("v2", "minifasnet_v2.onnx", "MiniFASNetV2.onnx", "2.7_80x80_MiniFASNetV2.pth", 2.7)
V1SE = Model("v1se", "minifasnet_v1se.onnx", "MiniFASNetV1SE.onnx", "4_0_0_80x80_MiniFASNetV1SE.pth", 4.0)
MODELS = (V2, V1SE)
LICENCES = ("LICENSE.Silent-Face-Anti-Spoofing", "LICENSE.face-anti-spoofing")
INPUT_SIZE = 80
LIVE_CLASS = 1
BN_EPS = 1e-5  # torch.nn.BatchNorm{1,2}d default, used by every upstream batch norm


class PthError(SystemExit):
    """The file is not a legacy torch.save state dict this reader understands."""


@dataclass(frozen=True)
class StorageRef:
    key: str          # root storage key
    dtype: np.dtype
    numel: int        # root storage element count (declared)
    offset: int = 0   # view offset into the root storage, elements
    view_numel: int = -1


@dataclass(frozen=True)
class TensorRef:
    storage: StorageRef
    offset: int
    size: tuple
    stride: tuple


class _Restricted(pickle.Unpickler):
    """Unpickler that knows only the handful of globals a legacy state dict uses."""

    def __init__(self, f, path):
        super().__init__(f)
        self.path = path
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return ("storage_type", name)
        raise PthError(f"error: {self.path}: unexpected global {module}.{name} in the pickle; "
                       "this reader handles legacy state dicts of plain tensors only")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise PthError(f"error: {self.path}: unexpected persistent id {pid!r}")
        _, (_, type_name), key, _location, numel, view = pid
        dtype = STORAGE_DTYPES[type_name]
        known = self.storages.setdefault(key, (dtype, numel))
        if known != (dtype, numel):
            raise PthError(f"error: {self.path}: storage {key} declared twice with different type or size")
        if view is None:
            return StorageRef(key, dtype, numel)
        _view_key, offset, view_numel = view
        if offset + view_numel > numel:
            raise PthError(f"error: {self.path}: storage view {view!r} exceeds root storage {key} ({numel})")
        return StorageRef(key, dtype, numel, offset, view_numel)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, *rest):
    return TensorRef(storage, int(offset), tuple(size), tuple(stride))


def _plain_load(f, path, what):
    try:
        return _Restricted(f, path).load()
    except (pickle.UnpicklingError, EOFError) as e:
        raise PthError(f"error: {path}: could not read the {what} pickle ({e}); not a legacy torch.save file")


def _materialise(name, t, raw, path):
    """numpy copy of a tensor from its storage bytes, honouring the view offset, storage offset and strides."""
    data = raw[t.storage.key]
    base = t.storage.offset + t.offset
    limit = t.storage.numel if t.storage.view_numel < 0 else t.storage.offset + t.storage.view_numel
    last = base + sum((n - 1) * s for n, s in zip(t.size, t.stride)) if all(t.size) else base - 1
    if base < 0 or last >= limit or any(s < 0 for s in t.stride):
        raise PthError(f"error: {path}: tensor {name} (offset {base}, size {t.size}, stride {t.stride}) "
                       f"lies outside its storage of {limit} elements")
    item = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(data[base:], shape=t.size, strides=[s * item for s in t.stride],
                                           writeable=False)
    return np.array(view)


def read_pth(path):
    """{name: numpy array} of a legacy (pre-1.6) torch.save state dict, in file order. Fails clearly on
    anything else (zip format, unknown globals, truncated or trailing bytes)."""
    path = Path(path)
    blob = path.read_bytes()
    if blob[:2] == b"PK":
        raise PthError(f"error: {path} is a zip-format (PyTorch >= 1.6) checkpoint; this reader handles the "
                       "legacy format only")
    f = io.BytesIO(blob)
    if _plain_load(f, path, "magic number") != MAGIC:
        raise PthError(f"error: {path}: wrong magic number; not a legacy torch.save file")
    if (proto := _plain_load(f, path, "protocol")) != PROTOCOL:
        raise PthError(f"error: {path}: torch.save protocol {proto}, expected {PROTOCOL}")
    info = _plain_load(f, path, "sys info")
    if not info.get("little_endian", False):
        raise PthError(f"error: {path}: written on a big-endian machine; not supported")
    unpickler = _Restricted(f, path)
    state = unpickler.load()
    keys = _plain_load(f, path, "storage key list")
    if sorted(keys) != sorted(unpickler.storages):
        raise PthError(f"error: {path}: the storage key list does not match the storages the tensors use")
    raw = {}
    for key in keys:
        dtype, numel = unpickler.storages[key]
        head = f.read(8)
        if len(head) != 8:
            raise PthError(f"error: {path}: truncated before storage {key}")
        (count,) = struct.unpack("<q", head)
        if count != numel:
            raise PthError(f"error: {path}: storage {key} holds {count} elements, the pickle declared {numel}")
        data = f.read(count * dtype.itemsize)
        if len(data) != count * dtype.itemsize:
            raise PthError(f"error: {path}: storage {key} is truncated")
        raw[key] = np.frombuffer(data, dtype)
    if f.read(1):
        raise PthError(f"error: {path}: unexpected bytes after the last storage")
    if not isinstance(state, dict):
        raise PthError(f"error: {path}: the object is a {type(state).__name__}, expected a state dict")
    return {name: _materialise(name, t, raw, path) for name, t in state.items()}


# ---------------------------------------------------------------------------------------------------------
# ONNX <-> .pth check
#
# The ONNX files were exported by PyTorch 2.8 with yakhyo's module names and every BatchNorm2d folded into
# the convolution before it (constant folding). Node names carry the module path, e.g.
# "/stage2/model/model.3/se/fc1/Conv"; upstream names the same module "conv_3.model.3.se_module.fc1".
RENAME = {"stem": "conv1", "stem_dw": "conv2_dw", "transition1": "conv_23", "stage2": "conv_3",
          "transition2": "conv_34", "stage3": "conv_4", "transition3": "conv_45", "stage4": "conv_5",
          "final_expand": "conv_6_sep", "final_dw": "conv_6_dw", "linear": "linear", "bn": "bn",
          "classifier": "prob"}
# upstream SEModule: fc1 -> bn1 -> relu -> fc2 -> bn2 -> sigmoid
SE_BN = {"fc1": "bn1", "fc2": "bn2"}
UNUSED_SUFFIX = ".num_batches_tracked"  # BatchNorm's training step counter: not used in eval mode
TOLERANCE_EXACT = 0.0                   # copied tensors must be bit-identical
OUTPUT_TOLERANCE = 1e-4  # logits are O(1-10); float32 vs float64 through ~50 layers; measured <= 5.1e-6
TOLERANCE_FOLDED = 1e-6                 # folded: |onnx - fold(pth)| <= this * max(1, |fold(pth)|); measured <= 1.7e-7


def _module_path(node):
    """ONNX node name -> upstream module path (without the 'module.' prefix)."""
    parts = node.name.strip("/").split("/")[:-1]
    if not parts or parts[0] not in RENAME:
        raise SystemExit(f"error: ONNX node {node.name!r} ({node.op_type}) has no known upstream module")
    parts[0] = RENAME[parts[0]]
    # the exporter scopes Sequential children as "model/model.0": keep the qualified one
    parts = [p for p, nxt in zip(parts, parts[1:] + [""]) if not nxt.startswith(p + ".")]
    return ".".join("se_module" if p == "se" else p for p in parts)


def _bn_prefix(conv_path):
    """Upstream batch norm that follows a convolution: 'x.conv' -> 'x.bn'; 'x.se_module.fc1' -> 'x.se_module.bn1'."""
    head, _, last = conv_path.rpartition(".")
    return f"{head}.{SE_BN[last]}" if last in SE_BN else f"{head}.bn"


def fold_conv_bn(weight, bias, gamma, beta, mean, var, eps=BN_EPS):
    """Conv (+ optional bias) followed by BatchNorm (eval) -> one Conv, in float64."""
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    w = weight.astype(np.float64) * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    b0 = np.zeros_like(scale) if bias is None else bias.astype(np.float64)
    return w, beta.astype(np.float64) + (b0 - mean.astype(np.float64)) * scale


def _pairs(model, pth):
    """Yield (onnx initialiser name, expected array, pth names used, how) for every parameter input."""
    for node in model.graph.node:
        if node.op_type == "Constant":
            raise SystemExit(f"error: ONNX Constant node {node.name!r}: a parameter outside the initialisers")
        if node.op_type not in ("Conv", "PRelu", "MatMul", "BatchNormalization"):
            continue
        path = "module." + _module_path(node)
        params = node.input[1:]
        if node.op_type == "Conv":
            w_name = f"{path}.weight"
            bn = "module." + _bn_prefix(_module_path(node))
            bn_names = [f"{bn}.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
            bias_name = f"{path}.bias" if f"{path}.bias" in pth else None
            w, b = fold_conv_bn(pth[w_name], pth.get(bias_name), *(pth[n] for n in bn_names))
            used = [w_name] + ([bias_name] if bias_name else []) + bn_names
            yield params[0], w, used, "conv weight x bn scale"
            yield params[1], b, [bn_names[1]] + [n for n in used if n != bn_names[1]], "bn bias - bn mean x bn scale"
        elif node.op_type == "PRelu":
            yield params[0], pth[f"{path}.weight"].reshape(-1, 1, 1), [f"{path}.weight"], "copy (C) -> (C,1,1)"
        elif node.op_type == "MatMul":
            yield params[0], pth[f"{path}.weight"].T, [f"{path}.weight"], "copy, transposed (Linear)"
        else:
            eps = next((a.f for a in node.attribute if a.name == "epsilon"), None)
            if eps is None or abs(eps - BN_EPS) > 1e-9:
                raise SystemExit(f"error: ONNX {node.name}: epsilon {eps} != upstream {BN_EPS}")
            for onnx_name, key in zip(params, ("weight", "bias", "running_mean", "running_var")):
                yield onnx_name, pth[f"{path}.{key}"], [f"{path}.{key}"], "copy"


def check_onnx(onnx_path, pth_path):
    """Compare every initialiser of an ONNX file with the upstream .pth tensors. Returns (rows, problems):
    rows = [(onnx name, shape, pth names, how, max abs diff, max rel diff)]; problems = list of strings."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    pth = read_pth(pth_path)
    rows, problems, seen_onnx, used_pth = [], [], set(), set()
    try:
        pairs = list(_pairs(model, pth))
    except KeyError as e:
        raise SystemExit(f"error: {onnx_path.name}: no upstream tensor {e} in {pth_path.name}")
    for name, want, used, how in pairs:
        if name not in inits:
            problems.append(f"{onnx_path.name}: node input {name} is not an initialiser")
            continue
        got = inits[name]
        seen_onnx.add(name)
        used_pth.update(used)
        if got.shape != want.shape:
            problems.append(f"{onnx_path.name}: {name} shape {got.shape} != upstream {want.shape} ({used[0]})")
            continue
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        rel = diff / np.maximum(1.0, np.abs(want.astype(np.float64)))
        exact = how.startswith("copy")
        rows.append((name, got.shape, used, how, float(diff.max()), float(rel.max())))
        if exact and diff.max() > TOLERANCE_EXACT or not exact and rel.max() > TOLERANCE_FOLDED:
            problems.append(f"{onnx_path.name}: {name} differs from upstream {used[0]} ({how}): "
                            f"max abs diff {diff.max():.3g}")
    for name in inits:
        if name not in seen_onnx:
            problems.append(f"{onnx_path.name}: initialiser {name} {inits[name].shape} has no upstream tensor")
    for name in pth:
        if name not in used_pth and not name.endswith(UNUSED_SUFFIX):
            problems.append(f"{pth_path.name}: tensor {name} {pth[name].shape} is not in {onnx_path.name}")
    return rows, problems


def check_all(onnx_dir=UPSTREAM, pth_dir=UPSTREAM, names=None, verbose=False):
    """Check both models; returns a report dict, raises SystemExit naming the first bad tensor."""
    report = {}
    for m in MODELS:
        onnx_path = Path(onnx_dir) / (names[m.key] if names else m.onnx)
        rows, problems = check_onnx(onnx_path, Path(pth_dir) / m.pth)
        if problems:
            raise SystemExit("error: MiniFASNet ONNX/.pth check FAILED:\n  " + "\n  ".join(problems))
        pth = read_pth(Path(pth_dir) / m.pth)
        unused = [n for n in pth if n.endswith(UNUSED_SUFFIX)]
        copies = [r for r in rows if r[3].startswith("copy")]
        folded = [r for r in rows if not r[3].startswith("copy")]
        report[m.key] = {
            "onnx_initialisers": len(rows), "pth_tensors": len(pth),
            "pth_tensors_unused_num_batches_tracked": len(unused),
            "copied_bit_identical": len(copies), "folded": len(folded),
            "folded_max_abs_diff": max(r[4] for r in folded), "folded_max_rel_diff": max(r[5] for r in folded)}
        if verbose:
            for name, shape, used, how, d, r in rows:
                print(f"  {m.key:4} {name:22} {str(list(shape)):18} {how:30} max|diff| {d:.3g}  <- {used[0]}")
    return report


# ---------------------------------------------------------------------------------------------------------
# Independent forward pass of the upstream network (src/model_lib/MiniFASNet.py @ b6d5f04) in numpy
# float64, straight from the .pth tensors (batch norms not folded): checks that the ONNX graph computes
# the upstream model, not only that it holds the upstream numbers. Strides, paddings and the residual /
# squeeze-excitation wiring are upstream's; channel counts come from the tensor shapes.

def _conv(x, w, stride=1, pad=0):
    """x [C, H, W], w [O, C/groups, k, k]; groups = 1 or depthwise (C/groups == 1 and O == C)."""
    k = w.shape[2]
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    ho, wo = (xp.shape[1] - k) // stride + 1, (xp.shape[2] - k) // stride + 1
    depthwise = w.shape[1] == 1 and w.shape[0] == x.shape[0] and x.shape[0] > 1
    out = np.zeros((w.shape[0], ho, wo))
    for i in range(k):
        for j in range(k):
            patch = xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
            if depthwise:
                out += w[:, 0, i, j][:, None, None] * patch
            else:
                out += np.einsum("oc,chw->ohw", w[:, :, i, j], patch)
    return out


def _bn(x, p, prefix):
    g, b, m, v = (p[f"{prefix}.{k}"].astype(np.float64) for k in ("weight", "bias", "running_mean", "running_var"))
    shape = (-1,) + (1,) * (x.ndim - 1)
    return (x - m.reshape(shape)) / np.sqrt(v.reshape(shape) + BN_EPS) * g.reshape(shape) + b.reshape(shape)


def _block(x, p, prefix, stride=1, pad=0, prelu=True):
    """Conv_block (conv, bn, prelu) or Linear_block (conv, bn)."""
    x = _bn(_conv(x, p[f"{prefix}.conv.weight"].astype(np.float64), stride, pad), p, f"{prefix}.bn")
    if prelu:
        a = p[f"{prefix}.prelu.weight"].astype(np.float64)[:, None, None]
        x = np.where(x > 0, x, a * x)
    return x


def _depth_wise(x, p, prefix, stride, residual):
    y = _block(x, p, f"{prefix}.conv")
    y = _block(y, p, f"{prefix}.conv_dw", stride=stride, pad=1)
    y = _block(y, p, f"{prefix}.project", prelu=False)
    if not residual:
        return y
    se = f"{prefix}.se_module"
    if f"{se}.fc1.weight" in p:
        z = y.mean(axis=(1, 2), keepdims=True)
        z = np.maximum(_bn(_conv(z, p[f"{se}.fc1.weight"].astype(np.float64)), p, f"{se}.bn1"), 0)
        z = _bn(_conv(z, p[f"{se}.fc2.weight"].astype(np.float64)), p, f"{se}.bn2")
        y = y * (1 / (1 + np.exp(-z)))
    return x + y


def reference_logits(pth, x):
    """Upstream MiniFASNet forward (eval mode) in float64 on one input [1, 3, 80, 80] -> logits [3]."""
    p = {k[len("module."):]: v for k, v in pth.items()}
    out = _block(x[0].astype(np.float64), p, "conv1", stride=2, pad=1)
    out = _block(out, p, "conv2_dw", pad=1)
    for name, blocks in (("conv_23", None), ("conv_3", 4), ("conv_34", None), ("conv_4", 6),
                         ("conv_45", None), ("conv_5", 2)):
        if blocks is None:
            out = _depth_wise(out, p, name, stride=2, residual=False)
        else:
            for i in range(blocks):
                out = _depth_wise(out, p, f"{name}.model.{i}", stride=1, residual=True)
    out = _block(out, p, "conv_6_sep")
    out = _block(out, p, "conv_6_dw", prelu=False).reshape(-1)  # 5x5 depthwise over the 5x5 map
    out = p["linear.weight"].astype(np.float64) @ out
    out = _bn(out, p, "bn")
    return p["prob.weight"].astype(np.float64) @ out  # dropout is the identity in eval mode


def fixture_crops():
    """The committed 80x80 crops of tests/fixtures/liveness (real faces, live and attack)."""
    from PIL import Image

    paths = sorted((HERE.parent.parent / "tests" / "fixtures" / "liveness").glob("*.png"))
    if not paths:
        raise SystemExit("error: tests/fixtures/liveness/*.png missing; run tools/models/liveness_fixtures.py")
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def check_outputs(crops, onnx_dir=UPSTREAM, pth_dir=UPSTREAM, names=None):
    """onnxruntime logits of each ONNX file vs reference_logits on the same crops (80x80x3 uint8 RGB).
    Returns {model key: max abs logit difference}; raises SystemExit above OUTPUT_TOLERANCE."""
    import onnxruntime as ort

    result = {}
    for m in MODELS:
        onnx_path = Path(onnx_dir) / (names[m.key] if names else m.onnx)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        pth = read_pth(Path(pth_dir) / m.pth)
        worst = 0.0
        for c in crops:
            x = to_input(c)
            got = sess.run(None, {"input": x})[0][0].astype(np.float64)
            worst = max(worst, float(np.abs(got - reference_logits(pth, x)).max()))
        if worst > OUTPUT_TOLERANCE:
            raise SystemExit(f"error: {onnx_path.name}: onnxruntime logits differ from the upstream network "
                             f"computed from {m.pth} by {worst:.3g} (> {OUTPUT_TOLERANCE})")
        result[m.key] = {"crops": len(crops), "max_abs_logit_diff": worst}
    return result



# ---------------------------------------------------------------------------------------------------------
# Preprocessing, as upstream src/generate_patches.py CropImage + test.py do it.

def crop_box(box, width, height, scale):
    """CropImage._get_new_box: box (x, y, w, h) in pixels -> (x1, y1, x2, y2), inclusive integer corners."""
    x, y, box_w, box_h = box
    scale = min((height - 1) / box_h, min((width - 1) / box_w, scale))
    new_w, new_h = box_w * scale, box_h * scale
    cx, cy = box_w / 2 + x, box_h / 2 + y
    x1, y1, x2, y2 = cx - new_w / 2, cy - new_h / 2, cx + new_w / 2, cy + new_h / 2
    if x1 < 0:
        x2 -= x1
        x1 = 0
    if y1 < 0:
        y2 -= y1
        y1 = 0
    if x2 > width - 1:
        x1 -= x2 - width + 1
        x2 = width - 1
    if y2 > height - 1:
        y1 -= y2 - height + 1
        y2 = height - 1
    return int(x1), int(y1), int(x2), int(y2)


RESIZE_COEF_BITS = 11  # cv::INTER_RESIZE_COEF_BITS: weights in units of 1/2048


def _linear_taps(src, dst, clamp_weights):
    """cv2 INTER_LINEAR taps per output index: (index0, index1, weight0, weight1), weights in 1/2048.
    Position (d + 0.5) * src / dst - 0.5 in float32 (half-pixel centres, no antialiasing); weights
    round((1 - f) * 2048) and round(f * 2048). Columns (clamp_weights): outside [0, src-1] the position
    is clamped (f = 0). Rows: the weights keep f and only the two row indices are clamped."""
    scale = 1.0 / (dst / src)
    pos = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    i0 = np.floor(pos).astype(np.int64)
    frac = (pos - i0.astype(np.float32)).astype(np.float32)
    if clamp_weights:
        low, high = i0 < 0, i0 >= src - 1
        frac[low], i0[low] = 0, 0
        frac[high], i0[high] = 0, src - 1
    one = np.float32(1 << RESIZE_COEF_BITS)
    w0 = np.rint((np.float32(1) - frac) * one).astype(np.int64)
    w1 = np.rint(frac * one).astype(np.int64)
    return np.clip(i0, 0, src - 1), np.clip(i0 + 1, 0, src - 1), w0, w1


def resize_bilinear(img, out_w, out_h):
    """cv2.resize(img, (out_w, out_h)) (INTER_LINEAR) on uint8 HxWxC, bit for bit as OpenCV's SIMD path
    computes it (universal intrinsics: the same on SSE, AVX2 and NEON): horizontal pass
    h = p0 * a0 + p1 * a1 in integers; vertical pass ((h0 >> 4) * b0 >> 16) + ((h1 >> 4) * b1 >> 16),
    then (v + 2) >> 2 saturated to 0..255. Checked identical to opencv-python-headless 5.0.0 (x86 AVX2)
    on 300 random sizes 10-900 px, up and down, and on every fixture crop. OpenCV built without SIMD
    computes (h0 * b0 + h1 * b1 + 2**21) >> 22 instead: at most one grey level apart."""
    h, w = img.shape[:2]
    x0, x1, a0, a1 = _linear_taps(w, out_w, clamp_weights=True)
    y0, y1, b0, b1 = _linear_taps(h, out_h, clamp_weights=False)
    src = img.astype(np.int64)
    horiz = src[:, x0] * a0[None, :, None] + src[:, x1] * a1[None, :, None]
    v = (((horiz[y0] >> 4) * b0[:, None, None]) >> 16) + (((horiz[y1] >> 4) * b1[:, None, None]) >> 16)
    return np.clip((v + 2) >> 2, 0, 255).astype(np.uint8)


def crop(rgb, box, scale):
    """Upstream crop of an RGB frame: returns (80x80x3 uint8 RGB crop, (x1, y1, x2, y2))."""
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = crop_box(box, width, height, scale)
    return resize_bilinear(rgb[y1:y2 + 1, x1:x2 + 1], INPUT_SIZE, INPUT_SIZE), (x1, y1, x2, y2)


def to_input(crop_rgb):
    """80x80x3 uint8 RGB -> float32 [1, 3, 80, 80] BGR, 0..255 (the models' input)."""
    return np.ascontiguousarray(crop_rgb[:, :, ::-1].astype(np.float32).transpose(2, 0, 1)[None])


def softmax(logits):
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def detector_box(det):
    """BlazeFace detection (score, (cx, cy, w, h), keypoints) -> (x, y, w, h) in pixels, rounded to 1e-3
    so that the box written to fixtures is exactly the one used."""
    _, (cx, cy, w, h), _ = det
    return tuple(round(float(v), 3) for v in (cx - w / 2, cy - h / 2, w, h))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "list":
        for name, t in read_pth(sys.argv[2]).items():
            print(f"{name:60} {str(t.dtype):8} {list(t.shape)}")
        return 0
    if len(sys.argv) == 2 and sys.argv[1] == "check":
        import json
        print(json.dumps(check_all(verbose=True), indent=1))
        print(json.dumps(check_outputs(fixture_crops()), indent=1))
        print("MiniFASNet check OK: every ONNX initialiser matches the upstream .pth tensors, and the ONNX logits "
              "match the upstream network computed from the .pth on the fixture crops")
        return 0
    raise SystemExit(__doc__.split("\n\n")[1])


if __name__ == "__main__":
    sys.exit(main())
