"""The two things a station does with frames: build an enrolment template, or measure one live probe against one
reference. Both consume frames one at a time, wipe each as soon as it is analysed, and return only what the caller
needs (a 512-byte template at the desk; a distance at the gate).

These functions run inside the sandboxed worker (`biometric.isolation`) in production.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from biometric.engine import FaceEngine, Sample
from biometric.errors import ImageError
from biometric.quality import DESK, GATE, QualityConfig, QualityFailure, QualityMetrics, QualityReason
from biometric.sources import Frame, directory_frames, load_path, video_frames
from biometric.template import Template, compare
from biometric.wipe import wipe

SourceKind = Literal["photo", "camera", "video", "frames"]

#: One person per template: every two samples of one enrolment must lie within this distance of each other (1:1
#: pairs inside the one enrolment, never a search). Stricter than the gate's 0.42 because a refusal here costs a
#: retake while a template averaged over two people is a credential two people share. Its error rates on LFW
#: View 1 (share of impostor pairs let through, of genuine pairs refused) are in docs/biometric.md, measured with
#: `scripts/measure-consistency.py`.
SAMPLE_AGREEMENT_THRESHOLD = 0.40
MAX_REPORTED_PAIRS = 3


@dataclass(frozen=True)
class SampleSource:
    """Where the sample comes from — a description, not pixels, so that it can cross into the sandboxed worker
    and the pixels are only ever decoded there.

    photo: one or more image files; camera: a device index; video: a video file; frames: a directory of images.
    """

    kind: SourceKind
    paths: tuple[str, ...] = ()
    device: int | None = None
    max_frames: int = 30
    #: Emulate a camera of this resolution (width, height): each image is scaled to fit and centred on a canvas
    #: of that size, in memory. For tests and benchmarks that must see camera-sized frames from photos without
    #: writing any frame to disk.
    frame_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.kind in ("photo", "video", "frames") and not self.paths:
            raise ValueError(f"a {self.kind} source needs a path")
        if self.kind == "camera" and self.device is None:
            raise ValueError("a camera source needs a device index")
        if self.max_frames < 1:
            raise ValueError("max_frames must be >= 1")

    @classmethod
    def photos(cls, *paths: str, frame_size: tuple[int, int] | None = None) -> SampleSource:
        return cls("photo", tuple(str(p) for p in paths), frame_size=frame_size)

    def frames(self) -> Iterator[Frame]:
        if self.frame_size is None:
            yield from self._frames()
            return
        for frame in self._frames():
            try:
                yield _fit(frame, self.frame_size)
            finally:
                wipe(frame)

    def _frames(self) -> Iterator[Frame]:
        """Decode lazily, one frame at a time (each is wiped by the consumer before the next is decoded)."""
        if self.kind == "photo":
            for p in self.paths[: self.max_frames]:
                yield load_path(p)
        elif self.kind == "frames":
            for i, frame in enumerate(directory_frames(self.paths[0])):
                if i >= self.max_frames:
                    wipe(frame)
                    return
                yield frame
        elif self.kind == "video":
            yield from video_frames(self.paths[0], max_frames=self.max_frames)
        else:
            assert self.device is not None
            yield from video_frames(self.device, max_frames=self.max_frames)


def _fit(frame: Frame, size: tuple[int, int]) -> Frame:
    """`frame` scaled to fit (width, height) and centred on a black canvas of exactly that size."""
    import cv2

    w, h = size
    fh, fw = frame.shape[:2]
    scale = min(w / fw, h / fh)
    nw, nh = max(1, round(fw * scale)), max(1, round(fh * scale))
    resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.zeros((h, w, 3), dtype=np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    canvas[y : y + nh, x : x + nw] = resized
    wipe(resized)
    return canvas


@dataclass
class EnrolmentCapture:
    template: Template | None  # None when no frame passed the quality gate
    frames_seen: int
    frames_used: int
    quality: int  # 0..100, for the sealed header (CBEFF quality)
    reasons: list[str] = field(default_factory=list)  # quality reason codes of the refused frames, in order
    spread: float = 0.0  # largest distance between two accepted samples (0 with one sample)
    #: Pairs of samples (1-based frame numbers, i.e. the photo's position on the command line) that do not match
    #: each other; when not empty, `template` is None: the enrolment is refused (SAMPLES_DISAGREE).
    disagreeing: list[tuple[int, int]] = field(default_factory=list)

    def wipe(self) -> None:
        if self.template is not None:
            self.template.wipe()


@dataclass
class ProbeResult:
    distance: float | None  # None: no live frame passed the quality gate in time
    frames_seen: int
    reasons: list[str] = field(default_factory=list)
    capture_ms: float = 0.0
    compare_ms: float = 0.0
    faces: int = 0  # faces detected in the frame that was compared (0 when none was)
    frames_used: int = 0  # frames fused into the probe (0 when there is no distance)


def quality_score(metrics: QualityMetrics, cfg: QualityConfig) -> int:
    """A 0..100 summary for the CBEFF header: how far the face is inside the quality gate's limits."""
    size = min(1.0, metrics.inter_eye_px / (2 * cfg.min_inter_eye_px))
    pose = 1.0 - min(1.0, max(abs(metrics.yaw_deg) / cfg.max_yaw_deg, abs(metrics.roll_deg) / cfg.max_roll_deg))
    sharp = min(1.0, metrics.sharpness / (4 * cfg.min_sharpness)) if cfg.min_sharpness > 0 else 1.0
    return max(1, min(100, round(100 * (0.4 * size + 0.3 * pose + 0.3 * sharp))))


def _analysed(
    engine: FaceEngine, frames: Iterable[Frame], cfg: QualityConfig, reasons: list[str], allow_several: bool
) -> Iterator[Sample]:
    for frame in frames:
        try:
            yield engine.analyse(frame, quality=cfg, allow_several=allow_several)
        except QualityFailure as exc:
            reasons.extend(r.value for r in exc.reasons)
        finally:
            wipe(frame)


def enrolment_template(
    engine: FaceEngine,
    frames: Iterable[Frame],
    *,
    max_samples: int = 3,
    num_jitters: int | None = None,
    quality: QualityConfig = DESK,
) -> EnrolmentCapture:
    """Analyse frames until `max_samples` pass the desk quality gate (or frames run out); average their templates.

    Every frame is wiped after analysis; every sample after the template is made. Image errors propagate.
    """
    reasons: list[str] = []
    samples: list[Sample] = []
    numbers: list[int] = []
    seen = 0
    try:
        counted = _counting(frames)
        for sample in _analysed(engine, counted, quality, reasons, allow_several=False):
            samples.append(sample)
            numbers.append(counted.count)
            if len(samples) >= max_samples:
                break
        seen = counted.count
        if not samples:
            return EnrolmentCapture(None, seen, 0, 0, reasons)
        score = round(sum(quality_score(s.quality, quality) for s in samples) / len(samples))
        spread, disagreeing = _sample_agreement(engine, samples, numbers)
        if disagreeing:
            return EnrolmentCapture(None, seen, len(samples), score, reasons, spread, disagreeing)
        template = engine.reference_template(samples, num_jitters=num_jitters)
        return EnrolmentCapture(template, seen, len(samples), score, reasons, spread)
    finally:
        wipe(samples)


def _sample_agreement(
    engine: FaceEngine, samples: list[Sample], numbers: list[int], threshold: float = SAMPLE_AGREEMENT_THRESHOLD
) -> tuple[float, list[tuple[int, int]]]:
    """Compare every two samples of this one enrolment 1:1: (largest distance, pairs farther apart than
    `threshold`). Each sample's descriptor is the gate's (one view, no jitter) and is wiped before returning."""
    if len(samples) < 2:
        return 0.0, []
    views = [engine.probe_template(s) for s in samples]
    try:
        spread, bad = 0.0, []
        for i in range(len(views)):
            for j in range(i + 1, len(views)):
                d = compare(views[i], views[j])
                spread = max(spread, d)
                if d > threshold:
                    bad.append((numbers[i], numbers[j]))
        return spread, bad
    finally:
        for v in views:
            v.wipe()


@dataclass(eq=False)
class LiveProbe:
    """A fused live probe, before any reference is known (the gate captures while the card is being read).
    Wipe it (or `compare_with` it, which wipes) before the decision is returned."""

    template: Template | None  # None: no live frame passed the quality gate in time
    frames_seen: int
    frames_used: int
    reasons: list[str] = field(default_factory=list)
    capture_ms: float = 0.0  # frames, detection, quality
    describe_ms: float = 0.0  # descriptors and fusion
    faces: int = 0  # most faces detected in a frame that was fused (the gate's policy decides what a second means)

    def wipe(self) -> None:
        if self.template is not None:
            self.template.wipe()
            self.template = None

    def compare_with(self, reference: Template) -> ProbeResult:
        """The 1:1 distance to `reference`; the probe is wiped whatever happens."""
        try:
            if self.template is None:
                return ProbeResult(None, self.frames_seen, self.reasons, self.capture_ms, 0.0)
            t = time.perf_counter()
            distance = compare(reference, self.template)
            compare_ms = self.describe_ms + (time.perf_counter() - t) * 1000
            return ProbeResult(distance, self.frames_seen, self.reasons, self.capture_ms, compare_ms,
                               faces=self.faces, frames_used=self.frames_used)
        finally:
            self.wipe()


def live_probe(
    engine: FaceEngine,
    frames: Iterable[Frame],
    *,
    budget_s: float = 2.0,
    quality: QualityConfig = GATE,
    allow_several: bool = True,
    fuse: int = 1,
) -> LiveProbe:
    """Take live frames until `fuse` of them pass the gate's quality check (or the frames or the time budget run
    out, keeping what passed by then) and fuse them into one probe template.

    Fusion (`fuse` > 1): the mean of the frames' unit descriptors, renormalised — one template, one distance, the
    same comparison as for a single frame (docs/biometric.md, "Several frames per decision"). Each frame is wiped
    once analysed, each descriptor once added."""
    if fuse < 1:
        raise ValueError("fuse must be >= 1")
    reasons: list[str] = []
    t0 = time.perf_counter()
    seen = used = faces = 0
    acc: np.ndarray | None = None
    describe_s = 0.0
    try:
        for frame in frames:
            seen += 1
            try:
                sample = engine.analyse(frame, quality=quality, allow_several=allow_several)
            except QualityFailure as exc:
                reasons.extend(r.value for r in exc.reasons)
                if time.perf_counter() - t0 > budget_s:
                    break
                continue
            finally:
                wipe(frame)
            t1 = time.perf_counter()
            faces = max(faces, sample.quality.faces)
            try:
                d = engine.descriptor(sample)
            finally:
                sample.wipe()
            acc = d / np.linalg.norm(d) if acc is None else acc + d / np.linalg.norm(d)
            d.fill(0.0)
            used += 1
            describe_s += time.perf_counter() - t1
            if used >= fuse or time.perf_counter() - t0 > budget_s:
                break
        if acc is None:
            if not reasons and seen == 0:
                reasons.append(QualityReason.NO_FACE.value)
            return LiveProbe(None, seen, 0, reasons, (time.perf_counter() - t0) * 1000)
        t2 = time.perf_counter()
        template = Template.from_descriptor(acc)
        capture_ms = (t2 - t0 - describe_s) * 1000
        return LiveProbe(template, seen, used, reasons, capture_ms, (describe_s + time.perf_counter() - t2) * 1000,
                         faces)
    finally:
        if acc is not None:
            acc.fill(0.0)


def probe_distance(
    engine: FaceEngine,
    reference: Template,
    frames: Iterable[Frame],
    *,
    budget_s: float = 2.0,
    quality: QualityConfig = GATE,
    allow_several: bool = True,
    fuse: int = 1,
) -> ProbeResult:
    """`live_probe` then the 1:1 comparison with `reference`; the probe is wiped before returning and only the
    distance leaves."""
    probe = live_probe(engine, frames, budget_s=budget_s, quality=quality, allow_several=allow_several, fuse=fuse)
    return probe.compare_with(reference)


class _counting(Iterator[Frame]):  # noqa: N801 - a tiny iterator adapter, used like a function
    def __init__(self, frames: Iterable[Frame]) -> None:
        self._it = iter(frames)
        self.count = 0

    def __next__(self) -> Frame:
        frame = next(self._it)
        self.count += 1
        return frame


__all__ = [
    "SAMPLE_AGREEMENT_THRESHOLD",
    "EnrolmentCapture",
    "ImageError",
    "LiveProbe",
    "ProbeResult",
    "SampleSource",
    "enrolment_template",
    "live_probe",
    "probe_distance",
    "quality_score",
]
