"""Image loading and dlib's reference face pipeline (dlib-bin), shared by the build and fixture tools.

Images are loaded the way the Rust `image` crate decodes them for the daemon: EXIF orientation applied,
grey (and palette, grey+alpha, RGBA) converted to 8-bit RGB, grey replicated to all three channels,
alpha dropped (not blended).
"""
from dataclasses import dataclass

import dlib
import numpy as np
from PIL import Image, ImageOps

CHIP_SIZE = 150
CHIP_PADDING = 0.25


def load_rgb(path):
    """Return an HxWx3 uint8 RGB array as the Rust `image` crate + EXIF orientation would give."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I", "1"):
            im = im.convert("L")
        if im.mode == "L":
            grey = np.asarray(im)
            return np.repeat(grey[:, :, None], 3, axis=2)
        return np.ascontiguousarray(np.asarray(im.convert("RGB")))


@dataclass
class Face:
    """One face found by dlib's reference pipeline."""
    rect: tuple            # (left, top, right, bottom), dlib inclusive pixel rectangle
    upsample: int          # HOG pyramid upsampling used
    landmarks: np.ndarray  # 5x2 int, as dlib.full_object_detection returns them
    chip: np.ndarray       # 150x150x3 uint8 RGB (dlib.get_face_chip, padding 0.25)


class DlibPipeline:
    """dlib HOG detector + 5-point shape predictor + face chip + ResNet descriptor."""

    def __init__(self, predictor_path, resnet_path):
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(predictor_path))
        self.resnet = dlib.face_recognition_model_v1(str(resnet_path))

    def detect(self, rgb, upsamples=(1, 2)):
        """HOG detections with the first upsampling level in `upsamples` that finds a face."""
        for up in upsamples:
            rects = self.detector(rgb, up)
            if len(rects):
                return [(r, up) for r in rects]
        return []

    def landmarks(self, rgb, rect):
        """The 5-point shape for a dlib.rectangle (or (l, t, r, b) tuple)."""
        if not isinstance(rect, dlib.rectangle):
            rect = dlib.rectangle(*(int(round(v)) for v in rect))
        return self.predictor(rgb, rect)

    @staticmethod
    def chip(rgb, shape):
        return np.asarray(dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING))

    def faces(self, rgb, upsamples=(1, 2)):
        out = []
        for rect, up in self.detect(rgb, upsamples):
            shape = self.landmarks(rgb, rect)
            out.append(Face(rect=(rect.left(), rect.top(), rect.right(), rect.bottom()), upsample=up,
                            landmarks=shape_points(shape), chip=self.chip(rgb, shape)))
        return out

    def descriptor(self, chip):
        """dlib's own 128-D descriptor of a 150x150 chip."""
        return np.array(self.resnet.compute_face_descriptor(np.ascontiguousarray(chip)), np.float64)


def shape_points(shape):
    return np.array([[shape.part(k).x, shape.part(k).y] for k in range(shape.num_parts)], np.int64)


def chip_to_input(chip):
    """150x150x3 uint8 RGB chip -> float32 [1, 3, 150, 150] raw 0..255 (the encoder ONNX input)."""
    return np.ascontiguousarray(chip.astype(np.float32).transpose(2, 0, 1)[None])
