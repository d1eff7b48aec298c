"""The face engine shared by enrolment and the gate: image sources, detection, quality, template, 1:1 compare, wiping.

Public API (everything else is internal). Importing this package is cheap: dlib and its models load on first use.

Image sources — each returns/yields RGB uint8 frames (H, W, 3) in memory; raise an `ImageError` subclass:
    load_path(path) -> Frame                      file (JPEG/PNG/BMP/WebP/PPM), header checked before decoding
    load_bytes(data) -> Frame                     encoded image in memory (e.g. an upload)
    from_array(array, *, bgr=False) -> Frame      validate + copy a numpy frame (gray/RGB/RGBA; BGR from OpenCV)
    video_frames(source, *, max_frames=None, read_timeout_s=5.0) -> Iterator[Frame]
                                                  camera index, /dev/videoN or a video file (OpenCV)
    directory_frames(directory) -> Iterator[Frame]

Engine:
    engine = FaceEngine(config=EngineConfig(), quality=GATE)       # or quality=DESK at the enrolment desk
    engine.analyse(frame, *, allow_several=False, quality=None) -> Sample   # raises QualityFailure
    engine.reference_template(samples, num_jitters=None) -> Template        # enrolment (chip + mirror, averaged)
    engine.probe_template(sample) -> Template                               # live probe at the gate
    engine.detect(frame) -> list[Box]                                        # largest first
    engine.warm_up()                                                         # load models now (~1 s)

Quality: QualityFailure(.reasons: tuple[QualityReason, ...], .reason, .metrics, .message(lang)),
    QualityReason (StrEnum: NO_FACE, MULTIPLE_FACES, FACE_TOO_SMALL, FACE_CUT_OFF, BLURRY, UNDEREXPOSED,
    OVEREXPOSED, POSE), message(reason, lang), QualityConfig (frozen), presets DESK (strict) and GATE (lenient).

Templates and the 1:1 decision:
    Template.to_bytes() -> bytes (exactly 512) / Template.from_bytes(b) -> Template (validated, TemplateError)
    compare(reference, probe) -> float            Euclidean distance of unit templates, in [0, 2]
    decide(distance, threshold=DEFAULT_THRESHOLD) -> bool
    DEFAULT_THRESHOLD, TEMPLATE_BYTES, TEMPLATE_FORMAT (for the sealed container header)

Wiping: wipe(*objs), `with sensitive(obj) as o:` (arrays, bytearrays, Sample, Template are overwritten on exit).

There is no function that compares a probe with several references (1:1 only, art. 2.5.2.85 §3); a test
inspects this API to keep it that way.
"""

from __future__ import annotations

import os as _os

# One OpenBLAS thread for dlib's descriptor (see biometric.engine._Models): set here too, at package import, so
# that it also holds when something else loads dlib first in the process (face_recognition in the benchmarks).
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from biometric.engine import Box, EngineConfig, FaceEngine, Sample
from biometric.errors import (
    BiometricError,
    CameraError,
    CorruptImageError,
    EmptyImageError,
    ImageError,
    ImageNotFoundError,
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
    TemplateError,
)
from biometric.quality import (
    DESK,
    GATE,
    PRESETS,
    QualityConfig,
    QualityFailure,
    QualityMetrics,
    QualityReason,
    message,
)
from biometric.sources import (
    DEFAULT_LIMITS,
    Frame,
    ImageLimits,
    directory_frames,
    from_array,
    load_bytes,
    load_path,
    video_frames,
)
from biometric.template import (
    DEFAULT_THRESHOLD,
    TEMPLATE_BYTES,
    TEMPLATE_FORMAT,
    Template,
    compare,
    decide,
)
from biometric.wipe import sensitive, wipe

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_THRESHOLD",
    "DESK",
    "GATE",
    "PRESETS",
    "TEMPLATE_BYTES",
    "TEMPLATE_FORMAT",
    "BiometricError",
    "Box",
    "CameraError",
    "CorruptImageError",
    "EmptyImageError",
    "EngineConfig",
    "FaceEngine",
    "Frame",
    "ImageError",
    "ImageLimits",
    "ImageNotFoundError",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "NotAnImageError",
    "QualityConfig",
    "QualityFailure",
    "QualityMetrics",
    "QualityReason",
    "Sample",
    "Template",
    "TemplateError",
    "compare",
    "decide",
    "directory_frames",
    "from_array",
    "load_bytes",
    "load_path",
    "message",
    "sensitive",
    "video_frames",
    "wipe",
]
