"""The gate policy: per ISPS security level and visitor category, is the holder admitted, is the face check
required, and at which distance threshold.

Security levels are those of art. 2.5.2.24 of the Navigation Code (1: permanent minimum measures; 2: heightened
risk; 3: incident probable or imminent). The categories are named by the port security plan; the royal decree of
4 June 2023 (annex, access control) requires at least: seafarers, officers of the authorities, persons working in or
visiting the port regularly, residents of the port, persons working in or visiting the port occasionally — hence
the names in `ANNEX_CATEGORIES`. A policy may add its own (e.g. `driver`).

A policy is validated when it is built (see `GatePolicy.from_mapping`, used by `verify.config`): every level
defines the same categories, thresholds lie in (0, 1.2), and a higher level is never weaker than a lower one (a
category refused at level n is refused above it; a face check required at n is required above it; the threshold
never grows with the level). A category the policy does not know is refused (fail closed).

The policy also says how old the gate's lists may be at each level (`ListAges`, the optional `[policy.lists]`
table): the CRL, the port-ban list and the revoked-card list. Past that age every decision is refused
`LISTS_STALE` (see `verify.freshness`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

LEVELS = (1, 2, 3)
THRESHOLD_RANGE = (0.0, 1.2)  # exclusive; distances of unit templates lie in [0, 2], 0.6 is dlib's loose default
CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
ANNEX_CATEGORIES = ("seafarer", "authority", "regular", "resident", "occasional")
#: Longest template validity the desk may write (optional `[policy] max_validity_days`): five years, the life of
#: the card's CHUID, unless the security plan says less.
DEFAULT_MAX_VALIDITY_DAYS = 5 * 365
MAX_VALIDITY_RANGE = (1, 10 * 366)
_ENTRY_KEYS = frozenset({"admitted", "biometric", "threshold", "several_faces"})
SEVERAL_FACES = ("refuse", "flag")  # what a second face in the live capture means for this category and level
#: Maximum list age per level, in hours. Anchor: TWIC, 33 CFR 101.525 (a)-(c): the card validity check uses a list
#: of cancelled cards no more than 7 days old at MARSEC level 1 and no more than 1 day old at levels 2 and 3.
DEFAULT_MAX_AGE_HOURS = {1: 7 * 24, 2: 24, 3: 24}
#: Warn this long before a list goes stale (start-up and `gate check`): two days of a week at level 1, half a day
#: of a day at levels 2-3 (time to fetch and load a fresh list before the lane closes).
DEFAULT_WARN_AHEAD_HOURS = {1: 48, 2: 12, 3: 12}
MAX_AGE_RANGE_HOURS = (1, 31 * 24)  # a list older than a month is never acceptable, whatever the plan says
_LIST_KEYS = frozenset({"max_age_hours", "warn_ahead_hours"})


def default_several_faces(level: int) -> str:
    """Refused from level 2 up (at a turnstile a second face is the tailgating signal); flagged at level 1."""
    return "flag" if level == 1 else "refuse"


class PolicyError(ValueError):
    """The policy is invalid. `key` is the dotted path of the offending entry (e.g. "policy.level2.crew")."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class Requirement:
    """What the gate must do for one holder. `threshold` only means something when `biometric` is true; it is 0.0
    otherwise, so that a caller that compares anyway rejects (fail closed)."""

    admitted: bool
    biometric: bool
    threshold: float
    level: int = 0
    category: str = ""
    several_faces: str = "refuse"  # "refuse" (SEVERAL_FACES) or "flag" (accept, say so in the decision)


@dataclass(frozen=True)
class Rule:
    admitted: bool
    biometric: bool
    threshold: float  # 0.0 when not biometric
    several_faces: str | None = None  # None: the level's default (`default_several_faces`)


@dataclass(frozen=True)
class ListAges:
    """How old the gate's lists (CRL, ban list, revoked-card list) may be at each ISPS level, and how long before
    that the self-check warns. Hours per level; validated by `from_mapping` (the `[policy.lists]` table)."""

    max_age_hours: Mapping[int, int] = field(default_factory=lambda: dict(DEFAULT_MAX_AGE_HOURS))
    warn_ahead_hours: Mapping[int, int] = field(default_factory=lambda: dict(DEFAULT_WARN_AHEAD_HOURS))

    def max_age(self, level: int) -> timedelta:
        return timedelta(hours=self.max_age_hours[level])

    def warn_ahead(self, level: int) -> timedelta:
        return timedelta(hours=self.warn_ahead_hours[level])

    @classmethod
    def from_mapping(cls, data: Any, *, prefix: str = "policy.lists") -> ListAges:
        """`{"level1": {"max_age_hours": 168, "warn_ahead_hours": 48}, ...}`; every key optional (defaults above).
        A higher level never allows older lists than a lower one."""
        if not isinstance(data, Mapping):
            raise PolicyError(prefix, "must be a table such as level2 = { max_age_hours = 24, warn_ahead_hours = 12 }")
        for key in data:
            if key not in {f"level{n}" for n in LEVELS}:
                raise PolicyError(f"{prefix}.{key}", "unknown key (expected level1, level2, level3)")
        max_age: dict[int, int] = {}
        warn: dict[int, int] = {}
        lo, hi = MAX_AGE_RANGE_HOURS
        for n in LEVELS:
            key = f"{prefix}.level{n}"
            entry = data.get(f"level{n}", {})
            if not isinstance(entry, Mapping):
                raise PolicyError(key, "must be a table such as { max_age_hours = 24, warn_ahead_hours = 12 }")
            for k in entry:
                if k not in _LIST_KEYS:
                    raise PolicyError(f"{key}.{k}", "unknown key (expected max_age_hours, warn_ahead_hours)")
            age = entry.get("max_age_hours", DEFAULT_MAX_AGE_HOURS[n])
            if isinstance(age, bool) or not isinstance(age, int) or not lo <= age <= hi:
                raise PolicyError(f"{key}.max_age_hours", f"must be a whole number of hours {lo}..{hi}, got {age!r}")
            ahead = entry.get("warn_ahead_hours", min(DEFAULT_WARN_AHEAD_HOURS[n], age - 1))
            if isinstance(ahead, bool) or not isinstance(ahead, int) or not 0 <= ahead < age:
                raise PolicyError(f"{key}.warn_ahead_hours",
                                  f"must be a whole number of hours from 0 to less than max_age_hours ({age}), "
                                  f"got {ahead!r}")
            if n > 1 and age > max_age[n - 1]:
                raise PolicyError(f"{key}.max_age_hours", f"{age} h is longer than level {n - 1}'s {max_age[n - 1]} h "
                                                          "(a higher level never accepts older lists)")
            max_age[n], warn[n] = age, ahead
        return cls(max_age, warn)


@dataclass(frozen=True)
class GatePolicy:
    """Rules per level (1, 2, 3) and category. Build with `from_mapping` (validates) or `verify.config`."""

    rules: Mapping[int, Mapping[str, Rule]]
    max_validity_days: int = DEFAULT_MAX_VALIDITY_DAYS
    list_ages: ListAges = field(default_factory=ListAges)

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted(self.rules[1]))

    @property
    def admitted_categories(self) -> tuple[str, ...]:
        """Categories admitted at level 1 (a category refused there is refused at every level): what a desk
        may write on a card."""
        return tuple(sorted(c for c, rule in self.rules[1].items() if rule.admitted))

    def decide_requirements(self, level: int, category: str) -> Requirement:
        """The requirement for `category` at ISPS `level`. Unknown category: not admitted. Bad level: ValueError."""
        if isinstance(level, bool) or level not in LEVELS:
            raise ValueError(f"security level must be 1, 2 or 3, got {level!r}")
        rule = self.rules[level].get(category)
        if rule is None:
            return Requirement(False, True, 0.0, level, category)
        return Requirement(rule.admitted, rule.biometric, rule.threshold, level, category,
                           rule.several_faces or default_several_faces(level))

    # the name the gate flow (verify.flow.Policy) calls
    requirement = decide_requirements

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, prefix: str = "policy") -> GatePolicy:
        """Validate the `[policy]` table of a gate configuration: {"level1": {category: {...}}, ...}."""
        if not isinstance(data, Mapping):
            raise PolicyError(prefix, "must be a table")
        expected = {f"level{n}" for n in LEVELS}
        for key in data:
            if key not in expected and key not in ("max_validity_days", "lists"):
                raise PolicyError(f"{prefix}.{key}", "unknown key (expected level1, level2, level3, "
                                                     "max_validity_days, lists)")
        list_ages = ListAges.from_mapping(data.get("lists", {}), prefix=f"{prefix}.lists")
        max_days = data.get("max_validity_days", DEFAULT_MAX_VALIDITY_DAYS)
        lo_days, hi_days = MAX_VALIDITY_RANGE
        if isinstance(max_days, bool) or not isinstance(max_days, int) or not lo_days <= max_days <= hi_days:
            raise PolicyError(f"{prefix}.max_validity_days", f"must be a whole number of days {lo_days}..{hi_days}")
        rules: dict[int, dict[str, Rule]] = {}
        for n in LEVELS:
            key = f"{prefix}.level{n}"
            table = data.get(f"level{n}")
            if table is None:
                raise PolicyError(key, "missing: every security level 1, 2 and 3 must be defined")
            if not isinstance(table, Mapping) or not table:
                raise PolicyError(key, "must be a non-empty table of categories")
            rules[n] = {cat: _rule(f"{key}.{cat}", cat, entry) for cat, entry in table.items()}
            for cat, rule in rules[n].items():
                if rule.several_faces is None:
                    rules[n][cat] = Rule(rule.admitted, rule.biometric, rule.threshold, default_several_faces(n))
        _check_same_categories(rules, prefix)
        _check_monotonic(rules, prefix)
        return cls(rules, max_days, list_ages)


def _rule(key: str, category: str, entry: Any) -> Rule:
    if not CATEGORY_RE.match(category):
        raise PolicyError(key, "category names are lower-case identifiers (a-z, 0-9, _; at most 32)")
    if not isinstance(entry, Mapping):
        raise PolicyError(key, "must be a table such as { biometric = true, threshold = 0.42 }")
    for k in entry:
        if k not in _ENTRY_KEYS:
            raise PolicyError(f"{key}.{k}", "unknown key (expected admitted, biometric, threshold, several_faces)")
    several = entry.get("several_faces")
    if several is not None and several not in SEVERAL_FACES:
        raise PolicyError(f"{key}.several_faces", f"must be \"refuse\" or \"flag\", got {several!r}")
    admitted = entry.get("admitted", True)
    if not isinstance(admitted, bool):
        raise PolicyError(f"{key}.admitted", f"must be true or false, got {type(admitted).__name__}")
    if not admitted:
        if "biometric" in entry or "threshold" in entry:
            raise PolicyError(key, "a category that is not admitted takes no biometric/threshold")
        return Rule(False, True, 0.0)
    if "biometric" not in entry:
        raise PolicyError(f"{key}.biometric", "missing (true or false)")
    biometric = entry["biometric"]
    if not isinstance(biometric, bool):
        raise PolicyError(f"{key}.biometric", f"must be true or false, got {type(biometric).__name__}")
    if not biometric:
        if "threshold" in entry:
            raise PolicyError(f"{key}.threshold", "given although biometric = false")
        return Rule(True, False, 0.0, several)
    if "threshold" not in entry:
        raise PolicyError(f"{key}.threshold", "missing (required when biometric = true)")
    threshold = entry["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise PolicyError(f"{key}.threshold", f"must be a number, got {type(threshold).__name__}")
    lo, hi = THRESHOLD_RANGE
    if not math.isfinite(threshold) or not lo < threshold < hi:
        raise PolicyError(f"{key}.threshold", f"{threshold} is outside ({lo}, {hi})")
    return Rule(True, True, float(threshold), several)


def _check_same_categories(rules: Mapping[int, Mapping[str, Rule]], prefix: str) -> None:
    first = set(rules[1])
    for n in LEVELS[1:]:
        missing, extra = first - set(rules[n]), set(rules[n]) - first
        if missing:
            raise PolicyError(f"{prefix}.level{n}", f"categories missing here but defined at level 1: "
                                                     f"{', '.join(sorted(missing))}")
        if extra:
            raise PolicyError(f"{prefix}.level{n}", f"categories not defined at level 1: {', '.join(sorted(extra))}")


def _check_monotonic(rules: Mapping[int, Mapping[str, Rule]], prefix: str) -> None:
    """A higher security level adds measures (art. 2.5.2.24): it may never be weaker than the level below."""
    for n in LEVELS[1:]:
        for cat, hi in rules[n].items():
            lo = rules[n - 1][cat]
            key = f"{prefix}.level{n}.{cat}"
            if hi.admitted and not lo.admitted:
                raise PolicyError(key, f"admitted although refused at level {n - 1}")
            if not hi.admitted:
                continue
            if lo.biometric and not hi.biometric:
                raise PolicyError(key, f"face check not required although required at level {n - 1}")
            if lo.several_faces == "refuse" and hi.several_faces == "flag":
                raise PolicyError(f"{key}.several_faces", f"flag although refused at level {n - 1}")
            if lo.biometric and hi.threshold > lo.threshold:
                raise PolicyError(f"{key}.threshold", f"{hi.threshold} is looser than level {n - 1}'s "
                                                       f"{lo.threshold} (must not grow with the level)")


__all__ = ["ANNEX_CATEGORIES", "DEFAULT_MAX_AGE_HOURS", "DEFAULT_WARN_AHEAD_HOURS", "LEVELS", "THRESHOLD_RANGE",
           "GatePolicy", "ListAges", "PolicyError", "Requirement", "Rule"]
