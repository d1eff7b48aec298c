"""The one place where outcomes become process exit codes.

Library packages raise their own typed errors (`verify.errors.GateCommandError`, `card.errors.CardCommandError`,
...) and their command handlers return an outcome (`None`, a gate `Reason`, a failure enum); nothing outside this
package knows the numbers. Scripts at the desk and the gate depend on them, so they are stable (`ExitCode`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from audit.errors import AuditCommandError, AuditFailure
from biometric.errors import BiometricCommandError, BiometricFailure
from card.errors import CardCommandError, CardFailure
from cardbound.errors import CliError, ExitCode
from enrol.errors import EnrolCommandError, EnrolCommandFailure
from enrol.flow import EnrolFailure
from verify.decision import Reason
from verify.errors import GateCommandError, GateFailure

GATE_REASON: Mapping[Reason, ExitCode] = {
    Reason.ACCEPTED: ExitCode.OK,
    Reason.ACCEPTED_NO_BIOMETRIC: ExitCode.OK,
    Reason.NO_CARD: ExitCode.NO_CARD,
    Reason.CARD_REMOVED: ExitCode.CARD_REMOVED,
    Reason.CARD_ERROR: ExitCode.CARD_ERROR,
    Reason.NOT_ENROLLED: ExitCode.CARD_NOT_ENROLLED,
    Reason.TEMPLATE_INVALID: ExitCode.TEMPLATE_INVALID,
    Reason.TEMPLATE_EXPIRED: ExitCode.TEMPLATE_EXPIRED,
    Reason.NOT_SEALED_FOR_SITE: ExitCode.NOT_SEALED_FOR_SITE,
    Reason.WRONG_CARD: ExitCode.WRONG_CARD,
    Reason.FACE_MISMATCH: ExitCode.FACE_MISMATCH,
    Reason.BANNED: ExitCode.BANNED,
    Reason.CATEGORY_NOT_ADMITTED: ExitCode.CATEGORY_NOT_ADMITTED,
    Reason.CARD_REVOKED: ExitCode.CARD_REVOKED,
    Reason.CARD_AUTH_FAILED: ExitCode.CARD_AUTH_FAILED,
    Reason.CARD_CERT_INVALID: ExitCode.CARD_CERT_INVALID,
    Reason.CAMERA_ERROR: ExitCode.NO_CAMERA,
    Reason.NO_LIVE_FACE: ExitCode.QUALITY,
    Reason.SEVERAL_FACES: ExitCode.SEVERAL_FACES,
    Reason.LISTS_STALE: ExitCode.LISTS_STALE,
    Reason.INTERNAL_ERROR: ExitCode.FAILURE,
}

GATE_FAILURE: Mapping[GateFailure, ExitCode] = {
    GateFailure.USAGE: ExitCode.USAGE,
    GateFailure.CONFIG: ExitCode.CONFIG,
    GateFailure.INPUT: ExitCode.INPUT,
    GateFailure.KEYS: ExitCode.KEYS,
    GateFailure.NO_READER: ExitCode.NO_READER,
    GateFailure.WORKER: ExitCode.FAILURE,
    GateFailure.NO_CAMERA: ExitCode.NO_CAMERA,
    GateFailure.LISTS_STALE: ExitCode.LISTS_STALE,
    GateFailure.CHECK: ExitCode.GATE_FAULT,
    GateFailure.FAULT: ExitCode.GATE_FAULT,
}

ENROL_FAILURE: Mapping[EnrolFailure, ExitCode] = {
    EnrolFailure.NO_READER: ExitCode.NO_READER,
    EnrolFailure.NO_CARD: ExitCode.NO_CARD,
    EnrolFailure.CARD_REMOVED: ExitCode.CARD_REMOVED,
    EnrolFailure.CARD_ERROR: ExitCode.CARD_ERROR,
    EnrolFailure.ALREADY_ENROLLED: ExitCode.CARD_ALREADY_ENROLLED,
    EnrolFailure.QUALITY: ExitCode.QUALITY,
    EnrolFailure.NO_CAMERA: ExitCode.NO_CAMERA,
    EnrolFailure.BAD_INPUT: ExitCode.INPUT,
    EnrolFailure.READ_BACK_MISMATCH: ExitCode.CARD_ERROR,
    EnrolFailure.KEYS: ExitCode.KEYS,
    EnrolFailure.CARD_REVOKED: ExitCode.CARD_REVOKED,
    EnrolFailure.SAMPLES_DISAGREE: ExitCode.SAMPLES_DISAGREE,
    EnrolFailure.CATEGORY_UNKNOWN: ExitCode.USAGE,
    EnrolFailure.VALIDITY: ExitCode.USAGE,
    EnrolFailure.SOURCE_UNSAFE: ExitCode.USAGE,
    EnrolFailure.WORKER_FAILED: ExitCode.FAILURE,
    EnrolFailure.AUDIT: ExitCode.AUDIT,
}

ENROL_COMMAND_FAILURE: Mapping[EnrolCommandFailure, ExitCode] = {
    EnrolCommandFailure.USAGE: ExitCode.USAGE,
    EnrolCommandFailure.WORKER: ExitCode.FAILURE,
    EnrolCommandFailure.BAD_HOLDER_REF: ExitCode.USAGE,
    EnrolCommandFailure.BAD_NRN: ExitCode.INPUT,
    EnrolCommandFailure.BAD_DATE: ExitCode.USAGE,
    EnrolCommandFailure.CONFIG: ExitCode.CONFIG,
    EnrolCommandFailure.KEYS: ExitCode.KEYS,
    EnrolCommandFailure.SOURCE_NOT_DESTROYED: ExitCode.SOURCE_NOT_DESTROYED,
}

CARD_FAILURE: Mapping[CardFailure, ExitCode] = {
    CardFailure.USAGE: ExitCode.USAGE,
    CardFailure.INPUT: ExitCode.INPUT,
    CardFailure.NO_READER: ExitCode.NO_READER,
    CardFailure.NO_CARD: ExitCode.NO_CARD,
    CardFailure.CARD_REMOVED: ExitCode.CARD_REMOVED,
    CardFailure.CARD_ERROR: ExitCode.CARD_ERROR,
    CardFailure.KEYS: ExitCode.KEYS,
}

AUDIT_FAILURE: Mapping[AuditFailure, ExitCode] = {
    AuditFailure.AUDIT: ExitCode.AUDIT,
    AuditFailure.USAGE: ExitCode.USAGE,
    AuditFailure.CONFIG: ExitCode.CONFIG,
    AuditFailure.INPUT: ExitCode.INPUT,
    AuditFailure.KEYS: ExitCode.KEYS,
    AuditFailure.STORE_UNREACHABLE: ExitCode.AUDIT_STORE_UNREACHABLE,
    AuditFailure.FAILURE: ExitCode.FAILURE,
}

BIOMETRIC_FAILURE: Mapping[BiometricFailure, ExitCode] = {
    BiometricFailure.USAGE: ExitCode.USAGE,
    BiometricFailure.INPUT: ExitCode.INPUT,
    BiometricFailure.NO_CAMERA: ExitCode.NO_CAMERA,
    BiometricFailure.QUALITY: ExitCode.QUALITY,
    BiometricFailure.TEMPLATE_INVALID: ExitCode.TEMPLATE_INVALID,
    BiometricFailure.MISSING_EXTRA: ExitCode.FAILURE,
    BiometricFailure.WORKER: ExitCode.FAILURE,
}

_TABLES: dict[type[Enum], Mapping[Any, ExitCode]] = {
    Reason: GATE_REASON,
    GateFailure: GATE_FAILURE,
    EnrolFailure: ENROL_FAILURE,
    EnrolCommandFailure: ENROL_COMMAND_FAILURE,
    CardFailure: CARD_FAILURE,
    AuditFailure: AUDIT_FAILURE,
    BiometricFailure: BIOMETRIC_FAILURE,
}

# Typed command errors: each carries a `failure` member of one of the enums above.
COMMAND_ERRORS: tuple[type[Exception], ...] = (
    GateCommandError,
    EnrolCommandError,
    CardCommandError,
    AuditCommandError,
    BiometricCommandError,
)


def exit_code(outcome: object) -> int:
    """Exit code of a handler's result: `None` is success, an int (or `ExitCode`) passes through, an outcome enum
    is mapped. An enum member without an entry is a generic failure, never success."""
    if outcome is None:
        return int(ExitCode.OK)
    if isinstance(outcome, int) and not isinstance(outcome, bool):
        return int(outcome)
    if isinstance(outcome, Enum):
        table = _TABLES.get(type(outcome))
        # A gate reason without a code of its own is still a refusal; any other unknown outcome is a failure.
        fallback = ExitCode.REJECTED if isinstance(outcome, Reason) else ExitCode.FAILURE
        return int(table.get(outcome, fallback)) if table is not None else int(ExitCode.FAILURE)
    return int(ExitCode.FAILURE)


def error_exit_code(exc: BaseException) -> int | None:
    """Exit code for a typed error the user can act on, else None (an unexpected error: a bug)."""
    if isinstance(exc, CliError):
        return int(exc.exit_code)
    if isinstance(exc, COMMAND_ERRORS):
        failure = getattr(exc, "failure", None)
        return exit_code(failure) if isinstance(failure, Enum) else int(ExitCode.FAILURE)
    return None
