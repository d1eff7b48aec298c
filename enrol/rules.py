"""What the desk may write: the admissible categories, the longest validity, and which cards are revoked.

These are the gate's own rules, handed to the desk as plain values by the composition root (`cardbound`), which
loads the configured gate policy; `enrol` never reads the gate's configuration itself (nothing imports `verify`).
Every check here runs before the card is touched, so a refusal leaves the card exactly as it was.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from card.values import CardGuid, Category, InvalidValue

#: Used when no gate policy is configured: the categories the royal decree of 4 June 2023 requires (what the
#: gate's example policy names), and five years, the life of the card's CHUID.
DEFAULT_CATEGORIES = ("authority", "occasional", "regular", "resident", "seafarer")
DEFAULT_MAX_VALIDITY = timedelta(days=5 * 365)


class RuleViolation(ValueError):
    """The request breaks a gate rule. `code` is the refusal's reason (audited); `suggestion` a near miss."""

    def __init__(self, code: str, message: str, *, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.suggestion = suggestion


RevokedCheck = Callable[[CardGuid, int | None], str | None]  # (GUID, 9E cert serial) -> why revoked, or None


def _never_revoked(guid: CardGuid, serial: int | None) -> str | None:
    return None


@dataclass(frozen=True)
class EnrolmentRules:
    categories: frozenset[Category]
    max_validity: timedelta
    revoked: RevokedCheck = field(default=_never_revoked)
    source: str = "built-in rules"  # where they came from (the gate configuration file), for messages

    @classmethod
    def default(cls, revoked: RevokedCheck = _never_revoked) -> EnrolmentRules:
        return cls(frozenset(Category(c) for c in DEFAULT_CATEGORIES), DEFAULT_MAX_VALIDITY, revoked)

    @classmethod
    def of(cls, categories: Iterable[str], max_validity: timedelta, revoked: RevokedCheck = _never_revoked,
           source: str = "gate policy") -> EnrolmentRules:
        return cls(frozenset(Category(c) for c in categories), max_validity, revoked, source)

    def category(self, text: str) -> Category:
        """The category exactly as the policy spells it (case-exact); near misses get a "did you mean"."""
        try:
            cat = Category(text)
        except InvalidValue:
            cat = None
        if cat is not None and cat in self.categories:
            return cat
        known = sorted(self.categories)
        near = difflib.get_close_matches(str(text).lower(), known, n=1, cutoff=0.6)
        suggestion = near[0] if near else None
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        raise RuleViolation(
            "category_unknown",
            f"category {text!r} is not in the {self.source} ({', '.join(known)}){hint}",
            suggestion=suggestion,
        )

    def validity(self, valid_until: datetime, now: datetime) -> datetime:
        if valid_until <= now:
            raise RuleViolation("validity_past", f"valid-until {valid_until:%Y-%m-%d} is not in the future")
        if valid_until - now > self.max_validity:
            latest = now + self.max_validity
            raise RuleViolation(
                "validity_too_long",
                f"valid-until {valid_until:%Y-%m-%d} is beyond the {self.source}'s maximum of "
                f"{self.max_validity.days} days (latest {latest:%Y-%m-%d})",
            )
        return valid_until

    def check_card(self, guid: CardGuid, certificate_serial: int | None) -> None:
        why = self.revoked(guid, certificate_serial)
        if why:
            raise RuleViolation("card_revoked", f"card {guid.card_id} is revoked ({why}); issue a new card")


__all__ = ["DEFAULT_CATEGORIES", "DEFAULT_MAX_VALIDITY", "EnrolmentRules", "RevokedCheck", "RuleViolation"]
