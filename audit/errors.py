"""Typed errors of the `cardbound audit ...` commands. The command layer (`cardbound`) turns them into exit codes."""

from __future__ import annotations

from enum import Enum


class AuditFailure(Enum):
    """What an audit command ended with, when it is not plain success."""

    AUDIT = "audit"  # the log (or an export) failed verification, or is not an audit log at all
    USAGE = "usage"  # bad command line (wrong node, bad time range)
    CONFIG = "config"  # retention configuration missing or unusable
    INPUT = "input"  # a file named on the command line cannot be read
    KEYS = "keys"  # a verifier key is unusable or missing
    STORE_UNREACHABLE = "store_unreachable"  # the central store could not be reached (not evidence of tampering)
    FAILURE = "failure"  # an operation failed without a code of its own (shipping, writing an export)


class AuditCommandError(Exception):
    """An audit command cannot complete; the message is one line the operator can act on."""

    def __init__(self, message: str, failure: AuditFailure) -> None:
        super().__init__(message)
        self.failure = failure
