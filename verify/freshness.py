"""How old may the gate's lists be? One rule for the CRL, the port-ban list and the revoked-card list.

Each list carries its issue time (the CRL its `thisUpdate`, and its own `nextUpdate`; the two text lists an
`issued=` field in their header, format version 2). The gate policy sets a maximum age per ISPS level
(`verify.policy.ListAges`; defaults anchored on TWIC: the cancelled-card list refreshed at least every 7 days at
MARSEC 1 and daily at MARSEC 2-3). A list's *deadline* at a level is the earlier of `issued + max_age(level)` and,
for the CRL, its `nextUpdate`. Past it the list is stale and every decision is refused `LISTS_STALE` (fail closed:
a list that is too old may miss a ban or a revocation); within `warn_ahead(level)` of it, the start-up self-check
warns. A list without an issue time (format version 1) is stale at every level, and so is one issued in the
future beyond `CLOCK_SKEW` (a wrong clock or a forged stamp: neither can be trusted to say how old the list is).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

CLOCK_SKEW = timedelta(minutes=5)  # the same allowance as the CRL's thisUpdate check in card.pki
_ISSUED_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})Z$")


class IssueTimeError(ValueError):
    """An `issued=` value that is not an RFC 3339 UTC time of the form 2026-12-01T10:00:00Z."""


def format_issued(when: datetime) -> str:
    """The header spelling of an issue time: RFC 3339, UTC, whole seconds (2026-12-01T10:00:00Z)."""
    if when.tzinfo is None:
        raise IssueTimeError("an issue time must be timezone-aware")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_issued(text: str) -> datetime:
    m = _ISSUED_RE.match(text)
    if not m:
        raise IssueTimeError(f"issued={text!r} is not a UTC time like 2026-12-01T10:00:00Z")
    try:
        return datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}+00:00")
    except ValueError:
        raise IssueTimeError(f"issued={text!r} is not a valid date and time") from None


@dataclass(frozen=True)
class ListStamp:
    """What the gate knows about one list's age. `issued` None: the list carries no issue time (version 1)."""

    name: str  # "crl", "ban list", "revoked list": the name decisions, checks and docs use
    source: str  # the file (or bundle) it came from, for the operator
    issued: datetime | None
    next_update: datetime | None = None  # the CRL's own deadline; None for the text lists

    def deadline(self, max_age: timedelta) -> tuple[datetime, str] | None:
        """The moment this list goes stale at a level allowing `max_age`, and why; None when undated."""
        if self.issued is None:
            return None
        by_age = self.issued + max_age
        if self.next_update is not None and self.next_update < by_age:
            return self.next_update, f"its nextUpdate {_at(self.next_update)}"
        return by_age, f"issued {_at(self.issued)}, maximum age {_hours(max_age)}"


class Freshness(Enum):
    OK = "ok"
    WARN = "warn"  # still usable, but goes stale within the warning period
    STALE = "stale"  # every decision is refused LISTS_STALE


@dataclass(frozen=True)
class Assessment:
    stamp: ListStamp
    status: Freshness
    problem: str  # what is wrong or when it goes stale, without the list's name

    @property
    def stale(self) -> bool:
        return self.status is Freshness.STALE

    @property
    def short(self) -> str:
        """For a decision's detail: the list's name and the problem (no file path)."""
        return f"{self.stamp.name}: {self.problem}"

    @property
    def message(self) -> str:
        """One line for the operator: the list, where it comes from, the problem and what to do."""
        todo = {Freshness.STALE: "; load a fresh one", Freshness.WARN: ": refresh it now", Freshness.OK: ""}
        return f"{self.stamp.name} {self.stamp.source}: {self.problem}{todo[self.status]}"


def assess(stamp: ListStamp, *, now: datetime, level: int, max_age: timedelta, warn_ahead: timedelta) -> Assessment:
    """Is `stamp` fresh enough at ISPS `level` (whose policy allows `max_age`, warned `warn_ahead` before)?"""
    if stamp.issued is None:
        return Assessment(stamp, Freshness.STALE, "no issue time (format version 1): undated lists are refused")
    if stamp.issued > now + CLOCK_SKEW:
        return Assessment(stamp, Freshness.STALE, f"issued in the future ({_at(stamp.issued)}, now {_at(now)}): "
                                                  "check the clock or the list")
    deadline = stamp.deadline(max_age)
    assert deadline is not None
    when, why = deadline
    if now > when:
        return Assessment(stamp, Freshness.STALE, f"stale at level {level} since {_at(when)} ({why})")
    if when - now <= warn_ahead:
        return Assessment(stamp, Freshness.WARN, f"goes stale at level {level} at {_at(when)}, in "
                                                 f"{_hours(when - now)} ({why})")
    return Assessment(stamp, Freshness.OK, f"valid at level {level} until {_at(when)} ({why})")


def _at(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    if hours >= 48 and hours % 24 == 0:
        return f"{hours / 24:.0f} d"
    return f"{hours:.0f} h" if hours >= 1 else f"{delta.total_seconds() / 60:.0f} min"


__all__ = ["CLOCK_SKEW", "Assessment", "Freshness", "IssueTimeError", "ListStamp", "assess", "format_issued",
           "parse_issued"]
