"""List ages (`verify.freshness`): one rule for the CRL, the ban list and the revoked-card list — OK, warned ahead,
stale past the level's maximum age or the CRL's nextUpdate, undated or future-dated lists refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from verify.freshness import Freshness, IssueTimeError, ListStamp, assess, format_issued, parse_issued
from verify.policy import ListAges

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
AGES = ListAges()


def _at(stamp: ListStamp, level: int) -> tuple[Freshness, str]:
    a = assess(stamp, now=NOW, level=level, max_age=AGES.max_age(level), warn_ahead=AGES.warn_ahead(level))
    return a.status, a.message


def test_a_list_three_days_old_is_fine_at_level_1_and_stale_at_levels_2_and_3() -> None:
    stamp = ListStamp("ban list", "/etc/cardbound/bans.txt", NOW - timedelta(days=3))
    assert _at(stamp, 1)[0] is Freshness.OK
    for level in (2, 3):
        status, message = _at(stamp, level)
        assert status is Freshness.STALE
        assert message.startswith("ban list /etc/cardbound/bans.txt: stale at level") and "24 h" in message


def test_warned_ahead_then_stale() -> None:
    # level 1: 7 days, warned 48 h ahead
    assert _at(ListStamp("revoked list", "r", NOW - timedelta(days=4)), 1)[0] is Freshness.OK
    status, message = _at(ListStamp("revoked list", "r", NOW - timedelta(days=6)), 1)
    assert status is Freshness.WARN and "in 24 h" in message and "refresh it now" in message
    assert _at(ListStamp("revoked list", "r", NOW - timedelta(days=7, minutes=1)), 1)[0] is Freshness.STALE
    # level 2: 24 h, warned 12 h ahead
    assert _at(ListStamp("revoked list", "r", NOW - timedelta(hours=11)), 2)[0] is Freshness.OK
    assert _at(ListStamp("revoked list", "r", NOW - timedelta(hours=13)), 2)[0] is Freshness.WARN


def test_the_crl_goes_stale_at_the_earlier_of_next_update_and_its_maximum_age() -> None:
    fresh = ListStamp("crl", "of the gate bundle", NOW - timedelta(hours=1), NOW + timedelta(days=29))
    assert _at(fresh, 1)[0] is Freshness.OK
    day_before = ListStamp("crl", "of the gate bundle", NOW - timedelta(hours=1), NOW + timedelta(hours=20))
    status, message = _at(day_before, 1)
    assert status is Freshness.WARN and "nextUpdate" in message and "in 20 h" in message
    expired = ListStamp("crl", "of the gate bundle", NOW - timedelta(hours=2), NOW - timedelta(hours=1))
    status, message = _at(expired, 1)
    assert status is Freshness.STALE and "nextUpdate 2026-12-01 11:00 UTC" in message
    old = ListStamp("crl", "of the gate bundle", NOW - timedelta(days=8), NOW + timedelta(days=22))
    status, message = _at(old, 1)  # within nextUpdate, but older than the level's maximum age
    assert status is Freshness.STALE and "maximum age 7 d" in message


def test_undated_and_future_dated_lists_are_stale_at_every_level() -> None:
    for level in (1, 2, 3):
        status, message = _at(ListStamp("ban list", "b", None), level)
        assert status is Freshness.STALE and "no issue time (format version 1)" in message
    assert _at(ListStamp("ban list", "b", NOW + timedelta(minutes=4)), 3)[0] is Freshness.OK  # clock skew
    status, message = _at(ListStamp("ban list", "b", NOW + timedelta(minutes=6)), 1)
    assert status is Freshness.STALE and "issued in the future" in message


def test_issue_time_spelling() -> None:
    when = datetime(2026, 12, 1, 6, 0, 59, 999, tzinfo=UTC)
    assert format_issued(when) == "2026-12-01T06:00:59Z"
    assert parse_issued("2026-12-01T06:00:59Z") == when.replace(microsecond=0)
    for bad in ("2026-12-01T06:00:59", "2026-12-01T06:00:59+01:00", "2026-12-01 06:00:59Z", "2026-12-32T00:00:00Z"):
        with pytest.raises(IssueTimeError):
            parse_issued(bad)
    with pytest.raises(IssueTimeError):
        format_issued(datetime(2026, 12, 1))  # a naive time says nothing about when
