"""Map a BlazeFace (short-range) box to the dlib HOG-detector rectangle the 5-point predictor expects.

Model (3 coefficients, fitted by least squares in units of the BlazeFace box size):
    rect centre x = box cx + box_offset_x * box w
    rect centre y = box cy + box_offset_y * box h
    rect side     = box_scale * box w
Coordinates are continuous pixel coordinates of the original image (pixel i covers [i, i + 1)). A dlib
rectangle (left, top, right, bottom, inclusive) has centre ((l + r + 1) / 2, (t + b + 1) / 2) and side
r - l + 1; back to integers: left = round(cx - side / 2), right = left + round(side) - 1 (same for y).

BlazeFace runs on a door-camera-like view of each face: a square crop 2.2 x the dlib box side centred on
the face (black outside the image), resized to 128 x 128.

Second pass (4 more coefficients, `fit_refit`, on dlib's own (HOG rectangle, landmarks) pairs): the
rectangle dlib's detector draws around a face, predicted from the 5 points the predictor finds in it:
    side     = refit_side_eyes * eye distance + refit_side_nose * (eye midpoint to nose base)
    centre   = mean of the 5 points + (refit_offset_x, refit_offset_y) * side
facegate runs the predictor on the mapped BlazeFace box, then again on this rectangle around the first
landmarks (src/face/landmarks.rs LandmarkRect), which brings its landmarks closer to dlib's own on
in-the-wild photos (models/MODEL_CARD.md).
"""
import dlib
import numpy as np
from PIL import Image

import blazeface
from faces import shape_points

DOOR_CROP = 2.2


def door_crop(rgb, rect, factor=DOOR_CROP):
    """Square crop around a dlib rect; returns (crop uint8, x0, y0) with original = crop + (x0, y0)."""
    l, t, r, b = rect
    side = int(round((r - l + 1) * factor))
    x0 = int(round((l + r + 1) / 2 - side / 2))
    y0 = int(round((t + b + 1) / 2 - side / 2))
    return np.asarray(Image.fromarray(rgb).crop((x0, y0, x0 + side, y0 + side))), x0, y0


def blazeface_box(session, rgb, rect):
    """Best short-range detection in the door crop around `rect`: (score, cx, cy, w, h) in original
    pixels, or None."""
    crop, x0, y0 = door_crop(rgb, rect)
    dets = blazeface.detect(session, crop, blazeface.SHORT)
    if not dets:
        return None
    score, box, _ = dets[0]
    return np.array([score, box[0] + x0, box[1] + y0, box[2], box[3]])


def rect_geometry(rect):
    l, t, r, b = rect
    return np.array([(l + r + 1) / 2, (t + b + 1) / 2, r - l + 1])


def fit(boxes, rects):
    """Least-squares coefficients (box_scale, box_offset_x, box_offset_y), normalised by box size."""
    boxes = np.asarray(boxes, np.float64)
    geo = np.array([rect_geometry(r) for r in rects])
    return {"box_scale": float(np.mean(geo[:, 2] / boxes[:, 3])),
            "box_offset_x": float(np.mean((geo[:, 0] - boxes[:, 1]) / boxes[:, 3])),
            "box_offset_y": float(np.mean((geo[:, 1] - boxes[:, 2]) / boxes[:, 4]))}


def to_rect(box, coef):
    """BlazeFace (score, cx, cy, w, h) -> dlib rectangle (l, t, r, b) with the mapping `coef`."""
    _, cx, cy, w, h = box
    cx, cy = cx + coef["box_offset_x"] * w, cy + coef["box_offset_y"] * h
    side = coef["box_scale"] * w
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    return left, top, left + int(round(side)) - 1, top + int(round(side)) - 1


IDENTITY = {"box_scale": 1.0, "box_offset_x": 0.0, "box_offset_y": 0.0}


def landmark_features(pts):
    """(centre of the 5 points, eye distance, eye midpoint to nose base) of dlib's 5 points."""
    pts = np.asarray(pts, np.float64)
    eyes = pts[0:4].mean(0)
    return pts.mean(0), float(np.linalg.norm(pts[0:2].mean(0) - pts[2:4].mean(0))), float(np.linalg.norm(eyes - pts[4]))


def fit_refit(rects, landmarks):
    """dlib's rectangle from its own 5 points (the second landmark pass, facegate's LandmarkRect):
    side = refit_side_eyes * eye distance + refit_side_nose * eye-nose distance (least squares),
    centre = centre of the points + (refit_offset_x, refit_offset_y) * side (least squares in side units).
    Fitted on dlib's (HOG rectangle, landmarks) pairs."""
    feats = [landmark_features(p) for p in landmarks]
    geo = np.array([rect_geometry(r) for r in rects])
    a = np.linalg.lstsq(np.array([[e, n] for _, e, n in feats]), geo[:, 2], rcond=None)[0]
    side = geo[:, 2]
    c = np.array([f[0] for f in feats])
    return {"refit_side_eyes": float(a[0]), "refit_side_nose": float(a[1]),
            "refit_offset_x": float(np.sum((geo[:, 0] - c[:, 0]) * side) / np.sum(side ** 2)),
            "refit_offset_y": float(np.sum((geo[:, 1] - c[:, 1]) * side) / np.sum(side ** 2))}


def refit_rect(pts, coef):
    """The second pass's dlib rectangle (l, t, r, b) for landmarks `pts` (as facegate's LandmarkRect)."""
    c, e, n = landmark_features(pts)
    raw = coef["refit_side_eyes"] * e + coef["refit_side_nose"] * n
    cx, cy = c[0] + coef["refit_offset_x"] * raw, c[1] + coef["refit_offset_y"] * raw
    side = max(int(round(raw)), 1)
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    return left, top, left + side - 1, top + side - 1


def measure(samples, coef, pipeline):
    """Landmark error (px and fraction of the inter-ocular distance) and embedding L2 of the dlib pipeline
    started from the mapped BlazeFace box (and a second pass when `coef` has the refit_* coefficients),
    against dlib's own pipeline (HOG rect).
    samples: list of (rgb, dlib rect, dlib landmarks 5x2, dlib descriptor, blazeface box)."""
    px, iod_frac, l2 = [], [], []
    for rgb, _, ref_pts, ref_desc, box in samples:
        shape = pipeline.landmarks(rgb, dlib.rectangle(*to_rect(box, coef)))
        if "refit_side_eyes" in coef:
            shape = pipeline.landmarks(rgb, dlib.rectangle(*refit_rect(shape_points(shape), coef)))
        pts = shape_points(shape)
        err = np.linalg.norm(pts - ref_pts, axis=1).max()
        iod = np.linalg.norm(ref_pts[0:2].mean(0) - ref_pts[2:4].mean(0))
        px.append(err)
        iod_frac.append(err / iod)
        l2.append(np.linalg.norm(pipeline.descriptor(pipeline.chip(rgb, shape)) - ref_desc))
    return {"faces": len(samples), "landmark_px_mean": float(np.mean(px)), "landmark_px_max": float(np.max(px)),
            "landmark_iod_mean": float(np.mean(iod_frac)), "landmark_iod_max": float(np.max(iod_frac)),
            "embedding_l2_mean": float(np.mean(l2)), "embedding_l2_max": float(np.max(l2))}
