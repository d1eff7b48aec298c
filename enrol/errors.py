"""Typed errors of the `cardbound enrol` command. The command layer (`cardbound`) turns them into exit codes."""

from __future__ import annotations

from enum import Enum

from enrol.flow import EnrolFailure


class EnrolCommandFailure(Enum):
    """Why the enrol command stopped before the flow could report an `EnrolFailure`."""

    USAGE = "usage"  # bad command line value (date, holder reference, category)
    WORKER = "worker"  # the sandboxed biometric worker could not start


class EnrolCommandError(Exception):
    """The enrolment command failed; `failure` is the flow's `EnrolFailure` or a command-level failure."""

    def __init__(self, message: str, failure: EnrolFailure | EnrolCommandFailure) -> None:
        super().__init__(message)
        self.failure = failure
