"""The real, redistributable face images the build calibrates and evaluates on, as aligned chips.

All come from the repository itself, so a fresh clone rebuilds without any other data:
- tools/models/calibration/orl_faces/  all 400 ORL images (AT&T Laboratories Cambridge), 40 people;
- tests/fixtures/faces/                whitehouse photos (public domain), downscaled;
- tests/fixtures/spoof/                Silent-Face-Anti-Spoofing samples (Apache-2.0).
Chips are made by dlib's reference pipeline (HOG detector, upsampling 1 then 2 if nothing is found,
5-point predictor, get_face_chip 150 / 0.25).
"""
from pathlib import Path

import numpy as np

from faces import load_rgb

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ORL = HERE / "calibration" / "orl_faces"
FIXTURES = REPO / "tests" / "fixtures"


def image_sets():
    """{set name: [(identity label, path)]} in a fixed order."""
    orl = [(f"orl_{d.name}", p) for d in sorted(ORL.glob("s*"), key=lambda d: int(d.name[1:]))
           for p in sorted(d.glob("*.pgm"), key=lambda p: int(p.stem))]
    whitehouse = [(None, p) for p in sorted((FIXTURES / "faces").iterdir())
                  if p.suffix in (".jpg", ".png") and p.stem != "no_face"]
    spoof = [("spoof_subject", p) for p in sorted((FIXTURES / "spoof").glob("*.jpg"))]
    if len(orl) != 400 or not whitehouse:
        raise SystemExit(f"error: calibration images missing (found {len(orl)} ORL images in {ORL}, "
                         f"{len(whitehouse)} in {FIXTURES / 'faces'}); run tools/models/make_fixtures.py")
    return {"orl": orl, "whitehouse": whitehouse, "spoof": spoof}


# identities of the whitehouse fixtures (people named in the file names)
WHITEHOUSE_IDS = {"obama": "obama", "biden": "biden", "alex-lacamoire": "lacamoire",
                  "lin-manuel-miranda": "miranda"}


def whitehouse_identity(path, faces_in_image):
    """Label a whitehouse face when the image shows one named person, else None (unknown)."""
    if faces_in_image != 1:
        return None
    for prefix, ident in WHITEHOUSE_IDS.items():
        if path.stem.startswith(prefix):
            return ident
    return None


def make_chips(pipeline):
    """Run dlib's pipeline over every image; returns dict of arrays: chips uint8 [N,150,150,3],
    dlib descriptors float64 [N,128], rect [N,4], landmarks [N,5,2], set name, identity label, path."""
    rows = []
    for set_name, items in image_sets().items():
        for label, path in items:
            rgb = load_rgb(path)
            found = pipeline.faces(rgb)
            for face in found:
                ident = label if set_name != "whitehouse" else whitehouse_identity(path, len(found))
                rows.append((face.chip, set_name, ident or "", str(path), face.rect, face.landmarks))
    chips = np.stack([r[0] for r in rows])
    descriptors = np.stack([pipeline.descriptor(c) for c in chips])
    return {"chips": chips, "dlib": descriptors, "set": np.array([r[1] for r in rows]),
            "identity": np.array([r[2] for r in rows]), "path": np.array([r[3] for r in rows]),
            "rect": np.array([r[4] for r in rows]), "landmarks": np.stack([r[5] for r in rows])}
