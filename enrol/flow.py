"""The enrolment flow: check the request against the gate's rules → inspect the card → capture and quality-gate →
one person per template → seal → personalise if blank → write → read back → wipe → dispose of the source files
→ audit.

Biometric work happens behind `capture` (the sandboxed worker in production: pixels never enter this process;
only the 512-byte template comes back, in a bytearray that is wiped as soon as it is sealed).

Every step leaves a record, even on failure: `enrolment.started` first; `card.writing` is written *ahead* of each
write to the card (personalisation, the template) and `card.written` after the read-back; a refusal or failure
is `enrolment.refused` with the stage it reached. If the log cannot be written, nothing more is written to the
card (and a template the log could not record is erased). So the card is always either in its previous valid
state or clearly not enrolled, and the log says how far the enrolment got.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

from audit import (
    AuditEvent,
    AuditLog,
    CardReplaced,
    CardWriting,
    CardWritten,
    EnrolmentCompleted,
    EnrolmentRefused,
    EnrolmentStarted,
    SourceDestroyed,
)
from card import sealed
from card.apdu import ApduError, ApduFormatError
from card.bundles import DeskKeys
from card.cardauth import CardAuthError
from card.personalise import PersonalisationError
from card.piv import PivFormatError, PivSession
from card.register import CardRegister, RegisterError
from card.sealed import CardBinding, TemplateHeader
from card.transport import ConnectionLostError, NoCardError, NoReaderError, TransportError
from card.values import CardGuid, CardId, Category, HolderRef
from enrol.cardside import (
    CardNotUsable,
    ReadBackMismatch,
    WriteStage,
    ensure_personalised,
    erase_template,
    inspect_card,
    write_and_check,
)
from enrol.rules import EnrolmentRules, RuleViolation

# CBEFF format owner/type for the sealed header. 0x0103 is not a registered IBIA owner: cardbound's own private
# value, documented in docs/card.md, until the processor registers one.
FORMAT_OWNER = 0x0103
FORMAT_TYPE = 0x0001


class EnrolFailure(StrEnum):
    NO_READER = "NO_READER"
    NO_CARD = "NO_CARD"
    CARD_REMOVED = "CARD_REMOVED"
    CARD_ERROR = "CARD_ERROR"
    CARD_REVOKED = "CARD_REVOKED"
    ALREADY_ENROLLED = "ALREADY_ENROLLED"
    QUALITY = "QUALITY"
    SAMPLES_DISAGREE = "SAMPLES_DISAGREE"
    NO_CAMERA = "NO_CAMERA"
    BAD_INPUT = "BAD_INPUT"
    CATEGORY_UNKNOWN = "CATEGORY_UNKNOWN"
    VALIDITY = "VALIDITY"
    SOURCE_UNSAFE = "SOURCE_UNSAFE"
    WORKER_FAILED = "WORKER_FAILED"
    READ_BACK_MISMATCH = "READ_BACK_MISMATCH"
    KEYS = "KEYS"
    AUDIT = "AUDIT"


class EnrolError(Exception):
    """Enrolment refused or failed. `reasons`: quality reason codes; `stage`: how far it got; `params`: values for
    the operator's message (`enrol.messages`); `card_state`: what the card holds now, in one word."""

    def __init__(
        self,
        failure: EnrolFailure,
        message: str,
        reasons: Sequence[str] = (),
        *,
        stage: str = "",
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.failure = failure
        self.reasons = tuple(reasons)
        self.stage = stage
        self.params = dict(params or {})
        self.card_state = "unchanged"


class CaptureRefused(Exception):  # noqa: N818 - raised by a capture callable
    """No usable template: every frame failed the quality gate (reason codes), the samples are of different people
    (`disagreeing` pairs of sample numbers), the camera is missing, the input is not a usable image, or the
    biometric worker died."""

    def __init__(
        self,
        failure: EnrolFailure,
        message: str,
        reasons: Sequence[str] = (),
        disagreeing: Sequence[tuple[int, int]] = (),
    ) -> None:
        super().__init__(message)
        self.failure = failure
        self.reasons = tuple(reasons)
        self.disagreeing = tuple(disagreeing)


@dataclass
class CapturedTemplate:
    template: bytearray  # 512 bytes; wiped by the flow right after sealing
    frames_used: int
    frames_seen: int
    quality: int  # 0..100, recorded in the sealed header
    spread: float = 0.0  # largest distance between two samples, recorded in the sealed header

    def wipe(self) -> None:
        self.template[:] = bytes(len(self.template))


Capture = Callable[[], CapturedTemplate]


@dataclass(frozen=True)
class SourceFile:
    """A photo the operator gave. `destroy`: overwrite and unlink it after a successful write. For a symbolic link,
    `target` is the resolved file (destroyed together with the link only when the operator said so)."""

    path: Path
    destroy: bool = False
    target: Path | None = None


@dataclass(frozen=True)
class EnrolRequest:
    """One enrolment. `holder_ref` and `category` are validated here, at the boundary, into the gate's own types
    (raw bytes / text are accepted and converted; a malformed value raises `card.values.InvalidValue`)."""

    holder_ref: HolderRef | bytes
    category: Category | str
    valid_until: datetime
    station: str
    operator: str
    replace: bool = False
    source_kind: str = "file"  # "file" or "camera"
    sources: Sequence[SourceFile] = ()
    extractor: str = "dlib-resnet-v1"
    model_version: str = "face_recognition_models-0.3.0"

    def __post_init__(self) -> None:
        if not isinstance(self.holder_ref, HolderRef):
            object.__setattr__(self, "holder_ref", HolderRef(bytes(self.holder_ref)))
        if not isinstance(self.category, Category):
            object.__setattr__(self, "category", Category(self.category))

    @property
    def holder(self) -> HolderRef:
        return cast(HolderRef, self.holder_ref)


@dataclass(frozen=True)
class Disposal:
    outcome: str  # destroyed / kept / failed
    detail: str = ""  # why it failed (OS error text, never the path)


@dataclass
class EnrolResult:
    card_id: str
    replaced: bool
    frames_used: int
    frames_seen: int
    quality: int
    spread: float
    container_bytes: int
    disposals: list[Disposal] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def sources_destroyed(self) -> int:
        return sum(d.outcome == "destroyed" for d in self.disposals)

    @property
    def sources_failed(self) -> int:
        return sum(d.outcome == "failed" for d in self.disposals)

    def as_dict(self) -> dict[str, object]:
        return {
            "result": "enrolled",
            "card_id": self.card_id,
            "replaced": self.replaced,
            "frames_used": self.frames_used,
            "frames_seen": self.frames_seen,
            "quality": self.quality,
            "sample_spread": round(self.spread, 3),
            "container_bytes": self.container_bytes,
            "sources_destroyed": self.sources_destroyed,
            "sources": [{"outcome": d.outcome, **({"detail": d.detail} if d.detail else {})} for d in self.disposals],
            "warnings": list(self.warnings),
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }


# ----------------------------------------------------------------------------------------------- source files


def check_source(path: Path, *, destroy: bool, follow_symlink: bool) -> SourceFile:
    """Resolve a photo the operator gave, before anything else happens. A symbolic link to be destroyed is refused
    unless the operator said to destroy its target (`follow_symlink`); then the target is destroyed, then the link.
    Raises EnrolError(SOURCE_UNSAFE / BAD_INPUT)."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise EnrolError(EnrolFailure.BAD_INPUT, f"photo not found: {path} ({exc.strerror})", stage="checks",
                         params={"path": str(path)}) from None
    if stat.S_ISLNK(st.st_mode):
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # loop, dangling link
            raise EnrolError(EnrolFailure.BAD_INPUT, f"photo {path} is a broken symbolic link ({exc})",
                             stage="checks", params={"path": str(path)}) from None
        if not target.is_file():
            raise EnrolError(EnrolFailure.BAD_INPUT, f"photo {path} does not point to a file", stage="checks",
                             params={"path": str(path)})
        if destroy and not follow_symlink:
            raise EnrolError(
                EnrolFailure.SOURCE_UNSAFE,
                f"photo {path} is a symbolic link to {target}: add --delete-link-target to destroy that file, "
                "or drop --delete-source",
                stage="checks",
                params={"path": str(path), "target": str(target)},
            )
        return SourceFile(path, destroy, target)
    if not stat.S_ISREG(st.st_mode):
        raise EnrolError(EnrolFailure.BAD_INPUT, f"photo {path} is not a regular file", stage="checks",
                         params={"path": str(path)})
    return SourceFile(path, destroy)


def destroy_file(path: Path) -> None:
    """Overwrite a source file with zeros, flush it to disk, then unlink it. Refuses to follow a symbolic link.

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


def dispose(source: SourceFile) -> Disposal:
    """Destroy one source file as the operator asked; never raises (the outcome says what happened)."""
    if not source.destroy:
        return Disposal("kept")
    try:
        if source.target is not None:
            destroy_file(source.target)
            os.unlink(source.path)
        else:
            destroy_file(source.path)
    except OSError as exc:
        return Disposal("failed", f"{type(exc).__name__}: {exc.strerror or exc}"[:200])
    return Disposal("destroyed")


# ----------------------------------------------------------------------------------------------- the flow


def _card_failure(exc: BaseException, stage: str) -> EnrolError:
    if isinstance(exc, NoReaderError):
        return EnrolError(EnrolFailure.NO_READER, str(exc), stage=stage)
    if isinstance(exc, NoCardError):
        return EnrolError(EnrolFailure.NO_CARD, str(exc), stage=stage)
    if isinstance(exc, ConnectionLostError):
        return EnrolError(EnrolFailure.CARD_REMOVED, f"card removed or connection lost: {exc}", stage=stage)
    return EnrolError(EnrolFailure.CARD_ERROR, f"{type(exc).__name__}: {exc}", stage=stage)


_CARD_ERRORS = (TransportError, ApduError, ApduFormatError, PivFormatError, CardAuthError, PersonalisationError)


class _Audit:
    """The flow's audit trail: an append that fails becomes EnrolError(AUDIT) (nothing more touches the card)."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def append(self, *events: AuditEvent, stage: str) -> None:
        try:
            self.log.append_many(list(events))
        except Exception as exc:  # noqa: BLE001 - whatever the store raised, the flow must stop cleanly
            raise EnrolError(EnrolFailure.AUDIT, f"audit log append failed ({type(exc).__name__}: {exc})",
                             stage=stage) from None


def check_request(request: EnrolRequest, rules: EnrolmentRules, now: datetime) -> None:
    """The gate's rules, before the card is touched. Raises EnrolError(CATEGORY_UNKNOWN / VALIDITY)."""
    try:
        rules.category(request.category)
        rules.validity(request.valid_until, now)
    except RuleViolation as exc:
        failure = EnrolFailure.CATEGORY_UNKNOWN if exc.code == "category_unknown" else EnrolFailure.VALIDITY
        raise EnrolError(failure, str(exc), stage="checks", params={
            "category": str(request.category), "suggestion": exc.suggestion or "",
            "known": ", ".join(sorted(rules.categories)), "valid_until": f"{request.valid_until:%Y-%m-%d}",
            "max_days": rules.max_validity.days, "latest": f"{now + rules.max_validity:%Y-%m-%d}",
            "rule": exc.code,
        }) from None


def enrol(
    request: EnrolRequest,
    *,
    session: PivSession,
    keys: DeskKeys,
    capture: Capture,
    audit: AuditLog,
    rules: EnrolmentRules | None = None,
    register: CardRegister | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> EnrolResult:
    """Run one enrolment on the card behind `session`. Raises `EnrolError`; every outcome is audited.

    `rules`: the gate's rules (categories, maximum validity, revoked cards) from the composition root; every
    caller that writes real cards passes them (`cardbound.enrolment.load_rules`). None skips those checks (the
    values are still validated into the gate's types)."""
    log = _Audit(audit)
    session_id = uuid.uuid4().hex
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    card_id: str | None = None
    ids = {"station_id": request.station, "operator_id": request.operator}
    log.append(EnrolmentStarted(**ids, session_id=session_id), stage="start")

    def refused(err: EnrolError, reasons: str | None = None, detail: str | None = None) -> EnrolError:
        # best effort: if the log itself failed, the error already says AUDIT and nothing more can be recorded
        with contextlib.suppress(Exception):
            audit.append(EnrolmentRefused(
                **ids, session_id=session_id, reason_code=err.failure.value.lower(), card_id=card_id,
                duration_ms=int((time.perf_counter() - t_start) * 1000), stage=err.stage or None,
                reason_codes=reasons, detail=detail, source_kind=request.source_kind,
                sources_kept=len(request.sources) if request.sources else None,
            ))
        return err

    try:
        if rules is not None:
            check_request(request, rules, now())
    except EnrolError as err:
        raise refused(err, detail=str(err.params.get("rule") or "")) from None

    # -- inspect the card (read only) and refuse a revoked one
    try:
        identity = inspect_card(session, replace=request.replace)
    except CardNotUsable as exc:
        failure = EnrolFailure.ALREADY_ENROLLED if exc.already_enrolled else EnrolFailure.CARD_ERROR
        raise refused(EnrolError(failure, str(exc), stage="inspect")) from None
    except _CARD_ERRORS as exc:
        raise refused(_card_failure(exc, "inspect")) from None
    if identity.guid:
        card_id = CardId.of(identity.guid)
        try:
            if rules is not None:
                rules.check_card(CardGuid(identity.guid), identity.certificate_serial)
        except RuleViolation as exc:
            raise refused(EnrolError(EnrolFailure.CARD_REVOKED, str(exc), stage="inspect",
                                     params={"card_id": card_id})) from None
    if not identity.guid and not keys.can_issue_cards:
        # Card issuance needs the CA (it signs the 9E certificate); a desk bundle holds no CA key. Refused before
        # any capture, the card untouched.
        raise refused(EnrolError(EnrolFailure.KEYS, "blank card: personalise it at the key officer's station "
                                                    "first (`cardbound keys personalise-card`)", stage="inspect"))
    timings["inspect"] = (time.perf_counter() - t_start) * 1000

    # -- capture in the worker: quality gate, one person per template
    t = time.perf_counter()
    try:
        captured = capture()
    except CaptureRefused as exc:
        pairs = ", ".join(f"{a}/{b}" for a, b in exc.disagreeing[:3])
        capture_err = EnrolError(exc.failure, str(exc), exc.reasons, stage="capture",
                                 params={"pairs": pairs, "codes": " ".join(exc.reasons[:6])})
        detail = f"samples {pairs} disagree" if exc.disagreeing else None
        raise refused(capture_err, " ".join(r.lower() for r in exc.reasons[:12]) or None, detail) from None
    timings["capture"] = (time.perf_counter() - t) * 1000

    personalised = False
    try:
        # -- personalise a blank card (written ahead: card.writing step=personalise)
        t = time.perf_counter()
        if identity.public_key is None:
            log.append(CardWriting(**ids, session_id=session_id, card_id=card_id or "blank", step="personalise"),
                       stage="personalise")
            personalised = True
        try:
            identity = ensure_personalised(session, keys, identity, register=register)
        except RegisterError as exc:
            raise refused(EnrolError(EnrolFailure.KEYS, f"card register: {exc}", stage="personalise")) from None
        except _CARD_ERRORS as exc:
            raise refused(_card_failure(exc, "personalise")) from None
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
            visitor_category=str(request.category),
            holder_ref=request.holder.value,
            samples=captured.frames_used,
            sample_spread_milli=min(2000, round(captured.spread * 1000)),
        )
        try:
            container = sealed.seal(
                captured.template,  # a bytearray on purpose: wiped below, no immutable copy here
                header,
                CardBinding.for_card(identity.guid, identity.public_key),
                keys.station_credentials(request.station),
                keys.seal_recipients(),  # every site this desk enrols for (COSE recipients)
            )
        except ValueError as exc:
            raise refused(EnrolError(EnrolFailure.KEYS, f"cannot seal the template: {exc}", stage="seal")) from None
    except EnrolError as err:
        err.card_state = "not_enrolled" if personalised else "unchanged"
        raise
    finally:
        captured.wipe()  # the template now exists only inside the sealed container
    timings["seal"] = (time.perf_counter() - t) * 1000

    # -- write the template (written ahead: card.writing step=template), read back, compare
    t = time.perf_counter()
    before = "not_enrolled" if (personalised or not identity.enrolled) else "unchanged"
    try:
        log.append(CardWriting(**ids, session_id=session_id, card_id=card_id, step="template"), stage="write")
    except EnrolError as err:
        err.card_state = before
        raise refused(err) from None
    stage = WriteStage()
    try:
        write_and_check(session, keys, identity.guid, container, stage)
    except ReadBackMismatch as exc:
        mismatch = EnrolError(EnrolFailure.READ_BACK_MISMATCH, str(exc), stage="readback")
        mismatch.card_state = "not_enrolled"
        raise refused(mismatch) from None
    except _CARD_ERRORS as exc:
        lost = _card_failure(exc, stage.name)
        # "write": the card commits a PUT DATA on its last APDU, so it holds the previous object or nothing of ours;
        # "readback": the write went through but could not be checked: the card may hold the new template.
        lost.card_state = before if stage.name == "write" else "unverified"
        raise refused(lost) from None
    timings["write"] = (time.perf_counter() - t) * 1000

    written: list[AuditEvent] = [CardWritten(**ids, card_id=card_id, container_version=1,
                                             container_bytes=len(container), expires=request.valid_until.isoformat(),
                                             session_id=session_id)]
    if identity.enrolled:
        written.append(CardReplaced(**ids, card_id=card_id, previous_card_id=card_id, reason_code="re_enrolment"))
    try:
        log.append(*written, stage="written")
    except EnrolError as err:
        # A template the log cannot account for must not stay on the card.
        try:
            erase_template(session, keys, identity.guid)
            err.card_state = "not_enrolled"
        except _CARD_ERRORS:
            err.card_state = "unverified"
        raise refused(err) from None

    warnings: list[str] = []
    if register is not None:
        try:
            register.record_enrolled(CardGuid(identity.guid), request.holder, request.valid_until, request.station)
        except (OSError, RegisterError) as exc:
            warnings.append(f"card register not updated: {exc}")

    # -- dispose of the source files, as the operator asked; each outcome is audited
    disposals = [dispose(s) for s in request.sources]
    total_ms = (time.perf_counter() - t_start) * 1000
    timings["total"] = total_ms
    events: list[AuditEvent] = [
        SourceDestroyed(
            station_id=request.station, session_id=session_id, source_kind="file",
            method="overwritten-unlinked" if d.outcome == "destroyed" else "none",
            items=1, outcome=d.outcome, detail=d.detail or None,
        )
        for d in disposals
    ]
    if request.source_kind == "camera":
        events.append(SourceDestroyed(station_id=request.station, session_id=session_id, source_kind="camera-frames",
                                      method="wiped-memory", items=captured.frames_seen, outcome="destroyed"))
    events.append(
        EnrolmentCompleted(
            **ids, session_id=session_id, card_id=card_id, frames_captured=captured.frames_seen,
            duration_ms=int(total_ms), quality_score=float(captured.quality),
            visitor_category=str(request.category), source_kind=request.source_kind,
            samples=captured.frames_used, sample_spread=round(captured.spread, 4),
            sources_destroyed=sum(d.outcome == "destroyed" for d in disposals),
            sources_kept=sum(d.outcome == "kept" for d in disposals),
            sources_failed=sum(d.outcome == "failed" for d in disposals),
        )
    )
    result = EnrolResult(
        card_id=card_id, replaced=identity.enrolled, frames_used=captured.frames_used,
        frames_seen=captured.frames_seen, quality=captured.quality, spread=captured.spread,
        container_bytes=len(container), disposals=disposals, timings_ms=timings, warnings=warnings,
    )
    try:
        log.append(*events, stage="completed")
    except EnrolError as err:
        err.card_state = "enrolled"  # card.written is in the log: the card is valid; only the completion is missing
        raise
    return result
