"""Reader for the dlib serialisation format (dlib/serialize.h), enough for the ResNet face descriptor.

Format facts used here:
- integers are "packed": one control byte (low nibble = byte count, bit 7 = negative) followed by
  that many little-endian magnitude bytes;
- scalar floats are a packed int64 mantissa and a packed int16 exponent (value = m * 2**e);
- tensors are `version(2), n, k, nr, nc` then raw little-endian float32 data;
- a network is serialised sub-network first, so the per-layer detail blocks appear in
  input -> output order, each starting with its length-prefixed version string (e.g. "con_5").
  We locate those strings and parse each block; tag/skip layers carry no parameters and are
  reconstructed by the graph builder from dlib's (fixed, documented) ResNet definition.
"""
import re

import numpy as np


class Reader:
    """Sequential reader over a dlib-serialised byte buffer."""

    def __init__(self, buf, pos=0):
        self.buf = buf
        self.pos = pos

    def byte(self):
        value = self.buf[self.pos]
        self.pos += 1
        return value

    def int(self):
        """A packed integer."""
        control = self.byte()
        value = 0
        for i in range(control & 0x0F):
            value |= self.byte() << (8 * i)
        return -value if control & 0x80 else value

    def float(self):
        """A scalar float stored as mantissa/exponent (dlib float_details)."""
        if self.buf[self.pos] & 0x70:
            raise ValueError(f"old ASCII float encoding at byte {self.pos} is not supported")
        mantissa = self.int()
        exponent = self.int()
        return float(np.ldexp(float(mantissa), exponent))

    def boolean(self):
        return self.byte() in (1, ord("1"))

    def tensor(self):
        """A dlib::tensor (resizable_tensor): version 2, then n, k, nr, nc and float32 data."""
        version = self.int()
        if version != 2:
            raise ValueError(f"unexpected tensor version {version} at byte {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        data = np.frombuffer(self.buf, dtype="<f4", count=count, offset=self.pos).copy()
        self.pos += 4 * count
        return data

    def alias_shape(self):
        """A dlib::alias_tensor: version 1, then its 4-D shape."""
        version = self.int()
        if version != 1:
            raise ValueError(f"unexpected alias_tensor version {version} at byte {self.pos}")
        return tuple(self.int() for _ in range(4))


def _split(params, *shapes):
    """Cut a flat parameter vector into consecutive arrays of the given shapes."""
    out, offset = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        out.append(params[offset:offset + n].reshape(shape))
        offset += n
    return out


def _parse_details(kind, r):
    """Parse one layer's detail block (the bytes after its version string)."""
    layer = {"type": kind}
    if kind.startswith("con_"):
        params = r.tensor()
        layer["num_filters"] = r.int()
        layer["kernel"] = (r.int(), r.int())
        layer["stride"] = (r.int(), r.int())
        layer["pad"] = (r.int(), r.int())
        wshape, bshape = r.alias_shape(), r.alias_shape()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.float()
        use_bias = r.boolean() if kind in ("con_5", "con_6") else True
        weights, bias = _split(params, wshape, bshape)
        layer["W"] = weights.astype(np.float32)
        layer["B"] = bias.ravel().astype(np.float32) if use_bias else np.zeros(wshape[0], np.float32)
    elif kind in ("affine_", "affine_2"):
        params = r.tensor()
        gshape, bshape = r.alias_shape(), r.alias_shape()
        layer["mode"] = r.int()
        gamma, beta = _split(params, gshape, bshape)
        layer["gamma"], layer["beta"] = gamma.ravel(), beta.ravel()
    elif kind in ("relu_", "relu_2"):
        pass
    elif kind in ("max_pool_2", "avg_pool_2"):
        layer["kernel"] = (r.int(), r.int())
        layer["stride"] = (r.int(), r.int())
        layer["pad"] = (r.int(), r.int())
    elif kind in ("fc_2", "fc_3"):
        num_outputs, num_inputs = r.int(), r.int()
        params = r.tensor()
        wshape, bshape = r.alias_shape(), r.alias_shape()
        bias_mode = r.int()  # 0 = has bias, 1 = no bias
        weights, bias = _split(params, wshape, bshape)
        layer["W"] = weights.reshape(num_inputs, num_outputs).astype(np.float32)
        layer["B"] = None if bias_mode else bias.ravel().astype(np.float32)
    elif kind == "input_rgb_image_sized":
        layer["avg"] = (r.float(), r.float(), r.float())
        layer["size"] = (r.int(), r.int())
    elif kind == "add_prev_":
        pass
    elif kind == "loss_metric_2":
        layer["margin"], layer["dist_thresh"] = r.float(), r.float()
    else:
        raise ValueError(f"unsupported dlib layer {kind!r}")
    return layer


LAYER_KINDS = ("input_rgb_image_sized", "con_4", "con_5", "con_6", "affine_2", "affine_", "relu_2",
               "relu_", "max_pool_2", "avg_pool_2", "fc_2", "fc_3", "add_prev_", "loss_metric_2")


def read_layers(path):
    """Return the parameterised layers of a dlib DNN .dat file, loss layer first, then input -> output."""
    buf = open(path, "rb").read()
    # version strings are serialised as packed length (1 byte count, 1 byte value) + ASCII
    pattern = re.compile(b"|".join(re.escape(bytes([1, len(k)]) + k.encode()) for k in LAYER_KINDS))
    layers, pos = [], 0
    while (match := pattern.search(buf, pos)) is not None:
        reader = Reader(buf, match.end())
        layers.append(_parse_details(match.group(0)[2:].decode(), reader))
        pos = reader.pos
    return layers
