"""The port-ban list (art. 2.5.2.81 of the Navigation Code): who may not enter, by pseudonymous holder reference.

Pseudonymisation. The card carries `holder_ref = HMAC-SHA256(key, NRN)` — 32 bytes, where NRN is the holder's
Belgian national register number as its 11 ASCII digits and `key` the processor's holder-reference key. The
enrolment desk computes it with `pseudonymise(nrn, key)` from the identity document, writes it into the sealed
template's header and keeps neither the NRN nor the reference. The ban list is produced with the same key from the
NRNs on the ISPS platform, so a gate can match a card against the list without ever seeing a national number, and
the list reveals no number to someone without the key.

File format (UTF-8 text, one entry a line; `#` starts a comment; blank lines ignored):

    cardbound-banlist 2 key-id=<16 hex> issued=2026-12-01T06:00:00Z   first non-comment line: format, version,
                                                                      key fingerprint, issue time (UTC)
    <64 hex holder_ref> <YYYY-MM-DD>             banned up to and including that day

The key is a `card.holderref.HolderRefKey`: a 0600 file (software backend) or a non-extractable HMAC key in a
PKCS#11 token, used through the token (`pkcs11:` URI); raw bytes are accepted as a software key (tests, tools).
The key fingerprint (`key_id(key)`) lets a gate loaded with the wrong key fail loudly instead of matching nothing.
The issue time is when the list was exported from the ISPS platform: the gate policy's maximum age per security
level applies to it (`verify.freshness`). Version 1 (`cardbound-banlist 1 key-id=...`, no issue time) is still
read, as an *undated* list: a gate refuses every decision `LISTS_STALE` while it holds one.
Lookups compare against every entry with `hmac.compare_digest` and never stop early, so the time taken does not
depend on whether or where a holder is listed.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from card.holderref import HolderRefKey, HolderRefKeyError, as_holder_ref_key, open_holder_ref_key
from verify.freshness import IssueTimeError, ListStamp, format_issued, parse_issued

HOLDER_REF_BYTES = 32
HEADER = "cardbound-banlist"
VERSION = 2  # written; versions 1 (undated) and 2 are read
READ_VERSIONS = (1, 2)
MAX_FILE_BYTES = 16 * 1024 * 1024
_SEPARATORS = re.compile(r"[\s.\-/]")
_HEADER_RE = re.compile(rf"^{HEADER} (\d+) key-id=([0-9a-f]{{16}})(?: issued=(\S+))?$")
_ENTRY_RE = re.compile(r"^([0-9a-f]{64})\s+(\d{4}-\d{2}-\d{2})$")


class BanListError(ValueError):
    """The ban-list file (or its key) is unusable; the message names the file and the line."""


class InvalidNationalNumber(ValueError):  # noqa: N818 - reads as the condition at the desk
    """Not a well-formed Belgian national register number (11 digits, mod-97 check)."""


def normalise_nrn(nrn: str) -> str:
    """The 11 digits of a national register number written with or without separators ("85.07.30-033.28"),
    checked: mod-97 check digits for birth before 2000 (on the first 9 digits) or from 2000 on ("2" prefixed).
    BIS numbers (month + 20 or + 40) use the same rule and pass."""
    if not isinstance(nrn, str):
        raise InvalidNationalNumber("national register number must be text")
    digits = _SEPARATORS.sub("", nrn)
    if len(digits) != 11 or not digits.isascii() or not digits.isdigit():
        raise InvalidNationalNumber("national register number must have 11 digits")
    base, check = int(digits[:9]), int(digits[9:])
    if check not in (97 - base % 97, 97 - (2_000_000_000 + base) % 97):
        raise InvalidNationalNumber("national register number check digits do not match")
    return digits


def _key(key: HolderRefKey | bytes | bytearray) -> HolderRefKey:
    try:
        return as_holder_ref_key(key)
    except HolderRefKeyError as exc:
        raise BanListError(str(exc)) from None


def pseudonymise(nrn: str, key: HolderRefKey | bytes | bytearray) -> bytes:
    """holder_ref = HMAC-SHA256(key, 11 ASCII digits of the NRN): 32 bytes for the card header and the ban list.
    The MAC is computed by the key object (in the token with the pkcs11 backend); raw bytes are a software key."""
    return _key(key).mac(normalise_nrn(nrn).encode("ascii"))


def key_id(key: HolderRefKey | bytes | bytearray) -> str:
    """A public fingerprint of the key (16 hex), written in the ban-list header (`card.holderref.fingerprint`)."""
    return _key(key).key_id


def load_key(path: str | os.PathLike[str]) -> HolderRefKey:
    """The holder-reference key a path names: a key file (64 hex characters, 0600) or an RFC 7512 `pkcs11:` URI
    of the HMAC key in a token (`card.holderref.open_holder_ref_key`)."""
    try:
        return open_holder_ref_key(path)
    except HolderRefKeyError as exc:
        raise BanListError(str(exc)) from None


@dataclass(frozen=True)
class BanEntry:
    holder_ref: bytes  # 32 bytes
    until: date  # inclusive

    def __repr__(self) -> str:  # the reference is pseudonymous but still personal data: keep it out of logs
        return f"BanEntry(holder_ref=<redacted>, until={self.until.isoformat()})"


def _as_ref(holder_ref: bytes | bytearray | str) -> bytes:
    if isinstance(holder_ref, str):
        try:
            holder_ref = bytes.fromhex(holder_ref)
        except ValueError:
            raise ValueError("holder_ref must be hex") from None
    if not isinstance(holder_ref, bytes | bytearray) or len(holder_ref) != HOLDER_REF_BYTES:
        raise ValueError(f"holder_ref must be {HOLDER_REF_BYTES} bytes")
    return bytes(holder_ref)


class BanList:
    """A loaded ban list. `is_banned(holder_ref, today)` is the only question it answers."""

    def __init__(self, entries: Iterable[BanEntry], key_fingerprint: str, source: str = "<memory>", *,
                 issued_at: datetime | None = None) -> None:
        self._entries = tuple(entries)
        self.key_id = key_fingerprint
        self.source = source
        self.issued_at = issued_at  # None: an undated (version 1) list, stale wherever a maximum age applies

    @property
    def stamp(self) -> ListStamp:
        """Its age, for the gate's freshness check (`verify.freshness`)."""
        return ListStamp("ban list", self.source, self.issued_at)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"BanList({len(self._entries)} entries from {self.source})"

    @classmethod
    def load(cls, path: str | os.PathLike[str], key: HolderRefKey | bytes | bytearray) -> BanList:
        p = Path(path)
        try:
            if p.stat().st_size > MAX_FILE_BYTES:
                raise BanListError(f"{p}: larger than {MAX_FILE_BYTES} bytes")
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BanListError(f"{p}: cannot read the ban list: {exc}") from None
        return cls.parse(text, key, source=str(p))

    @classmethod
    def parse(cls, text: str, key: HolderRefKey | bytes | bytearray, *, source: str = "<memory>") -> BanList:
        expected_id = key_id(key)
        header_seen = False
        issued_at: datetime | None = None
        entries: list[BanEntry] = []
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            where = f"{source}, line {lineno}"
            if not header_seen:
                m = _HEADER_RE.match(line)
                if not m:
                    raise BanListError(f"{where}: expected the header '{HEADER} {VERSION} key-id=<16 hex> "
                                       "issued=<YYYY-MM-DDTHH:MM:SSZ>'")
                version = int(m.group(1))
                if version not in READ_VERSIONS:
                    raise BanListError(f"{where}: unsupported ban-list version {m.group(1)}")
                if (version >= 2) != (m.group(3) is not None):
                    raise BanListError(f"{where}: version {version} " + (
                        "must carry issued=<YYYY-MM-DDTHH:MM:SSZ>" if version >= 2 else "carries no issue time"))
                if m.group(3) is not None:
                    try:
                        issued_at = parse_issued(m.group(3))
                    except IssueTimeError as exc:
                        raise BanListError(f"{where}: {exc}") from None
                if not hmac.compare_digest(m.group(2), expected_id):
                    raise BanListError(f"{where}: made with another key (key-id {m.group(2)}, ours {expected_id})")
                header_seen = True
                continue
            m = _ENTRY_RE.match(line)
            if not m:
                raise BanListError(f"{where}: expected '<64 hex holder reference> <YYYY-MM-DD>'")
            try:
                until = date.fromisoformat(m.group(2))
            except ValueError:
                raise BanListError(f"{where}: {m.group(2)!r} is not a date") from None
            entries.append(BanEntry(bytes.fromhex(m.group(1)), until))
        if not header_seen:
            raise BanListError(f"{source}: empty file (no '{HEADER}' header)")
        return cls(entries, expected_id, source, issued_at=issued_at)

    def is_banned(self, holder_ref: bytes | bytearray | str, today: date) -> BanEntry | None:
        """The entry that bans `holder_ref` on `today` (the longest if listed twice), or None. Expired entries
        (until < today) no longer apply. Every entry is compared, in constant time each."""
        ref = _as_ref(holder_ref)
        found: BanEntry | None = None
        for entry in self._entries:
            same = hmac.compare_digest(entry.holder_ref, ref)
            if same and entry.until >= today and (found is None or entry.until > found.until):
                found = entry
        return found


def format_banlist(entries: Iterable[BanEntry], key: HolderRefKey | bytes | bytearray, *,
                   issued_at: datetime | None = None) -> str:
    """The file text for `entries` (for the tool that exports the list from the ISPS platform, and for tests),
    stamped with its issue time: `issued_at`, or now."""
    issued = format_issued(issued_at or datetime.now(UTC))
    lines = [f"{HEADER} {VERSION} key-id={key_id(key)} issued={issued}"]
    for e in entries:
        lines.append(f"{_as_ref(e.holder_ref).hex()} {e.until.isoformat()}")
    return "\n".join(lines) + "\n"


__all__ = [
    "HOLDER_REF_BYTES",
    "BanEntry",
    "BanList",
    "BanListError",
    "InvalidNationalNumber",
    "format_banlist",
    "key_id",
    "load_key",
    "normalise_nrn",
    "pseudonymise",
]
