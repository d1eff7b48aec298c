"""Tamper-evident audit log: typed events, RFC 9162 Merkle tree, signed checkpoints, retention, storage.

Public API (what enrolment, the gate and the evidence pack call)::

    from audit import AuditLog, GateDecision, EnrolmentCompleted, ...

    with AuditLog.open_station(home.root, node_id="gate-07") as log:   # home/audit/audit.sqlite3
        idx = log.append(GateDecision(gate_id="gate-07", card_id=pseudonym, decision="granted",
                                      reason_code="match", security_level=1, total_ms=412))
        log.append_many([...])          # one durable transaction, returns the indices

    AuditLog.open(path: Path, node_id: str, *, key_file: Path | None = None,
                  checkpoint_every: int = 1000, checkpoint_seconds: float | None = 300.0) -> AuditLog

- `append(event) -> int` validates the event (`audit.events`: scalars only; blobs, long base64/hex runs,
  image payloads and number lists are refused with `BiometricContentError`), commits it durably (SQLite WAL,
  synchronous=FULL) and returns its 0-based entry index.
- Events are typed dataclasses in `audit.events` (`EVENT_TYPES` maps type string -> class; `event_schema(cls)`).
- A checkpoint (C2SP signed note, Ed25519 key `home/keys/audit-<node>.ed25519`, 0600, created on first use)
  is signed every `checkpoint_every` entries, on the first append `checkpoint_seconds` after the previous
  one, and on `close()`; `log.checkpoint()` signs one now (keep copies elsewhere: they reveal roll-back).
- `root(size)`, `inclusion_proof(index, size)`, `consistency_proof(size1, size2)` are O(log n) look-ups.
- Verification, shipping to PostgreSQL, the central store, retention and export live in `audit.verify`
  (`verify_database`), `audit.ship` (`ship`), `audit.central` (`verify_central`, `export_central`),
  `audit.retention` (`purge`, `parse_retention`), `audit.export` (`export_log`, `verify_export`);
  RFC 9162 hashing and proofs in `audit.merkle`; the command line is `cardbound audit ...` (`audit.cli`).
"""

from audit.events import (
    EVENT_TYPES,
    AuditEvent,
    BiometricContentError,
    CardReplaced,
    CardWriting,
    CardWritten,
    ClockStepped,
    ConfigChanged,
    EnrolmentCompleted,
    EnrolmentRefused,
    EnrolmentStarted,
    EventValidationError,
    EvidenceExported,
    EvidenceProbe,
    GateDecision,
    GateFault,
    KeyExported,
    KeyIssued,
    KeyRevoked,
    KeyRotated,
    OperatorInvited,
    OperatorLogin,
    OperatorLoginFailed,
    OperatorLogout,
    OperatorRegistered,
    OperatorRoleChanged,
    RetentionPurge,
    SecurityLevelChanged,
    SourceDestroyed,
    event_schema,
)
from audit.log import AuditLog, AuditLogError, Entry

__all__ = [
    "EVENT_TYPES",
    "AuditEvent",
    "AuditLog",
    "AuditLogError",
    "BiometricContentError",
    "CardReplaced",
    "CardWriting",
    "CardWritten",
    "ClockStepped",
    "ConfigChanged",
    "EnrolmentCompleted",
    "EnrolmentRefused",
    "EnrolmentStarted",
    "Entry",
    "EventValidationError",
    "EvidenceExported",
    "EvidenceProbe",
    "GateDecision",
    "GateFault",
    "KeyExported",
    "KeyIssued",
    "KeyRotated",
    "KeyRevoked",
    "OperatorInvited",
    "OperatorLogin",
    "OperatorLoginFailed",
    "OperatorLogout",
    "OperatorRegistered",
    "OperatorRoleChanged",
    "RetentionPurge",
    "SecurityLevelChanged",
    "SourceDestroyed",
    "event_schema",
]
