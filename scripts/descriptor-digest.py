"""One SHA-256 over dlib's descriptors of a fixed set of faces, and the descriptor's median time: compares dlib builds.

Run it once on each build (e.g. after `CARDBOUND_DLIB_PATCHES=none bash scripts/setup.sh`, then after the default
set-up): the same digest means the builds give the same descriptors bit for bit (docs/biometric.md, "The one
patch"). The faces are the portraits and the first 300 LFW View 1 images of ../shared/faces, first HOG face of each
(one upsample), 5-point landmarks, dlib's own chip. Descriptors live in memory only; only the digest is printed.

    .venv/bin/python scripts/descriptor-digest.py [FACES_DIR]
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the engine runs it

import dlib
import numpy as np
from PIL import Image

from biometric.buildinfo import build_info


def main() -> int:
    faces = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "faces")
    paths = sorted((faces / "portraits").rglob("*.jpg")) + sorted((faces / "lfw-view1").rglob("*.jpg"))[:300]
    if not paths:
        print(f"descriptor-digest: no .jpg under {faces}/portraits or {faces}/lfw-view1", file=sys.stderr)
        return 2
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # face_recognition_models imports the deprecated pkg_resources
        import face_recognition_models as models
    detector = dlib.get_frontal_face_detector()
    landmarks = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
    net = dlib.face_recognition_model_v1(models.face_recognition_model_location())
    digest, times, n = hashlib.sha256(), [], 0
    for path in paths:
        img = np.asarray(Image.open(path).convert("RGB"))
        for box in list(detector(img, 1))[:1]:
            shape = landmarks(img, box)
            t = time.perf_counter()
            d = np.array(net.compute_face_descriptor(img, shape), dtype=np.float64)
            times.append(time.perf_counter() - t)
            digest.update(d.tobytes())
            d.fill(0.0)
            n += 1
        img = None
    info = build_info()
    print(f"faces {n} of {len(paths)} images; sha256 {digest.hexdigest()}; descriptor (chip + net) median "
          f"{1000 * float(np.median(times)):.2f} ms; dlib {info['version']}, patches={info['patches']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
