"""`cardbound gate check`: the gate's start-up self-check, one line per piece, each OK / WARN / FAIL.

The same checks run when `cardbound gate` starts: a FAIL refuses to start (the gate's own fault, said once, not a
stream of per-person refusals), a WARN is printed and the gate starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from biometric.capture import SampleSource
from verify.freshness import Assessment, Freshness

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm"}


class Status(Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    message: str

    def line(self) -> str:
        return f"{self.status.value:<4}  {self.name:<12} {self.message}"


def source_check(source: SampleSource | None) -> Check:
    """Can the live source deliver frames at all? Checked without capturing a sample."""
    if source is None:
        return Check("camera", Status.FAIL, "no live source: --camera, --video, --frames, --photo or `camera`")
    kind, args = source.kind, tuple(source.paths)
    if kind == "camera":
        dev = Path(f"/dev/video{source.device}")
        if not dev.exists():
            return Check("camera", Status.FAIL, f"camera {source.device}: {dev} does not exist")
        if not os.access(dev, os.R_OK):
            return Check("camera", Status.FAIL, f"camera {source.device}: {dev} is not readable")
        return Check("camera", Status.OK, f"camera {source.device} ({dev})")
    if kind == "frames":
        folder = Path(args[0]) if args else Path()
        if not folder.is_dir():
            return Check("camera", Status.FAIL, f"frames folder {folder} does not exist")
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
            return Check("camera", Status.FAIL, f"frames folder {folder} holds no image")
        return Check("camera", Status.OK, f"frames from {folder}")
    missing = [a for a in args if not Path(a).is_file()]
    if missing:
        return Check("camera", Status.FAIL, f"{kind} not found: {', '.join(missing)}")
    return Check("camera", Status.OK, f"{kind}: {', '.join(args)}")


def list_check(health: Assessment) -> Check:
    """One list's age at the current level: OK, WARN ahead of its deadline, FAIL once stale (every card refused)."""
    status = {Freshness.OK: Status.OK, Freshness.WARN: Status.WARN, Freshness.STALE: Status.FAIL}[health.status]
    message = health.message
    if health.stale:
        message += ": every card would be refused LISTS_STALE"
    return Check(health.stamp.name, status, message)


def attempt(name: str, fn: Callable[[], str]) -> Check:
    """Run one check that returns its OK message or raises; the exception's text is the FAIL message."""
    try:
        return Check(name, Status.OK, fn())
    except Exception as exc:  # noqa: BLE001 - each piece is reported, whatever broke it
        return Check(name, Status.FAIL, str(exc) or type(exc).__name__)


def worst(checks: Sequence[Check]) -> Status:
    if any(c.status is Status.FAIL for c in checks):
        return Status.FAIL
    return Status.WARN if any(c.status is Status.WARN for c in checks) else Status.OK
