"""Domain values that cross layers: validated once, at the boundary, then carried as these types.

The desk writes them into the sealed template, the gate reads them back, the audit log records them: each layer
takes the same type, so the desk can never write what a gate refuses. Every constructor raises `ValueError`
(a `ValueError` subclass, `InvalidValue`, naming the field) on bad input; nothing else is ever raised.

Each value's text form is also a valid audit-log identifier or code (tested), so a value that passed here can
always be audited.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

__all__ = [
    "CARD_ID_HEX",
    "GUID_BYTES",
    "HOLDER_REF_BYTES",
    "CardGuid",
    "CardId",
    "Category",
    "HolderRef",
    "InvalidValue",
    "StationId",
]

HOLDER_REF_BYTES = 32  # HMAC-SHA256(key, national register number)
GUID_BYTES = 16  # FASC-N-free CHUID GUID (SP 800-73-4)
CARD_ID_HEX = 16  # pseudonymous card id: 64 bits of SHA-256 over the GUID

_CATEGORY = re.compile(r"[a-z][a-z0-9_]{0,31}")
_STATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX = re.compile(r"[0-9a-f]*")
_GUID_SEPARATORS = re.compile(r"[\s{}:-]")


class InvalidValue(ValueError):
    """A domain value is malformed. `field` names the value (e.g. "category"); the message says what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class HolderRef:
    """Pseudonymous holder reference: exactly 32 bytes (HMAC-SHA256 of the national register number)."""

    value: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes) or len(self.value) != HOLDER_REF_BYTES:
            raise InvalidValue("holder_ref", f"must be exactly {HOLDER_REF_BYTES} bytes")

    @classmethod
    def from_hex(cls, text: str) -> HolderRef:
        t = text.strip().lower() if isinstance(text, str) else ""
        if len(t) != 2 * HOLDER_REF_BYTES or not _HEX.fullmatch(t):
            raise InvalidValue("holder_ref", f"must be {2 * HOLDER_REF_BYTES} hexadecimal characters")
        return cls(bytes.fromhex(t))

    def hex(self) -> str:
        return self.value.hex()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HolderRef) and hmac.compare_digest(self.value, other.value)

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:  # pseudonymous, but still not something to spray into logs
        return f"HolderRef({self.value[:2].hex()}…)"


class Category(str):
    """Visitor category as the gate policy names it: lower-case, `[a-z][a-z0-9_]{0,31}`, compared case-exact."""

    __slots__ = ()

    def __new__(cls, text: str) -> Category:
        if not isinstance(text, str) or not _CATEGORY.fullmatch(text):
            raise InvalidValue("category", f"{text!r} is not a category (lower-case letters, digits, '_'; "
                                           "starts with a letter; at most 32)")
        return super().__new__(cls, text)


class StationId(str):
    """Id of a station: gate, desk, audit node, site, lane. `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`."""

    __slots__ = ()

    def __new__(cls, text: str) -> StationId:
        if not isinstance(text, str) or not _STATION.fullmatch(text):
            raise InvalidValue("id", f"{text!r} is not a valid id (letters, digits, '.', '_', '-'; at most 64)")
        return super().__new__(cls, text)


@dataclass(frozen=True, slots=True)
class CardGuid:
    """The card's CHUID GUID (16 bytes). Parsed from any common spelling; printed only where the card is shown."""

    value: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes) or len(self.value) != GUID_BYTES:
            raise InvalidValue("guid", f"must be exactly {GUID_BYTES} bytes")

    @classmethod
    def parse(cls, text: str) -> CardGuid:
        """32 hex digits, in any case, with or without dashes, braces, colons or spaces (RFC 4122 spelling too)."""
        t = _GUID_SEPARATORS.sub("", text).lower() if isinstance(text, str) else ""
        if len(t) != 2 * GUID_BYTES or not _HEX.fullmatch(t):
            raise InvalidValue("guid", "must be 32 hexadecimal digits (dashes, braces and spaces allowed)")
        return cls(bytes.fromhex(t))

    def hex(self) -> str:
        return self.value.hex()

    @property
    def card_id(self) -> CardId:
        return CardId.of(self)

    def __repr__(self) -> str:  # the raw GUID stays out of logs and tracebacks
        return f"CardGuid(card_id={self.card_id})"


class CardId(str):
    """Pseudonymous card id, what logs, decisions and the desk show: 16 lower-case hex digits."""

    __slots__ = ()

    def __new__(cls, text: str) -> CardId:
        t = text.strip().lower() if isinstance(text, str) else ""
        if len(t) != CARD_ID_HEX or not _HEX.fullmatch(t):
            raise InvalidValue("card_id", f"must be {CARD_ID_HEX} hexadecimal digits")
        return super().__new__(cls, t)

    @classmethod
    def of(cls, guid: CardGuid | bytes) -> CardId:
        raw = guid.value if isinstance(guid, CardGuid) else CardGuid(bytes(guid)).value
        return cls(hashlib.sha256(b"cardbound/card-id/v1\x00" + raw).hexdigest()[:CARD_ID_HEX])
