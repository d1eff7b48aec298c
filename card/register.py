"""The issued-card register: which cards the processor issued, so a lost card can be revoked by what people have.

One record per card, kept by the issuing side next to its keystore (`KEYSTORE/register.jsonl`), append-only JSON
lines (one line per event, fsynced; the current state of a card is the fold of its lines):

    {"v": 1, "event": "issued",   "at": ..., "card_id": ..., "guid": ..., "serial": ..., "not_after": ...}
    {"v": 1, "event": "enrolled", "at": ..., "card_id": ..., "holder_ref": ..., "valid_until": ..., "station": ...}
    {"v": 1, "event": "revoked",  "at": ..., "card_id": ...}

It holds card id, GUID, card-auth certificate serial, the pseudonymous holder reference and dates — never a
template, a photo, a descriptor or anything derived from them: it is administrative data about a card, not
biometric data, and the template itself stays only on the card (art. 2.5.2.85 §3, 3°; see docs/card.md for why
keeping it is allowed under art. 2.5.2.88).

`find(text)` takes what people have: the card id the desk printed (16 hex digits), the GUID in any common
spelling (32 hex digits, dashes, braces) or the certificate serial (hex, colons allowed).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from card.values import CardGuid, CardId, HolderRef, InvalidValue

FILE_NAME = "register.jsonl"
VERSION = 1
_HEX = re.compile(r"[0-9a-f]+")


class RegisterError(Exception):
    """The register is unreadable or a lookup cannot be answered (one line for the operator)."""


@dataclass(frozen=True)
class RegisteredCard:
    card_id: CardId
    guid: CardGuid
    serials: tuple[int, ...]  # card-auth certificate serials issued for this GUID (re-personalisation adds one)
    issued: datetime
    not_after: datetime | None = None
    holder_ref: HolderRef | None = None
    enrolled: datetime | None = None
    valid_until: datetime | None = None
    station: str | None = None
    revoked: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        def t(d: datetime | None) -> str | None:
            return None if d is None else d.isoformat()

        return {
            "card_id": str(self.card_id),
            "guid": self.guid.hex(),
            "certificate_serials": [f"{s:x}" for s in self.serials],
            "issued": t(self.issued),
            "certificate_not_after": t(self.not_after),
            "holder_ref": None if self.holder_ref is None else self.holder_ref.hex(),
            "enrolled": t(self.enrolled),
            "valid_until": t(self.valid_until),
            "station": self.station,
            "revoked": t(self.revoked),
        }


def _now(now: datetime | None) -> datetime:
    return (datetime.now(UTC) if now is None else now).replace(microsecond=0)


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


class CardRegister:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def beside(cls, keystore_path: Path) -> CardRegister:
        return cls(Path(keystore_path) / FILE_NAME)

    # ---- writing

    def _append(self, record: dict[str, Any]) -> None:
        line = (json.dumps({"v": VERSION, **record}, sort_keys=True, separators=(",", ":")) + "\n").encode()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)  # one write() of one line with O_APPEND: lines never interleave
            os.fsync(fd)
        finally:
            os.close(fd)

    def record_issued(self, guid: CardGuid, serial: int, not_after: datetime, *, now: datetime | None = None) -> None:
        self._append({"event": "issued", "at": _now(now).isoformat(), "card_id": str(guid.card_id),
                      "guid": guid.hex(), "serial": f"{serial:x}", "not_after": not_after.isoformat()})

    def record_enrolled(self, guid: CardGuid, holder_ref: HolderRef, valid_until: datetime, station: str, *,
                        now: datetime | None = None) -> None:
        self._append({"event": "enrolled", "at": _now(now).isoformat(), "card_id": str(guid.card_id),
                      "holder_ref": holder_ref.hex(), "valid_until": valid_until.isoformat(), "station": station})

    def record_revoked(self, guid: CardGuid, *, now: datetime | None = None) -> None:
        self._append({"event": "revoked", "at": _now(now).isoformat(), "card_id": str(guid.card_id)})

    # ---- reading

    def cards(self) -> list[RegisteredCard]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise RegisterError(f"cannot read the card register {self.path}: {exc}") from None
        by_id: dict[str, RegisteredCard] = {}
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                event, card_id = rec["event"], CardId(rec["card_id"])
                at = datetime.fromisoformat(rec["at"])
                if event == "issued":
                    guid = CardGuid.parse(rec["guid"])
                    if guid.card_id != card_id:
                        raise ValueError("card id does not belong to the GUID")
                    old = by_id.get(card_id)
                    serials = (old.serials if old else ()) + (int(rec["serial"], 16),)
                    by_id[card_id] = replace(old, serials=serials, not_after=_time(rec["not_after"])) if old else \
                        RegisteredCard(card_id, guid, serials, at, _time(rec["not_after"]))
                elif event in ("enrolled", "revoked") and card_id in by_id:
                    card = by_id[card_id]
                    if event == "enrolled":
                        by_id[card_id] = replace(card, holder_ref=HolderRef.from_hex(rec["holder_ref"]),
                                                 enrolled=at, valid_until=_time(rec["valid_until"]),
                                                 station=str(rec["station"]))
                    else:
                        by_id[card_id] = replace(card, revoked=at)
                else:
                    raise ValueError(f"unexpected event {event!r}")
            except (KeyError, TypeError, ValueError) as exc:  # InvalidValue is a ValueError
                raise RegisterError(f"{self.path}, line {lineno}: not a register record ({exc})") from None
        return list(by_id.values())

    def find(self, text: str) -> RegisteredCard:
        """The one card that `text` names (card id, GUID or certificate serial). RegisterError otherwise."""
        t = re.sub(r"[\s{}:-]", "", str(text)).lower()
        if not t or not _HEX.fullmatch(t):
            raise RegisterError(f"{text!r} is not a card id, a card GUID or a certificate serial (hexadecimal)")
        matches = []
        for card in self.cards():
            if (len(t) == 16 and card.card_id == t) or (len(t) == 32 and card.guid.hex() == t) or \
                    int(t, 16) in card.serials:
                matches.append(card)
        if not matches:
            raise RegisterError(f"no issued card has the id, GUID or certificate serial {text!r}")
        if len(matches) > 1:
            raise RegisterError(f"{text!r} matches {len(matches)} cards; give the GUID instead")
        return matches[0]


def parse_guid(text: str) -> CardGuid | None:
    """A GUID in any common spelling, or None (for callers that fall back to the GUID when no register exists)."""
    try:
        return CardGuid.parse(text)
    except InvalidValue:
        return None


__all__ = ["FILE_NAME", "CardRegister", "RegisterError", "RegisteredCard", "parse_guid"]
