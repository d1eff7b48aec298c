"""The enrolment flow's capture step through the sandboxed worker: `worker_capture` adapts
`FaceWorker.enrol_template` to the `Capture` callable `enrol` takes. Used by `cardbound enrol`, the desk, the demo
and the benchmarks alike. `frames_capture` does the same for encoded frames held in memory (the desk's browser
capture)."""

from __future__ import annotations

from collections.abc import Sequence

from biometric.capture import SampleSource
from biometric.isolation import FaceWorker, IsolationError, SampleUnusable
from biometric.quality import QualityReason, message
from enrol.flow import CapturedTemplate, CaptureRefused, EnrolFailure


def frames_capture(worker: FaceWorker, frames: Sequence[bytearray], samples: int) -> CapturedTemplate:
    """The template from encoded frames (JPEG/PNG/WebP) the caller holds in memory and wipes afterwards."""
    try:
        got = worker.enrol_template_from_frames(frames, max_samples=max(1, min(samples, len(frames))))
    except SampleUnusable as exc:
        raise CaptureRefused(EnrolFailure.BAD_INPUT, str(exc)) from None
    except (IsolationError, ValueError) as exc:
        raise CaptureRefused(EnrolFailure.BAD_INPUT, f"biometric worker failed: {exc}") from None
    if got.disagreeing:  # one person per template
        pairs = ", ".join(f"{a}/{b}" for a, b in got.disagreeing)
        raise CaptureRefused(EnrolFailure.SAMPLES_DISAGREE, f"samples {pairs} do not match each other",
                             disagreeing=got.disagreeing)
    if got.template is None:
        raise CaptureRefused(EnrolFailure.QUALITY, f"no frame passed the quality gate ({got.frames_seen} tried)",
                             got.reasons)
    return CapturedTemplate(got.template, got.frames_used, got.frames_seen, got.quality, got.spread)


def worker_capture(worker: FaceWorker, source: SampleSource, samples: int, lang: str) -> CapturedTemplate:
    try:
        got = worker.enrol_template(source, max_samples=samples)
    except SampleUnusable as exc:
        failure = EnrolFailure.NO_CAMERA if exc.kind == "CameraError" else EnrolFailure.BAD_INPUT
        raise CaptureRefused(failure, str(exc)) from None
    except IsolationError as exc:  # worker killed, crashed, timed out: nothing reached the card
        raise CaptureRefused(EnrolFailure.WORKER_FAILED, f"biometric worker failed: {exc}") from None
    if got.disagreeing:  # one person per template: the worker compared every two samples 1:1
        pairs = ", ".join(f"{a}/{b}" for a, b in got.disagreeing)
        raise CaptureRefused(EnrolFailure.SAMPLES_DISAGREE,
                             f"samples {pairs} do not match each other (spread {got.spread:.3f})",
                             disagreeing=got.disagreeing)
    if got.template is None:
        first = QualityReason(got.reasons[0]) if got.reasons else QualityReason.NO_FACE
        raise CaptureRefused(
            EnrolFailure.QUALITY,
            f"no frame passed the quality gate ({got.frames_seen} tried): {message(first, lang)}",  # type: ignore[arg-type]
            got.reasons,
        )
    return CapturedTemplate(got.template, got.frames_used, got.frames_seen, got.quality, got.spread)
