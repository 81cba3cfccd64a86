"""Convert dlib_face_recognition_resnet_model_v1.dat (Davis E. King, CC0) to an ONNX graph.

The dlib network (dlib/examples/dnn_face_recognition_ex.cpp) is

    input_rgb_image_sized<150>            (x - avg) / 256 per channel
    con<32,7,7,2,2> affine relu max_pool<3,3,2,2>
    residual blocks: con3x3(stride s) affine relu con3x3 affine, then
        plain  (s=1): add_prev(block input)
        down   (s=2): avg_pool<2,2,2,2>(block input) + block output
      followed by relu
    avg_pool_everything, fc_no_bias<128>, loss_metric (L2 distance, threshold 0.6)

ONNX conventions of the produced file:
- input "input": float32 [1, 3, 150, 150], RGB, raw 0..255, NCHW (a dlib 150x150 face chip);
  dlib's (x - avg) / 256 is folded into conv1 (exact: conv1 has no padding);
- every affine (frozen batch-norm) is folded into the preceding convolution;
- dlib's add_prev zero-pads the smaller operand at the bottom/right (odd spatial sizes after a stride-2
  conv vs a 2x2 pool, and channel growth): emitted as an explicit Pad before Add;
- output "embedding": float32 [1, 128], not normalised.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dlib_dat import read_layers

OPSET = 13
IR_VERSION = 8


def _out_size(n, kernel, stride, pad):
    return 1 + (n + 2 * pad - kernel) // stride


class _Graph:
    """Collects nodes and initialisers and tracks each tensor's (C, H, W)."""

    def __init__(self):
        self.nodes, self.inits, self.shapes = [], [], {}
        self._count = 0

    def name(self, prefix):
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, array, prefix):
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op, inputs, shape, out=None, **attrs):
        out = out or self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        self.shapes[out] = shape
        return out

    def conv(self, x, layer, affine, fold_input=None):
        """Conv with the following affine folded in; optionally fold (x - avg)/256 of the input layer."""
        w, b = layer["W"].copy(), layer["B"].copy()
        if fold_input is not None:
            if layer["pad"] != (0, 0):
                raise ValueError("input normalisation can only be folded into an unpadded conv")
            b = b - (w * fold_input[None, :, None, None]).sum(axis=(1, 2, 3)) / 256.0
            w = w / 256.0
        if affine["mode"] != 0:
            raise ValueError("expected a per-channel (conv mode) affine layer")
        w = w * affine["gamma"][:, None, None, None]
        b = b * affine["gamma"] + affine["beta"]
        (kh, kw), (sh, sw), (ph, pw) = layer["kernel"], layer["stride"], layer["pad"]
        _, h, wd = self.shapes[x]
        shape = (layer["num_filters"], _out_size(h, kh, sh, ph), _out_size(wd, kw, sw, pw))
        return self.node("Conv", [x, self.const(w.astype(np.float32), "W"), self.const(b.astype(np.float32), "B")],
                         shape, kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw])

    def pool(self, op, x, layer):
        (kh, kw), (sh, sw), (ph, pw) = layer["kernel"], layer["stride"], layer["pad"]
        if (ph, pw) != (0, 0):
            raise ValueError(f"{op} with padding is not expected in this network")
        c, h, w = self.shapes[x]
        return self.node(op, [x], (c, _out_size(h, kh, sh, 0), _out_size(w, kw, sw, 0)),
                         kernel_shape=[kh, kw], strides=[sh, sw])

    def add_prev(self, a, b):
        """dlib add_prev: element-wise sum, zero-padding the smaller tensor at the end of each axis."""
        target = tuple(max(x, y) for x, y in zip(self.shapes[a], self.shapes[b]))

        def pad(x):
            shape = self.shapes[x]
            if shape == target:
                return x
            pads = np.array([0, 0, 0, 0, 0] + [t - s for t, s in zip(target, shape)], np.int64)
            return self.node("Pad", [x, self.const(pads, "pads")], target, mode="constant")

        return self.node("Add", [pad(a), pad(b)], target)

    def relu(self, x):
        return self.node("Relu", [x], self.shapes[x])


def _expect(layers, i, *kinds):
    got = layers[i]["type"] if i < len(layers) else "end of file"
    if not any(got.startswith(k) for k in kinds):
        raise ValueError(f"layer {i}: expected {'/'.join(kinds)}, found {got}")
    return layers[i]


def build(dat_path):
    """Return the ONNX ModelProto for the dlib ResNet descriptor at dat_path."""
    layers = read_layers(dat_path)
    loss = _expect(layers, 0, "loss_metric")
    inp = _expect(layers, 1, "input_rgb_image_sized")
    height, width = inp["size"]
    g = _Graph()
    g.shapes["input"] = (3, height, width)

    # stem: con 7x7/2 (input normalisation folded in), affine, relu, max_pool 3x3/2
    i = 2
    x = g.conv("input", _expect(layers, i, "con_"), _expect(layers, i + 1, "affine"),
               fold_input=np.array(inp["avg"], np.float64))
    _expect(layers, i + 2, "relu")
    x = g.pool("MaxPool", g.relu(x), _expect(layers, i + 3, "max_pool"))
    i += 4

    # residual blocks, each ending in a relu
    while layers[i]["type"].startswith("con_"):
        block_in = x
        y = g.relu(g.conv(x, layers[i], _expect(layers, i + 1, "affine")))
        _expect(layers, i + 2, "relu")
        y = g.conv(y, _expect(layers, i + 3, "con_"), _expect(layers, i + 4, "affine"))
        i += 5
        if layers[i]["type"] == "avg_pool_2":  # residual_down: pool the block input
            block_in = g.pool("AveragePool", block_in, layers[i])
            i += 1
        _expect(layers, i, "add_prev")
        _expect(layers, i + 1, "relu")
        x = g.relu(g.add_prev(y, block_in))
        i += 2

    gap = _expect(layers, i, "avg_pool")
    if gap["kernel"] != (0, 0):
        raise ValueError("expected avg_pool_everything before the fc layer")
    x = g.node("GlobalAveragePool", [x], (g.shapes[x][0], 1, 1))
    fc = _expect(layers, i + 1, "fc_")
    if fc["B"] is not None or i + 2 != len(layers):
        raise ValueError("expected a final fc_no_bias layer")
    x = g.node("Flatten", [x], (g.shapes[x][0],), axis=1)
    g.node("MatMul", [x, g.const(fc["W"], "fc_W")], (fc["W"].shape[1],), out="embedding")

    graph = helper.make_graph(
        g.nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, fc["W"].shape[1]])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="facegate tools/models", ir_version=IR_VERSION)
    model.doc_string = (
        "dlib_face_recognition_resnet_model_v1 by Davis E. King (CC0 1.0), converted by facegate tools/models. "
        "Input: 150x150 RGB face chip (dlib get_face_chip, padding 0.25), raw 0..255, NCHW. "
        f"Output: 128-D descriptor; same person if L2 distance < {loss['dist_thresh']:.2f}.")
    onnx.checker.check_model(model)
    return model
