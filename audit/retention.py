"""Retention (Navigation Code art. 2.5.2.90): entries older than the configured period are purged.

The period comes from the security plan and can never exceed 10 years. Purging removes a *prefix* of the log
(entries before the first entry that is still within the period: a newer entry is never removed because an
older one sits after it), signs a pruning checkpoint and keeps the prefix's frontier so the rest still
verifies, and records a `retention.purge` event in the same transaction (signed at once).

A purge is refused when the node's clock is behind its latest signed checkpoint (a clock set back — or a
checkpoint signed with the clock forward — would make the cut-off meaningless), or when the cut would remove
entries the central store has not received yet (`shipped_size`, recorded by `audit.ship`). `force=True`
overrides both; the purge event then says so (`forced`, `unshipped_entries`, `clock_behind_ms`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from audit.checkpoint import CheckpointError, parse_checkpoint
from audit.events import RetentionPurge
from audit.log import CLOCK_TOLERANCE_MS, AuditLog, iso_ms, read_meta

MAX_RETENTION_DAYS = 3652  # 10 years (art. 2.5.2.90): the ceiling, whatever the configuration says
DAY_MS = 86_400_000


class RetentionError(ValueError):
    """Invalid retention period (not a duration, zero, or above 10 years)."""


class PurgeRefused(Exception):
    """The purge would be unsafe now (clock behind the latest checkpoint, entries not yet shipped)."""


def shipped_size(log: AuditLog) -> int:
    """How many entries the central store has acknowledged (0 if the log was never shipped)."""
    return int(read_meta(log.connection, "shipped_size") or "0")


def _latest_signed_time(log: AuditLog) -> int | None:
    note = log.latest_checkpoint()
    if note is None:
        return None
    try:
        return parse_checkpoint(note, log.verifier_key).time_ms
    except CheckpointError:
        return None  # the verifier reports a bad checkpoint; the time rule cannot lean on it


def parse_retention(text: str | int) -> int:
    """'90', '90d', '18m', '5y' -> days; refuse anything above 10 years."""
    if isinstance(text, int):
        days = text
    else:
        m = re.fullmatch(r"\s*(\d{1,6})\s*([dmy]?)\s*", str(text).lower())
        if not m:
            raise RetentionError(f"retention {text!r}: expected a number of days, or Nd / Nm / Ny")
        n, unit = int(m.group(1)), m.group(2) or "d"
        # Months and years as averages over a decade (10 y = 120 m = 3652 d), rounded up: never shorter.
        days = {"d": n, "m": -(-n * MAX_RETENTION_DAYS // 120), "y": -(-n * MAX_RETENTION_DAYS // 10)}[unit]
    if days < 1:
        raise RetentionError("retention must be at least one day")
    if days > MAX_RETENTION_DAYS:
        raise RetentionError(f"retention of {days} days exceeds the 10-year maximum (art. 2.5.2.90)")
    return days


@dataclass(frozen=True)
class PurgeResult:
    removed: int
    first_kept: int
    cutoff_ms: int


def purge(
    log: AuditLog,
    retention_days: int | str,
    *,
    now: int | None = None,
    operator_id: str | None = None,
    force: bool = False,
) -> PurgeResult:
    """Purge entries older than `retention_days` from `log`; the purge is audited (even when nothing goes).

    Raises PurgeRefused (nothing written) when the clock is behind the latest signed checkpoint or the cut would
    remove unshipped entries, unless `force` (then recorded in the purge event)."""
    days = parse_retention(retention_days)
    now = log.now() if now is None else now
    cutoff = now - days * DAY_MS
    conn = log.connection
    # First entry still inside the period; everything before it goes. Without one, everything goes.
    row = conn.execute("SELECT MIN(idx) FROM entries WHERE ts_ms >= ?", (cutoff,)).fetchone()
    cut = log.size if row[0] is None else int(row[0])
    cut = max(cut, int(read_meta(conn, "pruned_size") or "0"))
    cutoff_iso = datetime.fromtimestamp(cutoff / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    latest = _latest_signed_time(log)
    behind = 0 if latest is None or latest - now <= CLOCK_TOLERANCE_MS else latest - now
    unshipped = max(0, cut - max(shipped_size(log), int(read_meta(conn, "pruned_size") or "0")))
    reasons = []
    if behind:
        reasons.append(f"the clock ({iso_ms(now)}) is behind the latest signed checkpoint ({iso_ms(latest or 0)})")
    if unshipped:
        reasons.append(f"{unshipped} of the entries to purge have not been shipped to the central store "
                       f"(shipped: {shipped_size(log)})")
    if reasons and not force:
        raise PurgeRefused("purge refused: " + "; ".join(reasons) + " (force only if this is intended)")

    def event(removed: int, first_kept: int) -> RetentionPurge:
        return RetentionPurge(
            node_id=log.node_id, retention_days=days, cutoff=cutoff_iso, purged_entries=removed,
            first_kept_index=first_kept, operator_id=operator_id, forced=bool(reasons),
            unshipped_entries=unshipped, clock_behind_ms=behind,
        )

    removed = log.prune(cut, event)
    return PurgeResult(removed, cut, cutoff)
