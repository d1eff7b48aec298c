"""The face engine: detection (dlib HOG, CNN optional), landmarks, quality gate, descriptors, templates.

dlib models are loaded on first use (about 1 s), once per process, so importing `biometric` stays cheap. Only models
cleared for commercial use are loaded (docs/biometric.md, "Models and licences"): the HOG detector built into dlib,
the MMOD CNN detector, the 5-point landmark predictor and the ResNet descriptor. The 68-point predictor that
`face_recognition_models` also ships (trained on iBUG 300-W, non-commercial) is never opened; a test traces the
worker's system calls to prove it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from biometric.quality import GATE, QualityConfig, QualityFailure, QualityMetrics, QualityReason, measure
from biometric.sources import Frame, from_array
from biometric.template import Template
from biometric.wipe import wipe

CHIP_SIZE = 150  # the ResNet model's input: 150×150 aligned chip, 25 % padding (dlib's defaults)


@dataclass(frozen=True)
class EngineConfig:
    detector: Literal["hog", "cnn"] = "hog"
    #: Detection runs on a copy whose long side is at most this (landmarks and descriptor use full resolution):
    #: HOG cost grows with the pixels it scans, and a face at a desk or gate is large. HOG's window is 80 px, so on
    #: a 1280×720 frame (detected at 640×360) the first pass finds faces >= ~160 px, on 640×480 >= ~80 px.
    detect_max_side: int = 640
    #: Upsampling doubles the detection image (finds faces half as large) at 4× the cost, so it is only done on
    #: detection images of at most `upsample_max_pixels` (small photos such as LFW's 250×250, face chips), never
    #: on camera frames, where it would cost the gate ~4× per frame.
    upsample: int = 1
    upsample_max_pixels: int = 160_000
    #: Fallbacks when nothing is found, in this order: one more upsample; the best low-confidence HOG window of the
    #: first pass (score >= `fallback_score`; landmarks and the quality gate then vet it; free, the first pass
    #: already computed it); a padded frame (HOG misses tightly cropped faces); and dlib's CNN detector (~0.3-1 s
    #: on a 250² image without a GPU). All but the weak window only run on detection images of at most
    #: `fallback_max_pixels` (small photos, face chips): on a 640×480 camera frame they would cost 1-2 s per *empty*
    #: frame, and a face that the first pass misses there is too small for the gate anyway.
    fallback_upsample: bool = True
    fallback_score: float | None = -0.5
    fallback_pad: bool = True
    fallback_cnn: bool = True
    fallback_max_pixels: int = 160_000
    #: Enrolment: each sample counts twice, as its chip and as the chip's mirror image (two descriptors, averaged).
    #: Deterministic, unlike dlib's jitter, and on LFW DevTrain at least as good (docs/biometric.md).
    enrol_mirror: bool = True
    #: dlib's jitter (random crops, scales, rotations and flips of the chip, averaged) per enrolment view; ~one
    #: descriptor each. Off: it drew from a process-wide random state, so templates (and tuned thresholds) changed
    #: from run to run, and 5 jitters gained nothing over the mirror image on DevTrain.
    enrol_jitters: int = 0


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    right: int
    bottom: int

    @property
    def area(self) -> int:
        return max(0, self.right - self.left) * max(0, self.bottom - self.top)

    @property
    def cx(self) -> float:
        return (self.left + self.right) / 2

    @property
    def cy(self) -> float:
        return (self.top + self.bottom) / 2

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.right, self.bottom)


@dataclass(eq=False)
class Sample:
    """One face that passed the quality gate: its aligned 150×150 RGB chip (all the descriptor needs), landmarks
    and quality. The source frame is not kept. Wipe it (or use `sensitive`) as soon as the template is made."""

    chip: np.ndarray
    landmarks: np.ndarray
    box: Box
    quality: QualityMetrics
    _wiped: bool = field(default=False, repr=False)

    def wipe(self) -> None:
        wipe(self.chip, self.landmarks)
        self._wiped = True

    def __repr__(self) -> str:
        return f"Sample(box={self.box}, quality={self.quality}, chip=<redacted>)"


class _Models:
    """dlib models, loaded once per process on first use."""

    _lock = threading.Lock()
    _inst: _Models | None = None

    def __init__(self) -> None:
        import os
        import warnings

        # dlib's descriptor runs on OpenBLAS; one thread. On this project's 2-core machines a second BLAS thread
        # gains little on a 150×150 chip and, when the other core is busy (the gate's card transaction, a second
        # worker, other load), makes the descriptor 5-20× slower and erratic (measured: 22-540 ms instead of a
        # steady ~25 ms under load). Read by OpenBLAS when `import dlib` loads it; an explicit setting wins.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        import dlib

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # face_recognition_models imports the deprecated pkg_resources
            import face_recognition_models as frm

        self.dlib = dlib
        self.hog = dlib.get_frontal_face_detector()
        # 5-point landmarks (dlib's own annotations): alignment and pose. NOT pose_predictor_model_location(),
        # the 68-point iBUG model, which may not be used in a commercial product.
        self.shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.resnet = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        self._cnn_path = frm.cnn_face_detector_model_location()
        self._cnn: Any = None

    @property
    def cnn(self) -> Any:
        if self._cnn is None:
            self._cnn = self.dlib.cnn_face_detection_model_v1(self._cnn_path)
        return self._cnn

    @classmethod
    def get(cls) -> _Models:
        with cls._lock:
            if cls._inst is None:
                cls._inst = _Models()
            return cls._inst


class FaceEngine:
    """Detect, check and describe faces. Use one per process (models are shared anyway)."""

    def __init__(self, config: EngineConfig | None = None, quality: QualityConfig = GATE) -> None:
        self.config = config or EngineConfig()
        self.quality = quality

    @property
    def _m(self) -> _Models:
        return _Models.get()

    def warm_up(self) -> None:
        """Load the models now (about 1 s) and run each once on blank images (no face, no biometric data), so
        that the first real frame pays for no lazy initialisation (buffers, BLAS set-up, OpenCV kernels)."""
        m = self._m
        blank = np.full((360, 640, 3), 128, dtype=np.uint8)
        m.hog.run(blank, 0, 0.0)
        _resize(np.full((720, 1280, 3), 128, dtype=np.uint8), 0.5)
        m.resnet.compute_face_descriptor(np.full((CHIP_SIZE, CHIP_SIZE, 3), 128, dtype=np.uint8))

    # -- detection -----------------------------------------------------------------------------------------
    def detect(self, frame: Frame, *, small_faces: bool = False) -> list[Box]:
        """Face boxes in frame coordinates, largest first. Uses the fallbacks of the config when none is found.
        `small_faces` upsamples whatever the size (the desk's thorough search; see `QualityConfig.small_faces`)."""
        frame = _checked(frame)
        h, w = frame.shape[:2]
        scale = min(1.0, self.config.detect_max_side / max(h, w))
        small = frame if scale >= 1.0 else _resize(frame, scale)
        cfg = self.config
        pixels = small.shape[0] * small.shape[1]
        cheap = pixels <= cfg.fallback_max_pixels
        up = cfg.upsample if small_faces or pixels <= cfg.upsample_max_pixels else 0
        try:
            weak: list[Box] = []
            if cfg.detector == "hog" and cfg.fallback_score is not None:
                boxes, weak = self._detect_hog(small, up, cfg.fallback_score)
            else:
                boxes = self._detect_at(small, up)
            if not boxes and cfg.fallback_upsample and cheap:
                boxes = self._detect_at(small, up + 1)
            if not boxes:
                boxes = weak
            if not boxes and cfg.fallback_pad and cheap:
                pad = max(small.shape[:2]) // 4
                padded = np.pad(small, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
                try:
                    boxes = [
                        Box(b.left - pad, b.top - pad, b.right - pad, b.bottom - pad)
                        for b in self._detect_at(padded, up)
                    ]
                finally:
                    padded.fill(0)
            if not boxes and cfg.fallback_cnn and cheap and cfg.detector == "hog":
                boxes = self._detect_cnn(small, up)
        finally:
            if small is not frame:
                small.fill(0)
        if scale < 1.0:
            boxes = [
                Box(round(b.left / scale), round(b.top / scale), round(b.right / scale), round(b.bottom / scale))
                for b in boxes
            ]
        # Largest first; HOG boxes come in a few discrete sizes, so ties are broken by closeness to the centre.
        return sorted(boxes, key=lambda b: (-b.area, abs(b.cx - w / 2) + abs(b.cy - h / 2)))

    def _detect_hog(self, img: np.ndarray, upsample: int, adjust: float) -> tuple[list[Box], list[Box]]:
        """One HOG pass at a lowered threshold: (detections with score >= 0, [best weaker window] or []).

        Non-maximum suppression is greedy by score, so the detections scoring >= 0 are exactly those of the
        detector's default threshold; the weak candidate costs nothing extra."""
        rects, scores, _ = self._m.hog.run(img, upsample, adjust)
        strong = [Box(r.left(), r.top(), r.right(), r.bottom()) for r, sc in zip(rects, scores, strict=True) if sc >= 0]
        if strong or not len(rects):
            return strong, []
        r = rects[int(np.argmax(scores))]
        return [], [Box(r.left(), r.top(), r.right(), r.bottom())]

    def _detect_at(self, img: np.ndarray, upsample: int) -> list[Box]:
        if self.config.detector == "cnn":
            return self._detect_cnn(img, upsample)
        return [Box(r.left(), r.top(), r.right(), r.bottom()) for r in self._m.hog(img, upsample)]

    def _detect_cnn(self, img: np.ndarray, upsample: int) -> list[Box]:
        return [
            Box(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()) for d in self._m.cnn(img, upsample)
        ]

    # -- analysis ------------------------------------------------------------------------------------------
    def analyse(
        self, frame: Frame, *, allow_several: bool = False, quality: QualityConfig | None = None
    ) -> Sample:
        """One frame → one `Sample`, or `QualityFailure` (with stable reason codes).

        Several faces are a failure (`MULTIPLE_FACES`) unless `allow_several`; then the preset's `subject` rule picks
        the face: the one nearest the frame centre (gate), or the largest if it clearly dominates (area >=
        `dominance` × the next one).
        """
        cfg = quality or self.quality
        frame = _checked(frame)
        h, w = frame.shape[:2]
        boxes = self.detect(frame, small_faces=cfg.small_faces)
        if not boxes:
            raise QualityFailure((QualityReason.NO_FACE,))
        box = boxes[0]
        if len(boxes) > 1:
            if not allow_several:
                raise QualityFailure((QualityReason.MULTIPLE_FACES,))
            if cfg.subject == "central":
                box = min(boxes, key=lambda b: math.hypot(b.cx - w / 2, b.cy - h / 2))
            elif boxes[0].area < cfg.dominance * boxes[1].area:
                raise QualityFailure((QualityReason.MULTIPLE_FACES,))
        m = self._m
        rect = m.dlib.rectangle(box.left, box.top, box.right, box.bottom)
        shape = m.shape(frame, rect)
        landmarks = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        chip = np.ascontiguousarray(m.dlib.get_face_chip(frame, shape, size=CHIP_SIZE, padding=0.25))
        metrics = measure(chip, landmarks, box.as_tuple(), w, h, len(boxes))
        reasons = metrics.failures(cfg)
        if reasons:
            wipe(chip, landmarks)
            raise QualityFailure(reasons, metrics)
        return Sample(chip=chip, landmarks=landmarks, box=box, quality=metrics)

    # -- templates -----------------------------------------------------------------------------------------
    def descriptor(self, sample: Sample, num_jitters: int = 0, *, mirrored: bool = False) -> np.ndarray:
        """The raw 128-D descriptor (float64, caller wipes) of the sample's chip, or of its mirror image.
        Prefer `probe_template` / `reference_template`."""
        if sample._wiped:
            raise ValueError("sample was wiped")
        if not mirrored:
            return np.array(self._m.resnet.compute_face_descriptor(sample.chip, num_jitters), dtype=np.float64)
        flipped = np.ascontiguousarray(sample.chip[:, ::-1])
        try:
            return np.array(self._m.resnet.compute_face_descriptor(flipped, num_jitters), dtype=np.float64)
        finally:
            flipped.fill(0)

    def probe_template(self, sample: Sample) -> Template:
        """Template of a live sample: one descriptor (the gate must answer fast; a mirrored probe gained nothing)."""
        d = self.descriptor(sample)
        try:
            return Template.from_descriptor(d)
        finally:
            d.fill(0.0)

    def reference_template(self, samples: Iterable[Sample], num_jitters: int | None = None) -> Template:
        """Enrolment template: mean of the L2-normalised descriptors of the samples (each as its chip and, with
        `enrol_mirror`, its mirror image; `num_jitters` dlib jitters per view), renormalised."""
        jit = self.config.enrol_jitters if num_jitters is None else num_jitters
        if jit < 0:
            raise ValueError("num_jitters must be >= 0")
        views = (False, True) if self.config.enrol_mirror else (False,)
        acc = np.zeros(128, dtype=np.float64)
        n = 0
        for s in samples:
            for mirrored in views:
                d = self.descriptor(s, jit, mirrored=mirrored)
                acc += d / np.linalg.norm(d)
                d.fill(0.0)
                n += 1
        if n == 0:
            raise ValueError("reference_template needs at least one sample")
        acc /= n
        try:
            return Template.from_descriptor(acc)
        finally:
            acc.fill(0.0)


def _checked(frame: Frame) -> np.ndarray:
    if (
        isinstance(frame, np.ndarray)
        and frame.dtype == np.uint8
        and frame.ndim == 3
        and frame.shape[2] == 3
        and frame.flags.c_contiguous
    ):
        return frame
    return from_array(frame)


def _resize(frame: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.ascontiguousarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
