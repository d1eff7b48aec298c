"""The 128-D face template, its 512-byte wire form, and 1:1 comparison.

A template is the dlib ResNet descriptor (face_recognition_models `dlib_face_recognition_resnet_model_v1`),
L2-normalised, as 128 little-endian float32 = exactly 512 bytes. Normalising probes and references alike makes the
Euclidean distance a function of the angle only (d = sqrt(2 - 2 cos)), which is what the threshold was tuned on.

There is deliberately no function that compares one probe with several references: the law (art. 2.5.2.85 §3)
allows verification 1:1 against the template read from the holder's own card, never identification.
"""

from __future__ import annotations

import hmac
import math

import numpy as np

from biometric.errors import TemplateError

DIMENSIONS = 128
TEMPLATE_BYTES = DIMENSIONS * 4
#: Identifies the extractor and the encoding, for the sealed container's header (CBEFF format type).
TEMPLATE_FORMAT = "dlib-resnet-v1/l2/f32le/128"
#: Default decision threshold on the distance between unit-normalised templates, chosen on LFW pairsDevTrain: its best
#: accuracy (98.95 %) holds for t in [0.42427, 0.42476) only — a sliver set by single pairs — so the default is that
#: threshold rounded *down* to two decimals, the side with fewer false matches, which an access-control system errs
#: on (run of 2026-11-24 in docs/biometric.md, where the cost on DevTrain and DevTest is reported).
#: It corresponds to ~0.59 on raw dlib descriptors (stock face_recognition uses 0.6).
DEFAULT_THRESHOLD = 0.42
_NORM_TOLERANCE = 1e-3
_LE_F32 = np.dtype("<f4")


class Template:
    """A unit-length 128-D float32 descriptor. Construct from a descriptor with `from_descriptor`."""

    __slots__ = ("_v",)

    def __init__(self, vector: np.ndarray) -> None:
        v = np.asarray(vector)
        if v.shape != (DIMENSIONS,):
            raise TemplateError(f"template must have {DIMENSIONS} values, got shape {v.shape}")
        if v.dtype != np.float32:
            raise TemplateError(f"template must be float32, got {v.dtype}")
        if not np.all(np.isfinite(v)):
            raise TemplateError("template contains non-finite values")
        norm = float(np.linalg.norm(v))  # in place: a float64 copy would be freed unwiped
        if abs(norm - 1.0) > _NORM_TOLERANCE:
            raise TemplateError(f"template norm {norm:.4f} is not 1 (not a normalised descriptor)")
        self._v = np.array(v, dtype=np.float32, copy=True)

    @classmethod
    def from_descriptor(cls, descriptor: np.ndarray) -> Template:
        """L2-normalise a raw descriptor (dlib gives norms around 1.4) into a template."""
        d = np.asarray(descriptor, dtype=np.float64).reshape(-1)
        if d.shape != (DIMENSIONS,) or not np.all(np.isfinite(d)):
            raise TemplateError("descriptor must be 128 finite values")
        norm = float(np.linalg.norm(d))
        if not 0.1 < norm < 10.0:
            raise TemplateError(f"descriptor norm {norm:.4f} out of range")
        unit = d / norm
        f32 = unit.astype(np.float32)
        try:
            return cls(f32)  # copies: every working array here is wiped, none left to the allocator as it was
        finally:
            for a in (d, unit, f32):
                a.fill(0.0)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Template:
        """Parse the 512-byte wire form; rejects wrong length, NaN/inf and non-unit vectors."""
        if len(data) != TEMPLATE_BYTES:
            raise TemplateError(f"template must be {TEMPLATE_BYTES} bytes, got {len(data)}")
        # a view of the caller's (wipeable) buffer, never a `bytes` copy; astype makes the one owned array
        v = np.frombuffer(data, dtype=_LE_F32).astype(np.float32)
        try:
            return cls(v)
        finally:
            v.fill(0.0)

    def to_bytes(self) -> bytes:
        return self._v.astype(_LE_F32).tobytes()

    @property
    def vector(self) -> np.ndarray:
        """A read-only view (wiped with the template)."""
        view = self._v.view()
        view.flags.writeable = False
        return view

    def wipe(self) -> None:
        self._v.fill(0.0)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Template):
            return NotImplemented
        return hmac.compare_digest(self.to_bytes(), other.to_bytes())

    def __hash__(self) -> int:
        raise TypeError("templates are not hashable (they must not become dictionary keys or set members)")

    def __repr__(self) -> str:
        return "Template(<128 float32, redacted>)"


def compare(reference: Template, probe: Template) -> float:
    """Euclidean distance between two templates, in [0, 2]: smaller means more alike. 1:1 only."""
    if not isinstance(reference, Template) or not isinstance(probe, Template):
        raise TypeError("compare() takes exactly two Template objects (1:1 verification only)")
    # float64 working copies of both templates, wiped here (freed temporaries would keep them)
    diff = reference._v.astype(np.float64)
    other = probe._v.astype(np.float64)
    try:
        np.subtract(diff, other, out=diff)
        return math.sqrt(float(np.dot(diff, diff)))
    finally:
        diff.fill(0.0)
        other.fill(0.0)


def decide(distance: float, threshold: float = DEFAULT_THRESHOLD) -> bool:
    """True when `distance` is a match at `threshold` (distance <= threshold)."""
    if not math.isfinite(distance) or distance < 0:
        raise ValueError("distance must be a finite non-negative number")
    if not 0.0 < threshold < 2.0:
        raise ValueError("threshold must be in (0, 2)")
    return bool(float(distance) <= threshold)
