"""The revoked-card list: cards reported lost or withdrawn, by card GUID (the 16-byte GUID of the PIV CHUID).

File format (ASCII text, one GUID a line; `#` starts a comment; blank lines ignored):

    cardbound-revoked 2 issued=2026-12-01T06:00:00Z      format, version, issue time (UTC)
    0123456789abcdef0123456789abcdef    # lost 2026-11-02

The issue time is when the list was produced: the gate policy's maximum age per security level applies to it
(`verify.freshness`). Version 1 (`cardbound-revoked 1`, no issue time) is still read, as an *undated* list: a gate
refuses every decision `LISTS_STALE` while it holds one.

Membership is checked against every entry with `hmac.compare_digest`, without stopping early.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from card.values import CardGuid, InvalidValue
from verify.freshness import IssueTimeError, ListStamp, format_issued, parse_issued

GUID_BYTES = 16
HEADER = "cardbound-revoked"
VERSION = 2  # written; versions 1 (undated) and 2 are read
_HEADER_RE = re.compile(rf"^{HEADER} (\d+)(?: issued=(\S+))?$")
MAX_FILE_BYTES = 16 * 1024 * 1024


class RevocationListError(ValueError):
    """The revoked-card file is unusable; the message names the file and the line."""


class RevocationList:
    def __init__(self, guids: Iterable[bytes], source: str = "<memory>", *,
                 issued_at: datetime | None = None) -> None:
        items = tuple(bytes(g) for g in guids)
        for g in items:
            if len(g) != GUID_BYTES:
                raise RevocationListError(f"{source}: a card GUID is {GUID_BYTES} bytes")
        self._guids = items
        self.source = source
        self.issued_at = issued_at  # None: an undated (version 1) list, stale wherever a maximum age applies

    @property
    def stamp(self) -> ListStamp:
        """Its age, for the gate's freshness check (`verify.freshness`)."""
        return ListStamp("revoked list", self.source, self.issued_at)

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
        issued_at: datetime | None = None
        guids: list[bytes] = []
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if not header_seen:
                where = f"{source}, line {lineno}"
                m = _HEADER_RE.match(line)
                if not m or m.group(1) not in ("1", "2"):
                    raise RevocationListError(f"{where}: expected the header '{HEADER} {VERSION} "
                                              "issued=<YYYY-MM-DDTHH:MM:SSZ>'")
                if (m.group(1) == "2") != (m.group(2) is not None):
                    raise RevocationListError(f"{where}: version {m.group(1)} " + (
                        "must carry issued=<YYYY-MM-DDTHH:MM:SSZ>" if m.group(1) == "2" else "carries no issue time"))
                if m.group(2) is not None:
                    try:
                        issued_at = parse_issued(m.group(2))
                    except IssueTimeError as exc:
                        raise RevocationListError(f"{where}: {exc}") from None
                header_seen = True
                continue
            try:  # the spellings `keys revoke-card` accepts: dashes, braces, any case
                guids.append(CardGuid.parse(line).value)
            except InvalidValue:
                raise RevocationListError(f"{source}, line {lineno}: expected a card GUID (32 hex digits, "
                                          "dashes allowed)") from None
        if not header_seen:
            raise RevocationListError(f"{source}: empty file (no '{HEADER} {VERSION}' header)")
        return cls(guids, source, issued_at=issued_at)

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


def format_revocation_list(guids: Iterable[bytes], *, issued_at: datetime | None = None) -> str:
    """The file text for `guids`, stamped with its issue time: `issued_at`, or now."""
    lines = [f"{HEADER} {VERSION} issued={format_issued(issued_at or datetime.now(UTC))}"]
    for g in guids:
        if len(g) != GUID_BYTES:
            raise RevocationListError(f"a card GUID is {GUID_BYTES} bytes")
        lines.append(bytes(g).hex())
    return "\n".join(lines) + "\n"


__all__ = ["GUID_BYTES", "RevocationList", "RevocationListError", "format_revocation_list"]
