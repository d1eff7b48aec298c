"""Quality gate in the spirit of ISO/IEC 29794-5 (face image quality): one face, size, sharpness, exposure, pose.

Every failure has a stable reason code (`QualityReason`, stored in audit events and shown at the desk) and a short
message in French, Dutch and English. Thresholds live in a frozen `QualityConfig`; `DESK` is strict (an enrolment
photo must be good), `GATE` is lenient (a live probe only has to be comparable; the decision threshold does the rest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np

Lang = Literal["fr", "nl", "en"]


class QualityReason(StrEnum):
    NO_FACE = "NO_FACE"
    MULTIPLE_FACES = "MULTIPLE_FACES"
    FACE_TOO_SMALL = "FACE_TOO_SMALL"
    FACE_CUT_OFF = "FACE_CUT_OFF"
    BLURRY = "BLURRY"
    UNDEREXPOSED = "UNDEREXPOSED"
    OVEREXPOSED = "OVEREXPOSED"
    POSE = "POSE"


MESSAGES: dict[QualityReason, dict[Lang, str]] = {
    QualityReason.NO_FACE: {
        "fr": "Aucun visage détecté. Regardez la caméra.",
        "nl": "Geen gezicht gevonden. Kijk in de camera.",
        "en": "No face found. Look at the camera.",
    },
    QualityReason.MULTIPLE_FACES: {
        "fr": "Plusieurs visages détectés. Une seule personne devant la caméra.",
        "nl": "Meerdere gezichten gevonden. Eén persoon voor de camera.",
        "en": "Several faces found. One person in front of the camera only.",
    },
    QualityReason.FACE_TOO_SMALL: {
        "fr": "Visage trop petit. Approchez-vous de la caméra.",
        "nl": "Gezicht te klein. Kom dichter bij de camera.",
        "en": "Face too small. Move closer to the camera.",
    },
    QualityReason.FACE_CUT_OFF: {
        "fr": "Visage partiellement hors de l'image. Centrez votre visage.",
        "nl": "Gezicht gedeeltelijk buiten beeld. Plaats uw gezicht in het midden.",
        "en": "Face partly outside the picture. Centre your face.",
    },
    QualityReason.BLURRY: {
        "fr": "Image floue. Restez immobile.",
        "nl": "Beeld onscherp. Blijf stilstaan.",
        "en": "Image blurred. Hold still.",
    },
    QualityReason.UNDEREXPOSED: {
        "fr": "Visage trop sombre. Améliorez l'éclairage.",
        "nl": "Gezicht te donker. Zorg voor meer licht.",
        "en": "Face too dark. Improve the lighting.",
    },
    QualityReason.OVEREXPOSED: {
        "fr": "Visage surexposé. Réduisez l'éclairage direct.",
        "nl": "Gezicht overbelicht. Vermijd direct licht.",
        "en": "Face overexposed. Avoid direct light.",
    },
    QualityReason.POSE: {
        "fr": "Tête tournée ou inclinée. Regardez droit vers la caméra.",
        "nl": "Hoofd gedraaid of gekanteld. Kijk recht in de camera.",
        "en": "Head turned or tilted. Look straight at the camera.",
    },
}


def message(reason: QualityReason, lang: Lang = "en") -> str:
    return MESSAGES[reason][lang]


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the quality gate. Measures are defined in `QualityMetrics`."""

    name: str
    min_inter_eye_px: float  # distance between eye centres in the original frame (ICAO asks >= 60, prefers 90)
    min_sharpness: float  # variance of the Laplacian of the aligned grey face chip, contrast-normalised
    min_brightness: float  # mean grey level (0..255) of the inner face
    max_brightness: float
    max_clipped: float  # fraction of inner-face pixels at <= 5 or >= 250
    max_yaw_deg: float
    max_roll_deg: float
    max_outside: float = 0.10  # fraction of the face box outside the frame
    #: Which face is the subject when the caller allows several (`analyse(allow_several=True)`):
    #: "largest" — the largest, only if its area is >= `dominance` × the next one's (else MULTIPLE_FACES);
    #: "central" — the one nearest the frame centre (a camera aimed at the person using the reader).
    subject: Literal["largest", "central"] = "largest"
    dominance: float = 2.0


DESK = QualityConfig(
    name="desk",
    min_inter_eye_px=60.0,
    min_sharpness=60.0,
    min_brightness=60.0,
    max_brightness=200.0,
    max_clipped=0.15,
    max_yaw_deg=20.0,
    max_roll_deg=10.0,
    max_outside=0.0,
    dominance=2.0,
)
GATE = QualityConfig(
    name="gate",
    min_inter_eye_px=24.0,
    min_sharpness=15.0,
    min_brightness=35.0,
    max_brightness=225.0,
    max_clipped=0.40,
    max_yaw_deg=50.0,
    max_roll_deg=30.0,
    max_outside=0.35,
    # With allow_several the gate takes the face nearest the frame centre: the camera is aimed at the person
    # presenting the card, while a bystander can be anywhere, and closer to the lens than the subject. The largest
    # face chose a bystander in 7 of the 1 000 pairsDevTest pairs of LFW (subjects are centred there, as at a gate).
    # Without allow_several, several faces are always MULTIPLE_FACES.
    subject="central",
)
PRESETS: dict[str, QualityConfig] = {"desk": DESK, "gate": GATE}


@dataclass(frozen=True)
class QualityMetrics:
    """Measured quality of one face. Scalars only: nothing here can rebuild a face."""

    faces: int
    inter_eye_px: float
    sharpness: float
    brightness: float
    clipped: float
    yaw_deg: float
    roll_deg: float
    outside: float

    def failures(self, cfg: QualityConfig) -> tuple[QualityReason, ...]:
        """All reasons this face fails `cfg`, most actionable first (empty: passes)."""
        out: list[QualityReason] = []
        if self.outside > cfg.max_outside:
            out.append(QualityReason.FACE_CUT_OFF)
        if self.inter_eye_px < cfg.min_inter_eye_px:
            out.append(QualityReason.FACE_TOO_SMALL)
        if abs(self.yaw_deg) > cfg.max_yaw_deg or abs(self.roll_deg) > cfg.max_roll_deg:
            out.append(QualityReason.POSE)
        if self.brightness < cfg.min_brightness or (self.clipped > cfg.max_clipped and self.brightness < 128):
            out.append(QualityReason.UNDEREXPOSED)
        elif self.brightness > cfg.max_brightness or (self.clipped > cfg.max_clipped and self.brightness >= 128):
            out.append(QualityReason.OVEREXPOSED)
        if self.sharpness < cfg.min_sharpness:
            out.append(QualityReason.BLURRY)
        return tuple(out)


class QualityFailure(Exception):  # noqa: N818 - the name reads as a result at the call site
    """The frame gives no usable sample. `reasons` are stable codes; `metrics` is None when no face was measured."""

    def __init__(self, reasons: tuple[QualityReason, ...], metrics: QualityMetrics | None = None) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = reasons
        self.metrics = metrics

    @property
    def reason(self) -> QualityReason:
        return self.reasons[0]

    def message(self, lang: Lang = "en") -> str:
        return message(self.reason, lang)


# Landmark indices of the iBUG 68-point scheme.
_RIGHT_EYE = slice(36, 42)  # subject's right eye, image left
_LEFT_EYE = slice(42, 48)
def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return landmarks[_RIGHT_EYE].mean(axis=0), landmarks[_LEFT_EYE].mean(axis=0)


def pose_angles(landmarks: np.ndarray) -> tuple[float, float]:
    """(yaw, roll) in degrees from 68 landmarks.

    Roll is the angle of the eye line (exact in the image plane). Yaw is estimated from how far the nose tip sits
    from the middle of the face contour at ear level (points 0 and 16): for a roughly cylindrical head the
    asymmetry (l - r) / (l + r) is the sine of the yaw. Accurate to several degrees, enough to refuse a head
    turned away; not a measurement instrument.
    """
    r, left = eye_centres(landmarks)
    roll = math.degrees(math.atan2(float(left[1] - r[1]), float(left[0] - r[0])))
    nose = landmarks[30]
    side_a = float(np.linalg.norm(nose - landmarks[0]))
    side_b = float(np.linalg.norm(landmarks[16] - nose))
    asym = (side_a - side_b) / max(1e-6, side_a + side_b)
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, asym))))
    return yaw, roll


def measure(
    chip: np.ndarray,
    landmarks: np.ndarray,
    box: tuple[int, int, int, int],
    frame_w: int,
    frame_h: int,
    faces: int,
) -> QualityMetrics:
    """Quality of one face from its aligned 150×150 chip, its 68 landmarks (frame coordinates) and its box."""
    import cv2

    r, left = eye_centres(landmarks)
    inter_eye = float(np.linalg.norm(left - r))
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    inner = grey[30:120, 30:120]  # the chip is aligned: this is eyes-to-mouth, little background or hair
    # Contrast-normalised (to a grey-level std of 50) so that a dark or washed-out face is reported as badly
    # exposed rather than blurred: the Laplacian's variance scales with the square of the contrast.
    std = float(inner.std())
    sharp = float(cv2.Laplacian(inner, cv2.CV_64F).var()) * (50.0 / max(std, 1.0)) ** 2
    brightness = float(inner.mean())
    clipped = float(np.count_nonzero((inner <= 5) | (inner >= 250)) / inner.size)
    grey.fill(0)
    inner = grey  # (view of the wiped buffer)
    yaw, roll = pose_angles(landmarks)
    left_x, top, right_x, bottom = box
    area = max(1, (right_x - left_x) * (bottom - top))
    ix = max(0, min(right_x, frame_w) - max(left_x, 0))
    iy = max(0, min(bottom, frame_h) - max(top, 0))
    outside = 1.0 - (ix * iy) / area
    return QualityMetrics(
        faces=faces,
        inter_eye_px=inter_eye,
        sharpness=sharp,
        brightness=brightness,
        clipped=clipped,
        yaw_deg=yaw,
        roll_deg=roll,
        outside=outside,
    )
