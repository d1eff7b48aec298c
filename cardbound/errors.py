"""Exit codes and the one error type the command line turns into a clean message."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of `cardbound`. Stable: scripts at the desk and the gate depend on them."""

    OK = 0
    FAILURE = 1  # generic failure (something went wrong that has no code of its own)
    USAGE = 2  # bad command line (argparse uses 2 as well)
    CONFIG = 3  # bad or missing configuration file
    INPUT = 4  # bad input file (not an image, corrupt, too large, missing)
    SOURCE_NOT_DESTROYED = 5  # enrolled, but a source file asked to be destroyed could not be
    NO_READER = 10  # the named reader does not exist / PC/SC unavailable
    NO_CARD = 11  # no card presented within the timeout
    CARD_REMOVED = 12  # card removed or failed mid-flow
    CARD_ERROR = 13  # the card answered with an error / unexpected data
    CARD_NOT_ENROLLED = 14
    CARD_ALREADY_ENROLLED = 15
    NO_CAMERA = 20
    QUALITY = 21  # no frame passed the quality gate (no face, several faces, ...)
    SAMPLES_DISAGREE = 22  # the samples of one enrolment are not of one person
    TEMPLATE_INVALID = 30  # sealed template rejected (malformed, tampered, bad signature, untrusted station)
    TEMPLATE_EXPIRED = 31
    WRONG_CARD = 32  # template bound to another card (copied container)
    NOT_SEALED_FOR_SITE = 33  # template sealed to other sites' verifier keys only (or to a key past its overlap)
    REJECTED = 40  # gate decision: access refused (generic)
    FACE_MISMATCH = 41
    BANNED = 42  # port ban (art. 2.5.2.81)
    CATEGORY_NOT_ADMITTED = 43
    CARD_REVOKED = 44
    CARD_AUTH_FAILED = 45  # clone or replay: the card did not prove possession of its 9E key
    CARD_CERT_INVALID = 46
    LISTS_STALE = 48  # gate: its CRL, ban list or revoked-card list is too old for the ISPS level: refused
    SEVERAL_FACES = 47  # gate: a second face in the capture, refused by the policy at this level
    KEYS = 50  # keystore missing or invalid
    AUDIT = 60  # audit log failed verification
    AUDIT_STORE_UNREACHABLE = 61  # the central audit store could not be reached (not evidence of tampering)
    GATE_FAULT = 70  # the running gate stopped on a fault of its own (a reader thread died): restart it
    INTERRUPTED = 130


class CliError(Exception):
    """An error the user can act on: printed as one line, with a distinct exit code."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code
