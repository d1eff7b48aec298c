"""Typed audit events whose schema cannot carry biometric content.

Every event is a small frozen dataclass with a stable `TYPE` string. Fields are scalars only (str, int,
float, bool, None) and each str field has a *kind* that bounds its shape (identifier, reason code, short
text). Validation runs on construction and again on write (`validate_event`), so a caller that bypasses the
constructor still cannot smuggle a blob in. What is refused, and why:

- bytes / bytearray / memoryview / arrays / lists / dicts: a template or a descriptor is one of those;
- long base64 / hex runs (> 64 characters): an encoded template or image;
- image-like payloads (data: URIs, JPEG/PNG/BMP/TIFF/WebP magic, raw or base64);
- lists of numbers written as text (a descriptor printed as "0.12,-0.03,...");
- non-finite floats and strings longer than their kind allows.

A 64-hex-character value (e.g. a SHA-256 pseudonymous card id) is the longest encoded run allowed.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, ClassVar

__all__ = [
    "EVENT_TYPES",
    "AuditEvent",
    "BiometricContentError",
    "CardReplaced",
    "CardWriting",
    "CardWritten",
    "ConfigChanged",
    "EnrolmentCompleted",
    "EnrolmentRefused",
    "EnrolmentStarted",
    "EventValidationError",
    "EvidenceExported",
    "EvidenceProbe",
    "KeyExported",
    "KeyRotated",
    "GateDecision",
    "KeyIssued",
    "KeyRevoked",
    "OperatorLogin",
    "OperatorLoginFailed",
    "OperatorInvited",
    "OperatorLogout",
    "OperatorRegistered",
    "OperatorRoleChanged",
    "RetentionPurge",
    "SecurityLevelChanged",
    "SourceDestroyed",
    "event_from_record",
    "event_schema",
    "validate_event",
]


class EventValidationError(ValueError):
    """An event does not match its schema (wrong type, out of range, unknown field)."""

    def __init__(self, event_type: str, field: str, reason: str) -> None:
        super().__init__(f"audit event {event_type}.{field}: {reason}")
        self.event_type = event_type
        self.field = field
        self.reason = reason


class BiometricContentError(EventValidationError):
    """A field looks like it could carry biometric content (blob, encoded data, image, number list)."""


class Kind(Enum):
    """Shape of a string field."""

    ID = "id"  # identifiers: node, gate, station, operator, card pseudonym, key id, session id
    CODE = "code"  # reason codes, decisions, enums spelled as text
    TEXT = "text"  # short human text (config values, subjects)
    TIME = "time"  # ISO 8601 timestamp


Id = Annotated[str, Kind.ID]
Code = Annotated[str, Kind.CODE]
Text = Annotated[str, Kind.TEXT]
Time = Annotated[str, Kind.TIME]

_PATTERNS: dict[Kind, re.Pattern[str]] = {
    Kind.ID: re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@/+=-]{0,63}"),
    Kind.CODE: re.compile(r"[a-z0-9][a-z0-9_.-]{0,47}"),
    Kind.TEXT: re.compile(r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]{0,200}"),
    Kind.TIME: re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?"),
}
_MAX_ENCODED_RUN = 64
_ENCODED_RUN = re.compile(r"[A-Za-z0-9+/_=-]{" + str(_MAX_ENCODED_RUN + 1) + ",}")
_NUMBER_LIST = re.compile(r"(?:[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?[\s,;]+){7,}[-+]?\d*\.?\d+")
# Magic numbers of image formats, raw (as text) or at the start of their base64 encoding.
_IMAGE_MARKERS = (
    "data:image",
    "\xff\xd8\xff",
    "\x89PNG",
    "GIF8",
    "RIFF",
    "II*\x00",
    "MM\x00*",
    "/9j/",
    "iVBORw0KGgo",
    "R0lGOD",
    "UklGR",
    "Qk0",
    "SUkqAA",
    "TU0AKg",
    "P5\n",
    "P6\n",
    "YUV4MPEG",
)
_MAX_INT = 2**63 - 1


@dataclass(frozen=True)
class AuditEvent:
    """Base class. Subclasses set `TYPE` and declare scalar fields only."""

    TYPE: ClassVar[str] = ""

    def __post_init__(self) -> None:
        validate_event(self)

    def fields(self) -> dict[str, Any]:
        """The event's fields as a plain dict (scalars only), in declaration order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _field_specs(cls: type[AuditEvent]) -> dict[str, tuple[tuple[type, ...], Kind | None, bool]]:
    """name -> (allowed python types, string kind, optional) from the class annotations."""
    cached = _SPEC_CACHE.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls, include_extras=True)
    specs: dict[str, tuple[tuple[type, ...], Kind | None, bool]] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        optional = False
        args = typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            optional = type(None) in args
            rest = [a for a in args if a is not type(None)]
            if len(rest) != 1:
                raise TypeError(f"{cls.__name__}.{f.name}: only 'T | None' unions are allowed")
            hint = rest[0]
        kind: Kind | None = None
        if typing.get_origin(hint) is Annotated:
            base, *meta = typing.get_args(hint)
            kind = next((m for m in meta if isinstance(m, Kind)), None)
            hint = base
        if hint not in (str, int, float, bool):
            raise TypeError(f"{cls.__name__}.{f.name}: audit fields must be scalar, not {hint!r}")
        if hint is str and kind is None:
            raise TypeError(f"{cls.__name__}.{f.name}: str fields need a Kind (Id, Code, Text, Time)")
        allowed: tuple[type, ...] = (int, float) if hint is float else (hint,)
        specs[f.name] = (allowed, kind, optional)
    _SPEC_CACHE[cls] = specs
    return specs


_SPEC_CACHE: dict[type, dict[str, tuple[tuple[type, ...], Kind | None, bool]]] = {}


def _check_string(event_type: str, name: str, value: str, kind: Kind) -> None:
    if value.startswith(_IMAGE_MARKERS) or "data:image" in value.lower():
        raise BiometricContentError(event_type, name, "image-like payload refused")
    if _ENCODED_RUN.search(value):
        raise BiometricContentError(
            event_type, name, f"encoded run longer than {_MAX_ENCODED_RUN} characters refused (base64/hex blob)"
        )
    if _NUMBER_LIST.search(value):
        raise BiometricContentError(event_type, name, "list of numbers refused (looks like a descriptor)")
    if not _PATTERNS[kind].fullmatch(value):
        raise EventValidationError(event_type, name, f"not a valid {kind.value} ({len(value)} characters)")


def _check_value(event_type: str, name: str, value: object, spec: tuple[tuple[type, ...], Kind | None, bool]) -> None:
    allowed, kind, optional = spec
    if value is None:
        if not optional:
            raise EventValidationError(event_type, name, "required")
        return
    if isinstance(value, bytes | bytearray | memoryview) or hasattr(value, "__array__"):
        raise BiometricContentError(event_type, name, f"binary/array value refused ({type(value).__name__})")
    if isinstance(value, list | tuple | set | frozenset | dict | Mapping):
        raise BiometricContentError(event_type, name, f"collections refused ({type(value).__name__})")
    # bool is an int subclass: accept it only where bool is declared, and never as a number.
    if isinstance(value, bool) != (bool in allowed) or not isinstance(value, allowed):
        raise EventValidationError(event_type, name, f"expected {'/'.join(t.__name__ for t in allowed)}")
    if isinstance(value, int) and not isinstance(value, bool) and not -_MAX_INT <= value <= _MAX_INT:
        raise EventValidationError(event_type, name, "integer out of range")
    if isinstance(value, float) and not math.isfinite(value):
        raise EventValidationError(event_type, name, "non-finite number")
    if isinstance(value, str):
        assert kind is not None
        _check_string(event_type, name, value, kind)


def validate_event(event: AuditEvent) -> None:
    """Check every field of `event` against its schema; raise EventValidationError / BiometricContentError."""
    cls = type(event)
    if not isinstance(event, AuditEvent) or EVENT_TYPES.get(cls.TYPE) is not cls:
        raise EventValidationError(getattr(cls, "TYPE", cls.__name__) or cls.__name__, "*", "unregistered type")
    specs = _field_specs(cls)
    for name, spec in specs.items():
        _check_value(cls.TYPE, name, getattr(event, name), spec)
    extra = set(vars(event)) - set(specs) if hasattr(event, "__dict__") else set()
    if extra:
        raise EventValidationError(cls.TYPE, sorted(extra)[0], "unknown field")


def event_schema(cls: type[AuditEvent]) -> dict[str, Any]:
    """A JSON-schema-like description of one event type (for documentation and the evidence pack)."""
    props: dict[str, Any] = {}
    required: list[str] = []
    for name, (allowed, kind, optional) in _field_specs(cls).items():
        jtype = {str: "string", int: "integer", float: "number", bool: "boolean"}[allowed[-1]]
        prop: dict[str, Any] = {"type": [jtype, "null"] if optional else jtype}
        if kind is not None:
            prop["pattern"] = _PATTERNS[kind].pattern
            prop["kind"] = kind.value
        props[name] = prop
        if not optional:
            required.append(name)
    return {"type": cls.TYPE, "properties": props, "required": required, "additionalProperties": False}


def event_from_record(event_type: str, fields: Mapping[str, Any]) -> AuditEvent:
    """Rebuild a typed event from its stored form (validates again)."""
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise EventValidationError(event_type, "*", "unknown event type")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(fields) - known
    if unknown:
        raise EventValidationError(event_type, sorted(unknown)[0], "unknown field")
    return cls(**fields)


EVENT_TYPES: dict[str, type[AuditEvent]] = {}


def _register(cls: type[AuditEvent]) -> type[AuditEvent]:
    if not cls.TYPE or cls.TYPE in EVENT_TYPES:
        raise TypeError(f"bad or duplicate event type {cls.TYPE!r}")
    EVENT_TYPES[cls.TYPE] = cls
    _field_specs(cls)  # fail at import time on a non-scalar field
    return cls


# --- enrolment desk -------------------------------------------------------------------------------------------


@_register
@dataclass(frozen=True)
class EnrolmentStarted(AuditEvent):
    TYPE: ClassVar[str] = "enrolment.started"
    station_id: Id
    operator_id: Id
    session_id: Id


@_register
@dataclass(frozen=True)
class EnrolmentCompleted(AuditEvent):
    TYPE: ClassVar[str] = "enrolment.completed"
    station_id: Id
    operator_id: Id
    session_id: Id
    card_id: Id  # pseudonymous card id, never the holder's name
    frames_captured: int
    duration_ms: int
    quality_score: float | None = None
    visitor_category: Code | None = None
    source_kind: Code | None = None  # camera / file
    samples: int | None = None  # samples averaged into the reference
    sample_spread: float | None = None  # largest distance between two samples of this enrolment
    sources_destroyed: int | None = None  # source files: destroyed, kept by the operator's choice, failed
    sources_kept: int | None = None
    sources_failed: int | None = None


@_register
@dataclass(frozen=True)
class EnrolmentRefused(AuditEvent):
    TYPE: ClassVar[str] = "enrolment.refused"
    station_id: Id
    operator_id: Id
    session_id: Id
    reason_code: Code
    card_id: Id | None = None
    duration_ms: int | None = None
    stage: Code | None = None  # how far the enrolment got: checks, inspect, capture, personalise, seal, write, ...
    reason_codes: Text | None = None  # the quality reason codes of the refused frames, space-separated
    detail: Text | None = None  # e.g. which samples disagree; never a path, a name or biometric content
    source_kind: Code | None = None  # camera / file
    sources_kept: int | None = None  # source files left in place (a refused enrolment destroys nothing)


@_register
@dataclass(frozen=True)
class CardWriting(AuditEvent):
    """Written *ahead* of a card write, so a crash mid-write leaves a trail that says how far it got."""

    TYPE: ClassVar[str] = "card.writing"
    station_id: Id
    operator_id: Id
    session_id: Id
    card_id: Id
    step: Code  # personalise / template


@_register
@dataclass(frozen=True)
class CardWritten(AuditEvent):
    TYPE: ClassVar[str] = "card.written"
    station_id: Id
    operator_id: Id
    card_id: Id
    container_version: int
    container_bytes: int  # size only, never the content
    expires: Time | None = None
    session_id: Id | None = None


@_register
@dataclass(frozen=True)
class CardReplaced(AuditEvent):
    TYPE: ClassVar[str] = "card.replaced"
    station_id: Id
    operator_id: Id
    card_id: Id
    previous_card_id: Id
    reason_code: Code


@_register
@dataclass(frozen=True)
class SourceDestroyed(AuditEvent):
    TYPE: ClassVar[str] = "source.destroyed"
    station_id: Id
    session_id: Id
    source_kind: Code  # camera-frames, file, upload
    method: Code  # wiped-memory, unlinked, overwritten-unlinked
    items: int = 1
    outcome: Code | None = None  # destroyed / kept (operator's choice) / failed (None: destroyed, older entries)
    detail: Text | None = None  # why it failed (the OS error, never the path)


# --- gate -----------------------------------------------------------------------------------------------------


@_register
@dataclass(frozen=True)
class GateDecision(AuditEvent):
    TYPE: ClassVar[str] = "gate.decision"
    gate_id: Id
    card_id: Id | None  # None when the card could not be read
    decision: Code  # granted / refused
    reason_code: Code
    security_level: int
    total_ms: int
    card_ms: int | None = None
    capture_ms: int | None = None
    compare_ms: int | None = None
    visitor_category: Code | None = None
    reader_id: Id | None = None  # which of the gate's readers ("reader-0", ...)
    lane_id: Id | None = None  # the lane / door the gate configuration maps that reader to
    flags: Code | None = None  # e.g. "several_faces" when the policy accepted with a flag

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.decision not in ("granted", "refused"):
            raise EventValidationError(self.TYPE, "decision", "must be 'granted' or 'refused'")
        if self.security_level not in (1, 2, 3):
            raise EventValidationError(self.TYPE, "security_level", "must be 1, 2 or 3 (ISPS)")


@_register
@dataclass(frozen=True)
class GateFault(AuditEvent):
    """A fault of the gate itself, not of a person: the door hook failed or hung, a reader thread died, the
    camera cannot deliver frames, a configuration reload was refused or applied."""

    TYPE: ClassVar[str] = "gate.fault"
    gate_id: Id
    fault_code: Code
    lane_id: Id | None = None
    card_id: Id | None = None


@_register
@dataclass(frozen=True)
class SecurityLevelChanged(AuditEvent):
    TYPE: ClassVar[str] = "security.level_changed"
    site_id: Id
    operator_id: Id
    old_level: int
    new_level: int
    reason_code: Code | None = None


# --- operators, keys, configuration ---------------------------------------------------------------------------


@_register
@dataclass(frozen=True)
class OperatorLogin(AuditEvent):
    TYPE: ClassVar[str] = "operator.login"
    station_id: Id
    operator_id: Id
    method: Code = "webauthn"


@_register
@dataclass(frozen=True)
class OperatorLogout(AuditEvent):
    TYPE: ClassVar[str] = "operator.logout"
    station_id: Id
    operator_id: Id
    reason_code: Code = "user"


@_register
@dataclass(frozen=True)
class OperatorLoginFailed(AuditEvent):
    TYPE: ClassVar[str] = "operator.login_failed"
    station_id: Id
    reason_code: Code
    operator_id: Id | None = None


@_register
@dataclass(frozen=True)
class OperatorInvited(AuditEvent):
    """A one-time registration link was issued (desk admin page, or `cardbound desk bootstrap-admin`)."""

    TYPE: ClassVar[str] = "operator.invited"
    station_id: Id
    operator_id: Id
    role: Code
    by_operator_id: Id | None = None  # None: the command line (bootstrap)


@_register
@dataclass(frozen=True)
class OperatorRegistered(AuditEvent):
    """A security key (WebAuthn credential) was registered for an operator."""

    TYPE: ClassVar[str] = "operator.registered"
    station_id: Id
    operator_id: Id
    role: Code
    credentials: int  # how many keys the operator has now
    by_operator_id: Id | None = None  # who issued the link


@_register
@dataclass(frozen=True)
class OperatorRoleChanged(AuditEvent):
    TYPE: ClassVar[str] = "operator.role_changed"
    station_id: Id
    operator_id: Id
    old_role: Code
    new_role: Code
    by_operator_id: Id


@_register
@dataclass(frozen=True)
class KeyIssued(AuditEvent):
    TYPE: ClassVar[str] = "key.issued"
    key_id: Id
    key_kind: Code
    subject: Text
    operator_id: Id | None = None
    expires: Time | None = None


@_register
@dataclass(frozen=True)
class KeyRevoked(AuditEvent):
    TYPE: ClassVar[str] = "key.revoked"
    key_id: Id
    key_kind: Code
    reason_code: Code
    operator_id: Id | None = None


@_register
@dataclass(frozen=True)
class KeyRotated(AuditEvent):
    """A site's verifier key replaced; the old one keeps unsealing until `overlap_ends`."""

    TYPE: ClassVar[str] = "key.rotated"
    key_id: Id
    new_key_id: Id
    key_kind: Code
    overlap_ends: Time
    operator_id: Id | None = None


@_register
@dataclass(frozen=True)
class KeyExported(AuditEvent):
    """A role bundle written for one station (`keys export-desk` / `export-gate`)."""

    TYPE: ClassVar[str] = "key.exported"
    bundle: Code  # desk_bundle | gate_bundle
    station_id: Id
    key_ids: Text  # the key ids the bundle carries or names, space-separated
    backend: Code
    operator_id: Id | None = None


@_register
@dataclass(frozen=True)
class ConfigChanged(AuditEvent):
    TYPE: ClassVar[str] = "config.changed"
    setting: Code
    new_value: Text
    old_value: Text | None = None
    operator_id: Id | None = None


# --- the audit log itself -------------------------------------------------------------------------------------


@_register
@dataclass(frozen=True)
class RetentionPurge(AuditEvent):
    TYPE: ClassVar[str] = "retention.purge"
    node_id: Id
    retention_days: int
    cutoff: Time
    purged_entries: int  # number of entries removed from the front of the log
    first_kept_index: int
    operator_id: Id | None = None
    # A purge that overrode a refusal (clock behind the latest checkpoint, entries not yet shipped) says so.
    forced: bool = False
    unshipped_entries: int = 0
    clock_behind_ms: int = 0


@_register
@dataclass(frozen=True)
class ClockStepped(AuditEvent):
    """The node noticed its wall clock jump (against the monotonic clock, or behind its own last entry)."""

    TYPE: ClassVar[str] = "clock.stepped"
    node_id: Id
    step_ms: int  # signed: negative = the clock went back
    previous_time: Time  # the time the node expected (last entry, or last time + monotonic elapsed)
    observed_time: Time
    detected_by: Code  # "monotonic" (within one process) or "last-entry" (across restarts / processes)


@_register
@dataclass(frozen=True)
class EvidenceExported(AuditEvent):
    TYPE: ClassVar[str] = "evidence.exported"
    node_id: Id
    entries: int
    export_format: Code
    from_time: Time | None = None
    to_time: Time | None = None
    event_type: Code | None = None
    export_sha256: Id | None = None
    operator_id: Id | None = None


@_register
@dataclass(frozen=True)
class EvidenceProbe(AuditEvent):
    """One conformance probe of the evidence pack (art. 2.5.2.85 §3) ran on this node: its name and outcome,
    never its inputs' content (the probe photos are named by the pack, not here)."""

    TYPE: ClassVar[str] = "evidence.probe"
    node_id: Id
    probe: Code  # e.g. "write-watch", "no-one-to-many"
    result: Code  # "pass" | "fail" | "not-run"
    findings: int
    software_version: Text
    run_id: Id | None = None
