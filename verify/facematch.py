"""The gate flow's face step through the sandboxed worker: `worker_match` adapts `FaceWorker.verify_probe` to the
`Match` callable `Gate` takes. Used by `cardbound verify`/`gate`, the demo and the benchmarks alike."""

from __future__ import annotations

from biometric.capture import SampleSource
from biometric.isolation import FaceWorker, IsolationError, SampleUnusable
from verify.decision import Reason
from verify.flow import Match, ProbeOutcome


def worker_match(worker: FaceWorker, source: SampleSource, budget_s: float) -> Match:
    def match(reference: bytearray, threshold: float, allow_several: bool = True) -> ProbeOutcome:
        try:
            res = worker.verify_probe(reference, source, threshold=threshold, budget_s=budget_s,
                                      allow_several=allow_several)
        except SampleUnusable as exc:
            failed = Reason.CAMERA_ERROR if exc.kind == "CameraError" else Reason.NO_LIVE_FACE
            return ProbeOutcome(None, failed, f"{exc.kind}: {exc}")
        except IsolationError as exc:
            return ProbeOutcome(None, Reason.INTERNAL_ERROR, str(exc))
        reason: Reason | None = None
        if res.distance is None:
            # a second face in the capture, refused by the policy at this level: its own reason
            several = not allow_several and "MULTIPLE_FACES" in res.reasons
            reason = Reason.SEVERAL_FACES if several else Reason.NO_LIVE_FACE
        detail = ",".join(dict.fromkeys(res.reasons)) if res.distance is None else ""
        return ProbeOutcome(res.distance, reason, detail, res.capture_ms, res.compare_ms, res.faces)

    return match
