"""Typed errors of the `cardbound card ...` and `cardbound keys ...` commands.

The command layer (`cardbound`) turns them into exit codes; the card library's own errors (transport, APDU, PIV,
keystore) stay where they are raised.
"""

from __future__ import annotations

from enum import Enum


class CardFailure(Enum):
    USAGE = "usage"  # bad command line value (key id, GUID)
    INPUT = "input"  # unusable card image file
    NO_READER = "no_reader"  # PC/SC unavailable or no such reader
    NO_CARD = "no_card"
    CARD_REMOVED = "card_removed"
    CARD_ERROR = "card_error"  # the card answered an error or unexpected data
    KEYS = "keys"  # keystore missing, invalid or unreadable


class CardCommandError(Exception):
    """A card or keys command cannot complete; the message is one line the operator can act on."""

    def __init__(self, message: str, failure: CardFailure) -> None:
        super().__init__(message)
        self.failure = failure
