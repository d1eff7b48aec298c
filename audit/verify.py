"""Offline verification of a node's audit database: names what is wrong, one finding per problem.

Checks, in order: entry indices contiguous (deleted entries), the tree size recorded by the writer (tail
truncation), each entry's content against its recorded leaf hash (modified entries), each entry's own index
against its place (reordered entries), every stored checkpoint's signature and root against the tree rebuilt
from the content, and any checkpoints kept elsewhere (truncation, roll-back to an older copy, rewritten
history). Hashing is batched level by level (no per-entry Python objects besides the digests).
"""

from __future__ import annotations

import base64
import functools
import hmac
import itertools
import operator
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audit import merkle
from audit.checkpoint import Checkpoint, CheckpointError, VerifierKey, key_name, origin, parse_checkpoint
from audit.log import CLOCK_TOLERANCE_MS, AuditLogError, decode_entry, read_meta, read_pruned

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    code: str  # deleted, truncated, modified, reordered, bad-signature, root-mismatch, rolled-back, ...
    message: str
    severity: str = ERROR

    def line(self) -> str:
        return f"{self.code.upper()}: {self.message}"


@dataclass
class Report:
    node_id: str
    entries: int = 0
    pruned: int = 0
    checkpoints_checked: int = 0
    latest: Checkpoint | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity == ERROR for f in self.findings)

    def add(self, code: str, message: str, severity: str = ERROR) -> None:
        self.findings.append(Finding(code, message, severity))

    def summary(self) -> str:
        cp = "no checkpoint"
        if self.latest is not None:
            when = datetime.fromtimestamp(self.latest.time_ms / 1000, UTC).isoformat(timespec="seconds")
            root = base64.b64encode(self.latest.root).decode()
            cp = f"latest checkpoint size {self.latest.size} at {when}, root {root}"
        return (
            f"audit log of node {self.node_id}: {self.entries} entries ({self.pruned} pruned), "
            f"{self.checkpoints_checked} signed checkpoints verified; {cp}"
        )


def _ranges(indices: Sequence[int]) -> str:
    """[3,4,5,9] -> '3-5, 9' (short)."""
    out: list[str] = []
    start = prev = None
    for i in indices:
        if start is None:
            start = prev = i
        elif prev is not None and i == prev + 1:
            prev = i
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = i
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    if len(out) > 8:
        out = out[:8] + [f"... ({len(indices)} in all)"]
    return ", ".join(out)


def _fmt_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


class _Tree:
    """Perfect nodes rebuilt from content; positions before the pruned prefix come from its signed frontier."""

    def __init__(self, leaves: list[bytes], pruned: int, frontier: dict[tuple[int, int], bytes]) -> None:
        self.size = pruned + len(leaves)
        if pruned == 0:
            self.levels = merkle.build_levels(leaves) if leaves else [[]]
            return
        level: list[bytes | None] = [None] * pruned + list(leaves)
        for (lv, ix), h in frontier.items():
            if lv == 0:
                level[ix] = h
        levels: list[list[bytes | None]] = [level]
        n = 1
        while len(levels[-1]) > 1:
            prev = levels[-1]
            nxt: list[bytes | None] = [
                merkle.node_hash(a, b) if a is not None and b is not None else None
                for a, b in zip(prev[0::2], prev[1::2], strict=False)
            ]
            for (lv, ix), h in frontier.items():
                if lv == n:
                    nxt[ix] = h
            levels.append(nxt)
            n += 1
        self.levels = levels  # type: ignore[assignment]

    def root(self, size: int) -> bytes | None:
        nodes = []
        for lv, ix in merkle.decompose(size):
            h = self.levels[lv][ix]
            if h is None:
                return None
            nodes.append(h)
        return merkle.fold(nodes)


def verify_database(
    path: Path, key: VerifierKey | None = None, external: Sequence[tuple[str, str]] = ()
) -> Report:
    """Verify the log at `path`. `key` is the node's verifier key kept apart from the log (without it the key
    recorded in the database is used, and a warning says so). `external` are (label, signed note) pairs of
    checkpoints kept elsewhere (a gate's last receipt, the central store, an auditor's copy)."""
    if not Path(path).is_file():
        raise AuditLogError(f"{path}: no audit database")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=60.0)
    try:
        # One read transaction: a consistent snapshot even while a writer keeps appending (WAL).
        conn.execute("BEGIN")
        return _verify(conn, key, external)
    except sqlite3.DatabaseError as exc:
        raise AuditLogError(f"{path}: not a readable audit database ({exc})") from None
    finally:
        conn.close()


@dataclass
class LogData:
    """What the verifier needs from a store (SQLite node log or the central PostgreSQL copy)."""

    node_id: str
    vkey: str | None
    pruned: int
    frontier: dict[tuple[int, int], bytes]
    recorded_size: int
    rows: list[tuple[int, bytes, bytes]]  # (idx, body, leaf) ordered by idx
    checkpoints: list[tuple[int, bytes | None, str]]  # (size, stored root or None, signed note)
    columns: list[tuple[int, str]] | None = None  # (ts_ms, type) query columns, parallel to rows
    # Precomputed by a store that can check in bulk (indices whose body does not start with its own index /
    # whose columns disagree with the body); None: computed here from rows / columns.
    misplaced: list[int] | None = None
    column_mismatch: list[int] | None = None
    # Entries dated more than the tolerance before some earlier entry: (idx, ts_ms, latest earlier ts_ms);
    # None: computed here from `columns`.
    backsteps: list[tuple[int, int, int]] | None = None
    # ts_ms of each row, parallel to rows (a store that has them apart from `columns`).
    times: list[int] | None = None
    # Entries of the types the verifier reads (retention.purge, clock.stepped): (idx, type, body); None: from
    # `columns`.
    special: list[tuple[int, str, bytes]] | None = None
    # ts_ms of entry idx (None if absent); None: from `columns`.
    ts_at: Callable[[int], int | None] | None = None


SPECIAL_TYPES = ("retention.purge", "clock.stepped")


# Checks done inside SQLite (C speed) on the whole table; Python only looks at the rows they return.
_SQL_MISPLACED = """SELECT idx FROM entries
    WHERE substr(CAST(body AS BLOB), 1, 8 + length(idx)) != CAST('{"idx":' || idx || ',' AS BLOB) ORDER BY idx"""
# One scan for two things: rows whose columns disagree with the content (bad = 1), and the rows of the types the
# verifier reads (retention.purge, clock.stepped), with their content.
_SQL_COLUMNS = """SELECT idx, type, body, bad FROM (SELECT idx, type, body, (typeof(ts_ms) != 'integer'
    OR typeof(type) != 'text' OR substr(CAST(body AS BLOB), -(25 + length(ts_ms) + length(CAST(type AS BLOB))))
    != CAST(',"time":' || ts_ms || ',"type":"' || type || '","v":1}' AS BLOB)) AS bad FROM entries)
    WHERE bad OR type IN ('retention.purge', 'clock.stepped') ORDER BY idx"""

def load_sqlite(conn: sqlite3.Connection) -> LogData:
    node_id = read_meta(conn, "node_id")
    if node_id is None:
        raise AuditLogError("not an audit database (no node id)")
    pruned, frontier = read_pruned(conn)
    # ts_ms rides along with the main scan (a separate pass over 1M rows costs about a second).
    rows = conn.execute("SELECT idx, body, leaf, ts_ms FROM entries ORDER BY idx").fetchall()
    times = [r[3] for r in rows]
    flagged = conn.execute(_SQL_COLUMNS).fetchall()
    odd_types = conn.execute(
        "SELECT count(*) FROM entries WHERE typeof(body) != 'blob' OR typeof(leaf) != 'blob'"
    ).fetchone()[0]
    return LogData(
        node_id=node_id,
        vkey=read_meta(conn, "vkey"),
        pruned=pruned,
        frontier=frontier,
        recorded_size=int(read_meta(conn, "size") or "0"),
        rows=normalise_rows(rows) if odd_types else rows,
        checkpoints=[
            (int(a), as_bytes(b), str(c))
            for a, b, c in conn.execute("SELECT size, root, note FROM checkpoints ORDER BY size")
        ],
        misplaced=[int(r[0]) for r in conn.execute(_SQL_MISPLACED)],
        column_mismatch=[int(r[0]) for r in flagged if r[3]],
        times=times if set(map(type, times)) <= {int} else None,  # non-integers: named by the column check
        special=[(int(i), str(t), as_bytes(b)) for i, t, b, bad in flagged if not bad and t in SPECIAL_TYPES],
        ts_at=functools.partial(_sqlite_ts_at, conn),
    )


def _sqlite_ts_at(conn: sqlite3.Connection, index: int) -> int | None:
    row = conn.execute("SELECT ts_ms FROM entries WHERE idx=?", (index,)).fetchone()
    return None if row is None else int(row[0])


def _verify(conn: sqlite3.Connection, key: VerifierKey | None, external: Sequence[tuple[str, str]]) -> Report:
    return verify_data(load_sqlite(conn), key, external)


def verify_data(
    data: LogData,
    key: VerifierKey | None,
    external: Sequence[tuple[str, str]] = (),
    *,
    tolerance_ms: int = CLOCK_TOLERANCE_MS,
) -> Report:
    """The checks proper, on data loaded from any store."""
    node_id = data.node_id
    report = Report(node_id)
    if key is None:
        if data.vkey is None:
            raise AuditLogError("no verifier key given and none recorded")
        key = VerifierKey.decode(data.vkey)
        report.add("key-from-log", "verifier key read from the store itself; pass --key for an independent check",
                   WARNING)
    elif key.name != key_name(node_id):
        report.add("wrong-key", f"verifier key {key.name} is not the key of node {node_id}")
    pruned, frontier = data.pruned, data.frontier
    report.pruned = pruned
    recorded_size = data.recorded_size

    rows = data.rows
    idxs: list[int] = [r[0] for r in rows]
    bodies: list[bytes] = [r[1] for r in rows]
    stored_leaves: list[bytes] = [r[2] for r in rows]
    del rows
    report.entries = len(idxs)
    last = idxs[-1] + 1 if idxs else pruned

    # Deleted entries: holes in the index sequence; truncation: fewer entries than the writer recorded.
    if idxs != list(range(pruned, pruned + len(idxs))):
        present = set(idxs)
        missing = [i for i in range(pruned, last) if i not in present]
        if missing:
            report.add("deleted", f"entries {_ranges(missing)} deleted (gap in the log)")
        before = [i for i in idxs if i < pruned]
        if before:
            report.add("unexpected", f"entries {_ranges(before)} present although pruned")
    if recorded_size > last:
        report.add("truncated", f"tail truncated: entries {_ranges(range(last, recorded_size))} missing "
                   f"(the writer recorded {recorded_size} entries)")
    elif recorded_size < last:
        report.add("unexpected", f"entries beyond the recorded size {recorded_size} (up to {last - 1})")

    # Modified entries: content no longer hashes to the recorded leaf.
    leaves = merkle.leaf_hashes(bodies)
    if leaves != stored_leaves:
        modified = [idx for idx, a, b in zip(idxs, leaves, stored_leaves, strict=True) if a != b]
        report.add("modified", f"entries {_ranges(modified)} modified: content does not match its recorded hash")

    # Query columns (time, type) must say what the signed content says, or filtered exports could hide entries.
    bad_cols = data.column_mismatch
    if bad_cols is None and data.columns is not None:
        bad_cols = [
            idx
            for idx, body, (ts, typ) in zip(idxs, bodies, data.columns, strict=True)
            if not (isinstance(ts, int) and isinstance(typ, str))
            or not body.endswith(b',"time":%d,"type":"%s","v":1}' % (ts, typ.encode()))
        ]
    if bad_cols:
        report.add("column-mismatch", f"entries {_ranges(bad_cols)}: time/type columns differ from the signed "
                   "content (queries and exports would be misled)")

    # Reordered entries: every entry carries its own index (`{"idx":N,...`, canonical encoding).
    if data.misplaced is None:
        claimed = [_claimed_index(b) for b in bodies]
        moved = {idx: c for idx, c in zip(idxs, claimed, strict=True) if idx != c}
    else:
        position = {idx: p for p, idx in enumerate(idxs)} if data.misplaced else {}
        moved = {idx: c for idx in data.misplaced if (c := _claimed_index(bodies[position[idx]])) != idx}
    if moved:
        swaps = sorted({tuple(sorted((a, b))) for a, b in moved.items() if moved.get(b) == a})
        for a, b in swaps:
            report.add("reordered", f"entries {a} and {b} swapped")
        others = [a for a in moved if not any(a in s for s in swaps)]
        if others:
            report.add("reordered", f"entries at {_ranges(sorted(others))} carry another index (moved or forged)")

    tree = _Tree(leaves, pruned, frontier)
    db_size = tree.size

    # Stored checkpoints: signature, then root against the tree rebuilt from content.
    good_sizes: list[int] = []
    signed: list[Checkpoint] = []
    last_ok = pruned
    mismatched: list[int] = []  # after the first mismatch, later ones follow from it: reported together
    for size, root, note in data.checkpoints:
        try:
            cp = parse_checkpoint(str(note), key)
        except CheckpointError as exc:
            report.add("bad-signature", f"checkpoint at size {size}: {exc}")
            continue
        if cp.size != size or (root is not None and cp.root != root) or cp.origin != origin(node_id):
            report.add("bad-checkpoint", f"checkpoint row at size {size} does not match its signed note")
            continue
        report.checkpoints_checked += 1
        signed.append(cp)
        if report.latest is None or cp.size >= report.latest.size:
            report.latest = cp
        if cp.size < pruned:
            continue  # before the pruned prefix: nothing left to compare
        if cp.size > db_size:
            if cp.size > last:  # not explained by holes already reported as deletions
                report.add("truncated", f"signed checkpoint of {_fmt_time(cp.time_ms)} covers {cp.size} entries, "
                           f"the log holds {db_size}: entries {_ranges(range(max(db_size, last), cp.size))} lost")
            else:
                mismatched.append(cp.size)
            continue
        computed = tree.root(cp.size)
        if computed is None:
            report.add("pruned-frontier", f"checkpoint at size {cp.size}: pruned hashes missing")
        elif computed != cp.root:
            if not mismatched:
                report.add("root-mismatch", f"checkpoint at size {cp.size} ({_fmt_time(cp.time_ms)}) does not "
                           f"match the log: content of entries {last_ok}-{cp.size - 1} altered")
            mismatched.append(cp.size)
        elif mismatched:
            report.add("root-mismatch", f"checkpoint at size {cp.size} matches again after mismatches "
                       f"(sizes {_ranges(mismatched)}): history was rewritten to fit it")
        else:
            good_sizes.append(cp.size)
            last_ok = cp.size
    if len(mismatched) > 1:
        report.add("root-mismatch", f"{len(mismatched) - 1} later checkpoints (sizes {_ranges(mismatched[1:])}) "
                   "fail as a consequence")
    elif len(mismatched) == 1 and not any(f.code == "root-mismatch" for f in report.findings):
        report.add("root-mismatch", f"checkpoint at size {mismatched[0]} does not match the log")

    # Checkpoints kept elsewhere: the only defence against roll-back and tail truncation with cover-up.
    for label, note in external:
        try:
            cp = parse_checkpoint(note, key)
        except CheckpointError as exc:
            report.add("bad-signature", f"checkpoint {label}: {exc}")
            continue
        if cp.origin != origin(node_id):
            report.add("wrong-log", f"checkpoint {label} is for {cp.origin}, not {origin(node_id)}")
            continue
        report.checkpoints_checked += 1
        if cp.size > db_size:
            latest = report.latest
            if recorded_size >= cp.size or (latest is not None and latest.size > db_size):
                report.add("truncated", f"tail truncated: checkpoint {label} covers {cp.size} entries, "
                           f"the log holds {db_size}")
            else:
                held = "no checkpoint" if latest is None else (
                    f"its latest checkpoint is size {latest.size} of {_fmt_time(latest.time_ms)}")
                report.add("rolled-back", f"database rolled back to an older copy: it holds {db_size} entries and "
                           f"{held}, but checkpoint {label} of {_fmt_time(cp.time_ms)} covers {cp.size}")
            continue
        if cp.size < pruned:
            continue
        computed = tree.root(cp.size)
        if computed is not None and computed != cp.root:
            report.add("root-mismatch", f"the log does not match checkpoint {label} at size {cp.size}: "
                       "history rewritten")
        if report.latest is None or cp.size > report.latest.size:
            report.latest = cp

    covered = max(good_sizes, default=pruned)
    special = _special_rows(data, idxs, bodies)
    if pruned:
        _check_pruning(report, pruned, frontier, signed, special, covered)
    _check_time(report, data, idxs, signed, special, tolerance_ms)
    if db_size > covered and report.ok:
        report.add("unsigned-tail", f"entries {_ranges(range(covered, db_size))} not yet covered by a signed "
                   "checkpoint", WARNING)
    return report


def _special_rows(data: LogData, idxs: list[int], bodies: list[bytes]) -> list[tuple[int, dict[str, Any]]]:
    """(index, payload) of the retention.purge / clock.stepped entries (read from their signed content)."""
    if data.special is not None:
        picked = [(i, b) for i, _t, b in data.special]
    elif data.columns is not None:
        picked = [(i, b) for i, b, (_ts, t) in zip(idxs, bodies, data.columns, strict=True) if t in SPECIAL_TYPES]
    else:
        picked = [(i, b) for i, b in zip(idxs, bodies, strict=True) if b'"type":"retention.purge"' in b
                  or b'"type":"clock.stepped"' in b]
    out = []
    for i, body in picked:
        try:
            rec = decode_entry(body)
            out.append((i, {"type": rec["type"], "time": rec["time"], **rec["payload"]}))
        except (ValueError, KeyError, TypeError):
            continue  # unreadable content is already reported as modified
    return out


def _check_pruning(
    report: Report,
    pruned: int,
    frontier: dict[tuple[int, int], bytes],
    signed: list[Checkpoint],
    special: list[tuple[int, dict[str, Any]]],
    covered: int,
) -> None:
    """A pruned prefix is accepted only with its proof: a signed pruning checkpoint at exactly the pruned size
    whose root is the stored frontier's, and the retention.purge event that made it, inside the signed log."""
    prefix = f"entries 0-{pruned - 1}" if pruned > 1 else "entry 0"
    pruning = [cp for cp in signed if "pruning" in cp.extensions]
    at_size = [cp for cp in pruning if cp.size == pruned]
    if not at_size:
        if pruning:
            sizes = ", ".join(str(cp.size) for cp in pruning)
            report.add("pruning-wrong-size", f"{prefix} are pruned, but the signed pruning checkpoints are at size "
                       f"{sizes}, not {pruned}: the pruned size was changed")
        else:
            report.add("pruning-unproven", f"{prefix} are missing and no signed pruning checkpoint at size {pruned} "
                       "proves they were purged (prefix deleted, frontier written without the key?)")
    else:
        places = merkle.decompose(pruned)
        root = merkle.fold([frontier[p] for p in places]) if all(p in frontier for p in places) else None
        if not any(root is not None and hmac.compare_digest(root, cp.root) for cp in at_size):
            report.add("forged-frontier", f"the stored frontier of the pruned prefix does not match the signed "
                       f"pruning checkpoint at size {pruned}")
    events = [(i, p) for i, p in special if p["type"] == "retention.purge" and p.get("first_kept_index") == pruned]
    if not events:
        report.add("purge-event-missing", f"no retention.purge event with first_kept_index {pruned} in the "
                   f"retained log: nothing records who purged {prefix}")
    elif not any(i < covered for i, _ in events):
        report.add("purge-event-unsigned", f"the retention.purge event for {prefix} (entry {events[-1][0]}) is "
                   "not covered by a signed checkpoint")
    for i, p in events:
        if p.get("forced"):
            report.add("forced-purge", f"entry {i}: the purge of {prefix} was forced (unshipped entries: "
                       f"{p.get('unshipped_entries', 0)}, clock behind the latest checkpoint by "
                       f"{p.get('clock_behind_ms', 0)} ms)", WARNING)


def find_backsteps(idxs: list[int], times: list[int], tolerance_ms: int) -> list[tuple[int, int, int]]:
    """(idx, ts, latest earlier ts) of entries dated more than the tolerance before some earlier entry.
    Running maximum and differences in C (itertools/map): ~0.1 s for a million entries."""
    if len(times) < 2 or len(times) != len(idxs):
        return []
    highs = list(itertools.accumulate(times, max))
    behind = list(map(operator.sub, highs[:-1], times[1:]))  # behind[k]: entry k+1 vs the highest before it
    if max(behind) <= tolerance_ms:
        return []
    return [(idxs[k + 1], times[k + 1], highs[k]) for k, b in enumerate(behind) if b > tolerance_ms]


def _duration(ms: int) -> str:
    ms = abs(ms)
    if ms >= 86_400_000:
        return f"{ms / 86_400_000:.1f} days"
    if ms >= 3_600_000:
        return f"{ms / 3_600_000:.1f} h"
    return f"{ms / 1000:.1f} s"


def _check_time(
    report: Report,
    data: LogData,
    idxs: list[int],
    signed: list[Checkpoint],
    special: list[tuple[int, dict[str, Any]]],
    tolerance_ms: int,
) -> None:
    """Honest time: entries dated before an earlier entry or before the checkpoint signed just before them, and
    the clock steps the node itself recorded. Findings, not failures: the hash chain is intact, the times are
    not to be trusted as they stand."""
    backsteps = data.backsteps
    ts_at = data.ts_at
    if backsteps is None or ts_at is None:
        if data.times is not None:
            times = data.times
        else:
            times = [t for t, _ in data.columns] if data.columns is not None else []
        if backsteps is None:
            backsteps = find_backsteps(idxs, times, tolerance_ms)
        if ts_at is None:
            by_idx = dict(zip(idxs, times, strict=False))
            ts_at = by_idx.get
    if backsteps:
        worst = max(backsteps, key=lambda b: b[2] - b[1])
        report.add("clock-backward", f"entries {_ranges([b[0] for b in backsteps])} are dated before an earlier "
                   f"entry (up to {_duration(worst[2] - worst[1])} back, at entry {worst[0]}: "
                   f"{_fmt_time(worst[1])} after {_fmt_time(worst[2])}): the clock was stepped back", WARNING)
    late = []
    for cp in signed:
        first = ts_at(cp.size) if cp.size < report.pruned + report.entries else None
        if first is not None and cp.time_ms - first > tolerance_ms:
            late.append(f"entry {cp.size} ({_fmt_time(first)}) after checkpoint {cp.size} "
                        f"({_fmt_time(cp.time_ms)})")
    if late:
        report.add("clock-before-checkpoint", "entries dated before the signed checkpoint that precedes them: "
                   + "; ".join(late[:4]) + (f" ... ({len(late)} in all)" if len(late) > 4 else ""), WARNING)
    for i, p in special:
        if p["type"] == "clock.stepped":
            step = int(p.get("step_ms", 0))
            report.add("clock-step", f"entry {i}: the node recorded its clock stepping "
                       f"{'forward' if step > 0 else 'back'} by {_duration(step)} ({p.get('previous_time')} -> "
                       f"{p.get('observed_time')}, {p.get('detected_by')})", WARNING)


def as_bytes(value: object) -> bytes:
    """A stored column as bytes, whatever SQL left in it (an SQL `replace()` on a BLOB yields TEXT, for
    instance): content that changed type still gets hashed and reported, never crashes the verifier."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return repr(value).encode()


def normalise_rows(rows: list[tuple[object, ...]]) -> list[tuple[int, bytes, bytes]]:
    if all(type(r[1]) is bytes and type(r[2]) is bytes and type(r[0]) is int for r in rows):
        return rows  # type: ignore[return-value]
    out = []
    for idx, body, leaf, *_rest in rows:
        out.append((idx if isinstance(idx, int) else -1, as_bytes(body), as_bytes(leaf)))
    return out


def _claimed_index(body: bytes) -> int:
    if not body.startswith(b'{"idx":'):
        return -1
    end = body.find(b",", 7)
    try:
        return int(body[7:end])
    except ValueError:
        return -1
