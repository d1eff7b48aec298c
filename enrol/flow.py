"""The enrolment flow: inspect card → capture and quality-gate → template → seal → personalise if blank → write →
read back → wipe → destroy the source if asked → audit.

Biometric work happens behind `capture` (the sandboxed worker in production: pixels never enter this process;
only the 512-byte template comes back, in a bytearray that is wiped as soon as it is sealed). A failure at any step
leaves the card in its previous valid state or clearly not enrolled (see `enrol.cardside` and `card.personalise`).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import cast

from audit import (
    AuditEvent,
    AuditLog,
    CardReplaced,
    CardWritten,
    EnrolmentCompleted,
    EnrolmentRefused,
    EnrolmentStarted,
    SourceDestroyed,
)
from card import sealed
from card.apdu import ApduError, ApduFormatError
from card.cardauth import CardAuthError
from card.keystore import KeyStore
from card.personalise import PersonalisationError
from card.piv import PivFormatError, PivSession
from card.sealed import CardBinding, TemplateHeader
from card.transport import ConnectionLostError, NoCardError, NoReaderError, TransportError
from card.values import CardId
from enrol.cardside import CardNotUsable, ReadBackMismatch, ensure_personalised, inspect_card, write_and_check

# CBEFF format owner/type for the sealed header. 0x0103 is not a registered IBIA owner: cardbound's own private
# value, documented in docs/card.md, until the processor registers one.
FORMAT_OWNER = 0x0103
FORMAT_TYPE = 0x0001


class EnrolFailure(StrEnum):
    NO_READER = "NO_READER"
    NO_CARD = "NO_CARD"
    CARD_REMOVED = "CARD_REMOVED"
    CARD_ERROR = "CARD_ERROR"
    ALREADY_ENROLLED = "ALREADY_ENROLLED"
    QUALITY = "QUALITY"
    NO_CAMERA = "NO_CAMERA"
    BAD_INPUT = "BAD_INPUT"
    READ_BACK_MISMATCH = "READ_BACK_MISMATCH"
    KEYS = "KEYS"


class EnrolError(Exception):
    """Enrolment refused or failed; `reasons` holds the quality reason codes when the capture was refused."""

    def __init__(self, failure: EnrolFailure, message: str, reasons: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.failure = failure
        self.reasons = tuple(reasons)


class CaptureRefused(Exception):  # noqa: N818 - raised by a capture callable
    """No usable template: every frame failed the quality gate (reason codes), the camera is missing, or the
    input is not a usable image."""

    def __init__(self, failure: EnrolFailure, message: str, reasons: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.failure = failure
        self.reasons = tuple(reasons)


@dataclass
class CapturedTemplate:
    template: bytearray  # 512 bytes; wiped by the flow right after sealing
    frames_used: int
    frames_seen: int
    quality: int  # 0..100, recorded in the sealed header

    def wipe(self) -> None:
        self.template[:] = bytes(len(self.template))


Capture = Callable[[], CapturedTemplate]


@dataclass(frozen=True)
class EnrolRequest:
    holder_ref: bytes
    category: str
    valid_until: datetime
    station: str
    operator: str
    replace: bool = False
    delete_sources: Sequence[Path] = ()  # files to destroy after a successful write
    extractor: str = "dlib-resnet-v1"
    model_version: str = "face_recognition_models-0.3.0"


@dataclass
class EnrolResult:
    card_id: str
    replaced: bool
    frames_used: int
    frames_seen: int
    quality: int
    container_bytes: int
    sources_destroyed: int
    timings_ms: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "result": "enrolled",
            "card_id": self.card_id,
            "replaced": self.replaced,
            "frames_used": self.frames_used,
            "frames_seen": self.frames_seen,
            "quality": self.quality,
            "container_bytes": self.container_bytes,
            "sources_destroyed": self.sources_destroyed,
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }


def destroy_file(path: Path) -> None:
    """Overwrite a source file with zeros, flush it to disk, then unlink it.

    On flash storage and copy-on-write file systems an overwrite cannot guarantee the old blocks are gone;
    the real protection is that the desk never writes samples to disk in the first place (docs/threat-model.md).
    """
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        size = os.fstat(fd).st_size
        chunk = bytes(min(size, 1 << 20)) if size else b""
        written = 0
        while written < size:
            written += os.write(fd, chunk[: size - written])
        os.fsync(fd)
    finally:
        os.close(fd)
    os.unlink(path)


def _card_failure(exc: BaseException) -> EnrolError:
    if isinstance(exc, NoReaderError):
        return EnrolError(EnrolFailure.NO_READER, str(exc))
    if isinstance(exc, NoCardError):
        return EnrolError(EnrolFailure.NO_CARD, str(exc))
    if isinstance(exc, ConnectionLostError):
        return EnrolError(EnrolFailure.CARD_REMOVED, f"card removed or connection lost: {exc}")
    return EnrolError(EnrolFailure.CARD_ERROR, f"{type(exc).__name__}: {exc}")


_CARD_ERRORS = (TransportError, ApduError, ApduFormatError, PivFormatError, CardAuthError, PersonalisationError)


def enrol(
    request: EnrolRequest,
    *,
    session: PivSession,
    keys: KeyStore,
    capture: Capture,
    audit: AuditLog,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> EnrolResult:
    """Run one enrolment on the card behind `session`. Raises `EnrolError`; every outcome is audited."""
    session_id = uuid.uuid4().hex
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    card_id: str | None = None
    audit.append(EnrolmentStarted(station_id=request.station, operator_id=request.operator, session_id=session_id))

    def refused(err: EnrolError) -> EnrolError:
        audit.append(
            EnrolmentRefused(
                station_id=request.station,
                operator_id=request.operator,
                session_id=session_id,
                reason_code=err.failure.value.lower(),
                card_id=card_id,
                duration_ms=int((time.perf_counter() - t_start) * 1000),
            )
        )
        return err

    try:
        identity = inspect_card(session, replace=request.replace)
    except CardNotUsable as exc:
        failure = EnrolFailure.ALREADY_ENROLLED if exc.already_enrolled else EnrolFailure.CARD_ERROR
        raise refused(EnrolError(failure, str(exc))) from None
    except _CARD_ERRORS as exc:
        raise refused(_card_failure(exc)) from None
    if identity.guid:
        card_id = CardId.of(identity.guid)
    timings["inspect"] = (time.perf_counter() - t_start) * 1000

    t = time.perf_counter()
    try:
        captured = capture()
    except CaptureRefused as exc:
        raise refused(EnrolError(exc.failure, str(exc), exc.reasons)) from None
    timings["capture"] = (time.perf_counter() - t) * 1000

    try:
        t = time.perf_counter()
        try:
            identity = ensure_personalised(session, keys, identity)
        except _CARD_ERRORS as exc:
            raise refused(_card_failure(exc)) from None
        assert identity.public_key is not None
        card_id = CardId.of(identity.guid)
        timings["personalise"] = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        created = now().replace(microsecond=0)
        header = TemplateHeader(
            format_owner=FORMAT_OWNER,
            format_type=FORMAT_TYPE,
            extractor=request.extractor,
            model_version=request.model_version,
            created=created,
            expires=request.valid_until,
            quality=captured.quality,
            visitor_category=request.category,
            holder_ref=request.holder_ref,
        )
        try:
            container = sealed.seal(
                cast(bytes, captured.template),  # a bytearray on purpose: wiped below, no immutable copy here
                header,
                CardBinding.for_card(identity.guid, identity.public_key),
                keys.station_credentials(request.station),
                keys.verifier_public_key(),
            )
        except ValueError as exc:
            raise refused(EnrolError(EnrolFailure.KEYS, f"cannot seal the template: {exc}")) from None
    finally:
        captured.wipe()  # the template now exists only inside the sealed container
    timings["seal"] = (time.perf_counter() - t) * 1000

    t = time.perf_counter()
    try:
        write_and_check(session, keys, identity.guid, container)
    except ReadBackMismatch as exc:
        raise refused(EnrolError(EnrolFailure.READ_BACK_MISMATCH, str(exc))) from None
    except _CARD_ERRORS as exc:
        raise refused(_card_failure(exc)) from None
    timings["write"] = (time.perf_counter() - t) * 1000

    destroyed = 0
    for path in request.delete_sources:
        destroy_file(path)
        destroyed += 1

    total_ms = (time.perf_counter() - t_start) * 1000
    timings["total"] = total_ms
    events: list[AuditEvent] = [
        CardWritten(
            station_id=request.station,
            operator_id=request.operator,
            card_id=card_id,
            container_version=1,
            container_bytes=len(container),
            expires=request.valid_until.isoformat(),
        )
    ]
    if identity.enrolled:
        events.append(
            CardReplaced(
                station_id=request.station,
                operator_id=request.operator,
                card_id=card_id,
                previous_card_id=card_id,
                reason_code="re_enrolment",
            )
        )
    if destroyed:
        events.append(
            SourceDestroyed(
                station_id=request.station,
                session_id=session_id,
                source_kind="file",
                method="overwritten-unlinked",
                items=destroyed,
            )
        )
    events.append(
        EnrolmentCompleted(
            station_id=request.station,
            operator_id=request.operator,
            session_id=session_id,
            card_id=card_id,
            frames_captured=captured.frames_seen,
            duration_ms=int(total_ms),
            quality_score=float(captured.quality),
            visitor_category=request.category,
        )
    )
    audit.append_many(events)
    return EnrolResult(
        card_id=card_id,
        replaced=identity.enrolled,
        frames_used=captured.frames_used,
        frames_seen=captured.frames_seen,
        quality=captured.quality,
        container_bytes=len(container),
        sources_destroyed=destroyed,
        timings_ms=timings,
    )
