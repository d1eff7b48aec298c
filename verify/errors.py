"""Typed errors of the gate commands (`cardbound verify`, `cardbound gate ...`).

The command layer (`cardbound`) turns them into exit codes; this package only says *what* went wrong.
"""

from __future__ import annotations

from enum import Enum


class GateFailure(Enum):
    """Why a gate command could not run at all (a card's refusal is a `Reason`, not one of these)."""

    USAGE = "usage"  # bad command line or missing live source
    CONFIG = "config"  # gate configuration, policy, lists or level file unusable
    INPUT = "input"  # bad input on stdin or in a file named on the command line
    KEYS = "keys"  # trust bundle, keystore or holder-reference key unusable
    NO_READER = "no_reader"  # PC/SC unavailable or the named reader does not exist
    WORKER = "worker"  # the sandboxed biometric worker could not start
    NO_CAMERA = "no_camera"  # the live source cannot deliver frames (missing camera, file or folder)
    LISTS_STALE = "lists_stale"  # the CRL, ban list or revoked-card list is too old for the current level
    CHECK = "check"  # `gate check` found a piece that FAILs
    FAULT = "fault"  # the running gate stopped on a fault of its own (a reader thread died)


class GateCommandError(Exception):
    """A gate command cannot run; the message is one line the operator can act on."""

    def __init__(self, message: str, failure: GateFailure) -> None:
        super().__init__(message)
        self.failure = failure
