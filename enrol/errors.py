"""Typed errors of the `cardbound enrol` command. The command layer (`cardbound`) turns them into exit codes."""

from __future__ import annotations

from enum import Enum

from enrol.flow import EnrolFailure


class EnrolCommandFailure(Enum):
    """Why the enrol command stopped before the flow could report an `EnrolFailure`."""

    USAGE = "usage"  # bad command line value (date, holder reference, category)
    WORKER = "worker"  # the sandboxed biometric worker could not start
    BAD_HOLDER_REF = "bad_holder_ref"  # --holder-ref is not 32 bytes of hex
    BAD_NRN = "bad_nrn"  # the national register number given is not valid
    BAD_DATE = "bad_date"  # --valid-until is not a date
    CONFIG = "config"  # the gate configuration whose rules the desk enforces is unusable (fail closed)
    KEYS = "keys"  # the holder-reference key is missing
    SOURCE_NOT_DESTROYED = "source_not_destroyed"  # enrolled, but a source file could not be destroyed


class EnrolCommandError(Exception):
    """The enrolment command failed; `failure` is the flow's `EnrolFailure` or a command-level failure."""

    def __init__(self, message: str, failure: EnrolFailure | EnrolCommandFailure) -> None:
        super().__init__(message)
        self.failure = failure
