"""The gate flow's face step through the sandboxed worker: `worker_match` adapts `FaceWorker.verify_probe` to the
`Match` callable `Gate` takes. Used by `cardbound verify`/`gate`, the demo and the benchmarks alike."""

from __future__ import annotations

import contextlib

from biometric.capture import SampleSource
from biometric.isolation import FaceWorker, IsolationError, PendingProbe, ProbeReply, SampleUnusable
from verify.decision import Reason
from verify.flow import Match, ProbeOutcome, ProbeSession, StartProbe


def worker_match(worker: FaceWorker, source: SampleSource, budget_s: float, fuse: int = 1) -> Match:
    """`fuse` > 1: the worker fuses up to that many live frames that pass the quality check into one probe."""

    def match(reference: bytearray, threshold: float, allow_several: bool = True) -> ProbeOutcome:
        try:
            res = worker.verify_probe(reference, source, threshold=threshold, budget_s=budget_s,
                                      allow_several=allow_several, fuse=fuse)
        except SampleUnusable as exc:
            failed = Reason.CAMERA_ERROR if exc.kind == "CameraError" else Reason.NO_LIVE_FACE
            return ProbeOutcome(None, failed, f"{exc.kind}: {exc}")
        except IsolationError as exc:
            return ProbeOutcome(None, Reason.INTERNAL_ERROR, str(exc))
        return _outcome(res, allow_several)

    return match


def _outcome(res: ProbeReply, allow_several: bool) -> ProbeOutcome:
    reason: Reason | None = None
    if res.distance is None:
        # a second face in the capture, refused by the policy at this level: its own reason
        several = not allow_several and "MULTIPLE_FACES" in res.reasons
        reason = Reason.SEVERAL_FACES if several else Reason.NO_LIVE_FACE
    detail = ",".join(dict.fromkeys(res.reasons)) if res.distance is None else ""
    return ProbeOutcome(res.distance, reason, detail, res.capture_ms, res.compare_ms, res.faces)


class _WorkerProbe:
    def __init__(self, pending: PendingProbe) -> None:
        self._pending = pending

    def compare(self, reference: bytearray, threshold: float, allow_several: bool = True) -> ProbeOutcome:
        """The capture started before the policy was known, so it took the central face of a crowded frame;
        when the policy refuses a second face, such a probe is wiped uncompared (SEVERAL_FACES)."""
        try:
            if not allow_several and self._pending.faces() > 1:
                self._pending.discard()
                return ProbeOutcome(None, Reason.SEVERAL_FACES, "MULTIPLE_FACES")
            res = self._pending.compare(reference, threshold)
        except SampleUnusable as exc:
            failed = Reason.CAMERA_ERROR if exc.kind == "CameraError" else Reason.NO_LIVE_FACE
            return ProbeOutcome(None, failed, f"{exc.kind}: {exc}")
        except IsolationError as exc:
            return ProbeOutcome(None, Reason.INTERNAL_ERROR, str(exc))
        return _outcome(res, allow_several)

    def discard(self) -> None:
        # A worker that failed has been restarted: nothing of the probe survives it.
        with contextlib.suppress(IsolationError):
            self._pending.discard()


def worker_probe(worker: FaceWorker, source: SampleSource, budget_s: float, fuse: int = 1) -> StartProbe:
    """`Gate.start_probe` through the sandboxed worker: the capture starts when the card is detected and runs in
    the worker while the card transaction runs here."""

    def start() -> ProbeSession:
        return _WorkerProbe(worker.begin_probe(source, budget_s=budget_s, fuse=fuse))

    return start
