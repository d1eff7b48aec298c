"""The revoked-card list: cards reported lost or withdrawn, by card GUID (the 16-byte GUID of the PIV CHUID).

File format (ASCII text, one GUID a line; `#` starts a comment; blank lines ignored):

    cardbound-revoked 1
    0123456789abcdef0123456789abcdef    # lost 2026-11-02

Membership is checked against every entry with `hmac.compare_digest`, without stopping early.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from pathlib import Path

from card.values import CardGuid, InvalidValue

GUID_BYTES = 16
HEADER = "cardbound-revoked 1"
MAX_FILE_BYTES = 16 * 1024 * 1024


class RevocationListError(ValueError):
    """The revoked-card file is unusable; the message names the file and the line."""


class RevocationList:
    def __init__(self, guids: Iterable[bytes], source: str = "<memory>") -> None:
        items = tuple(bytes(g) for g in guids)
        for g in items:
            if len(g) != GUID_BYTES:
                raise RevocationListError(f"{source}: a card GUID is {GUID_BYTES} bytes")
        self._guids = items
        self.source = source

    def __len__(self) -> int:
        return len(self._guids)

    def __repr__(self) -> str:
        return f"RevocationList({len(self._guids)} cards from {self.source})"

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RevocationList:
        p = Path(path)
        try:
            if p.stat().st_size > MAX_FILE_BYTES:
                raise RevocationListError(f"{p}: larger than {MAX_FILE_BYTES} bytes")
            text = p.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise RevocationListError(f"{p}: cannot read the revoked-card list: {exc}") from None
        return cls.parse(text, source=str(p))

    @classmethod
    def parse(cls, text: str, *, source: str = "<memory>") -> RevocationList:
        header_seen = False
        guids: list[bytes] = []
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if not header_seen:
                if line != HEADER:
                    raise RevocationListError(f"{source}, line {lineno}: expected the header '{HEADER}'")
                header_seen = True
                continue
            try:  # the spellings `keys revoke-card` accepts: dashes, braces, any case
                guids.append(CardGuid.parse(line).value)
            except InvalidValue:
                raise RevocationListError(f"{source}, line {lineno}: expected a card GUID (32 hex digits, "
                                          "dashes allowed)") from None
        if not header_seen:
            raise RevocationListError(f"{source}: empty file (no '{HEADER}' header)")
        return cls(guids, source)

    def is_revoked(self, guid: bytes | bytearray) -> bool:
        """True when `guid` is listed. A GUID of the wrong length is treated as revoked (fail closed)."""
        if not isinstance(guid, bytes | bytearray) or len(guid) != GUID_BYTES:
            return True
        probe = bytes(guid)
        found = False
        for g in self._guids:
            found |= hmac.compare_digest(g, probe)
        return found

    def __contains__(self, guid: object) -> bool:
        return isinstance(guid, bytes | bytearray) and self.is_revoked(guid)


def format_revocation_list(guids: Iterable[bytes]) -> str:
    lines = [HEADER]
    for g in guids:
        if len(g) != GUID_BYTES:
            raise RevocationListError(f"a card GUID is {GUID_BYTES} bytes")
        lines.append(bytes(g).hex())
    return "\n".join(lines) + "\n"


__all__ = ["GUID_BYTES", "RevocationList", "RevocationListError", "format_revocation_list"]
