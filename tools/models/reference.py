"""Write tests/fixtures/reference/dlib_reference.json: dlib's reference results on the fixture images.

    tools/models/.venv/bin/python tools/models/reference.py

Needs the build's inputs (tools/models/build/inputs, made by build.sh) and models/ (BlazeFace ONNX and
models.toml). For every fixture image: the decoded size, a hash of the decoded RGB pixels, dlib's HOG
detections (upsampling 1, or 2 when 1 finds nothing) with the 5 landmarks and the 128-D descriptor of
dlib's own pipeline, and BlazeFace short-range results decoded from facegate's ONNX file.
"""
import hashlib
import json
from pathlib import Path

import dlib
import numpy as np

import blazeface
import boxmap
import evaluate
import manifest
from faces import CHIP_PADDING, CHIP_SIZE, DlibPipeline, load_rgb, shape_points

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FIXTURES = REPO / "tests" / "fixtures"
INPUTS = HERE / "build" / "inputs"
MODELS = REPO / "models"
OUT = FIXTURES / "reference" / "dlib_reference.json"

ABOUT = (
    "Reference results of dlib (dlib-bin) on the fixture images, by tools/models/reference.py. Images are "
    "decoded as the Rust image crate does: EXIF orientation applied, grey replicated to RGB, alpha dropped; "
    "rgb_sha256 hashes the decoded HxWx3 bytes (PNG/PGM decodes must match exactly; JPEG decoders may differ "
    "by a level or two, so compare JPEG results with a tolerance). rect = [left, top, right, bottom] "
    "inclusive (dlib); landmarks = dlib 5-point order, integer pixels; descriptor = dlib "
    f"compute_face_descriptor of get_face_chip(size={CHIP_SIZE}, padding={CHIP_PADDING}). "
    "blazeface_short.whole_image: short-range on the whole image letterboxed (centred black padding, PIL "
    "bilinear resize to 128) with weighted NMS; box = [cx, cy, w, h] and keypoints in original pixels. "
    "door_crop: short-range on a square crop 2.2 x the dlib rect side centred on the face (black outside), "
    "resized to 128; mapped_rect applies models.toml [landmarks] box_scale/box_offset; the landmarks and "
    "descriptor then come from dlib's predictor and encoder started from mapped_rect.")


def fixture_images():
    faces = sorted(p for p in (FIXTURES / "faces").iterdir() if p.suffix in (".jpg", ".png", ".pgm"))
    return faces + sorted((FIXTURES / "spoof").glob("*.jpg"))


def floats(a, digits=6):
    return [round(float(x), digits) for x in np.ravel(a)]


def detection_json(score, box, keypoints):
    return {"score": round(score, 5), "box": floats(box, 3), "keypoints": [floats(k, 3) for k in keypoints]}


def hog(pipeline, rgb):
    """HOG detections with their scores at the first upsampling level (1, 2) that finds a face."""
    for up in (1, 2):
        rects, scores, _ = pipeline.detector.run(rgb, up, 0.0)
        if len(rects):
            return up, list(zip(rects, scores))
    return None, []


def image_entry(path, pipeline, short_sess, coef):
    rgb = load_rgb(path)
    up, found = hog(pipeline, rgb)
    faces = []
    for rect, score in found:
        shape = pipeline.landmarks(rgb, rect)
        ltrb = (rect.left(), rect.top(), rect.right(), rect.bottom())
        face = {"rect": list(ltrb), "hog_score": round(float(score), 5),
                "landmarks": shape_points(shape).tolist(),
                "descriptor": floats(pipeline.descriptor(pipeline.chip(rgb, shape)), 8)}
        box = boxmap.blazeface_box(short_sess, rgb, ltrb)
        if box is not None:
            _, x0, y0 = boxmap.door_crop(rgb, ltrb)
            mapped = boxmap.to_rect(box, coef)
            mshape = pipeline.landmarks(rgb, dlib.rectangle(*mapped))
            face["door_crop"] = {
                "crop_origin": [x0, y0], "crop_side": int(round((ltrb[2] - ltrb[0] + 1) * boxmap.DOOR_CROP)),
                "score": round(float(box[0]), 5), "box": floats(box[1:], 3), "mapped_rect": list(mapped),
                "landmarks": shape_points(mshape).tolist(),
                "descriptor": floats(pipeline.descriptor(pipeline.chip(rgb, mshape)), 8)}
        faces.append(face)
    whole = blazeface.detect(short_sess, rgb, blazeface.SHORT)
    return {"file": str(path.relative_to(FIXTURES)), "width": rgb.shape[1], "height": rgb.shape[0],
            "rgb_sha256": hashlib.sha256(rgb.tobytes()).hexdigest(), "hog_upsample": up, "faces": faces,
            "blazeface_short": {"whole_image": [detection_json(*d) for d in whole]}}


def main():
    for need in (INPUTS / "shape_predictor_5_face_landmarks.dat", MODELS / "models.toml"):
        if not need.exists():
            raise SystemExit(f"error: {need} is missing; run tools/models/build.sh first")
    pipeline = DlibPipeline(INPUTS / "shape_predictor_5_face_landmarks.dat",
                            INPUTS / "dlib_face_recognition_resnet_model_v1.dat")
    man = manifest.load(MODELS / "models.toml")
    coef = {k: man["landmarks"][k] for k in ("box_scale", "box_offset_x", "box_offset_y")}
    short_sess = evaluate.session(MODELS / man["detector"]["short_range"]["file"])
    images = [image_entry(p, pipeline, short_sess, coef) for p in fixture_images()]
    doc = {"about": ABOUT, "dlib_version": dlib.__version__, "threshold": 0.6, "box_mapping": coef,
           "images": images}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT}: {len(images)} images, {sum(len(i['faces']) for i in images)} dlib faces")


if __name__ == "__main__":
    main()
