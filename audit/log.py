"""The append-only audit log on SQLite (WAL, synchronous=FULL): entries, Merkle nodes, signed checkpoints.

One database per node. Every append runs in one `BEGIN IMMEDIATE` transaction that re-reads the tree size,
so several processes can append to the same file and still produce one chain. An append returns only after
the commit is durable, so an acknowledged event survives a crash (SIGKILL, power loss with FULL sync).
"""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from audit import merkle
from audit.checkpoint import Checkpoint, Signer, VerifierKey, key_path, load_or_create_signer, origin
from audit.events import AuditEvent, ClockStepped, EventValidationError, validate_event

SCHEMA_VERSION = "1"
# Node ids end up in signed-note key names, which allow no '+', '=' or whitespace.
NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}")
ENTRY_VERSION = 1
DEFAULT_CHECKPOINT_EVERY = 1000
DEFAULT_CHECKPOINT_SECONDS = 300.0  # a quiet gate still gets its log signed every few minutes
# Clock steps smaller than this are ordinary NTP corrections; larger ones are recorded (and reported by verify).
CLOCK_TOLERANCE_MS = 2_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries(
    idx INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, type TEXT NOT NULL, body BLOB NOT NULL, leaf BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS entries_ts ON entries(ts_ms);
CREATE TABLE IF NOT EXISTS nodes(
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY(level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints(
    size INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'periodic');
"""


class AuditLogError(Exception):
    """The log cannot be opened or written (wrong node, corrupt metadata, missing nodes)."""


Clock = Callable[[], int]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def monotonic_ms() -> int:
    # CLOCK_BOOTTIME keeps counting while the machine is suspended: a resumed gate is not a "clock step".
    clock_id = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)
    return time.clock_gettime_ns(clock_id) // 1_000_000


def iso_ms(ms: int) -> str:
    """ISO 8601 UTC with milliseconds and a `Z` (the one time format of the audit package's output)."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_entry(index: int, node_id: str, time_ms: int, event: AuditEvent) -> bytes:
    """Canonical entry bytes (the Merkle leaf data): sorted-key compact ASCII JSON, `idx` first."""
    record = {
        "idx": index,
        "node": node_id,
        "payload": event.fields(),
        "time": time_ms,
        "type": event.TYPE,
        "v": ENTRY_VERSION,
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def decode_entry(body: bytes) -> dict[str, Any]:
    record = json.loads(body)
    if not isinstance(record, dict):
        raise ValueError("entry is not an object")
    return record


@dataclass(frozen=True)
class Entry:
    index: int
    time_ms: int
    type: str
    body: bytes
    leaf: bytes

    def record(self) -> dict[str, Any]:
        return decode_entry(self.body)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=60.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


class TreeReader:
    """Perfect-node look-ups for one log database (leaves, stored nodes, and the pruned prefix's frontier)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pruned_size, self.pruned_nodes = read_pruned(conn)

    def node(self, level: int, index: int) -> bytes:
        if level == 0:
            row = self.conn.execute("SELECT leaf FROM entries WHERE idx=?", (index,)).fetchone()
        else:
            row = self.conn.execute("SELECT hash FROM nodes WHERE level=? AND idx=?", (level, index)).fetchone()
        if row is not None:
            return bytes(row[0])
        pruned = self.pruned_nodes.get((level, index))
        if pruned is not None:
            return pruned
        raise AuditLogError(f"tree node (level {level}, index {index}) not available (pruned or missing)")


def read_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return None if row is None else str(row[0])


def read_pruned(conn: sqlite3.Connection) -> tuple[int, dict[tuple[int, int], bytes]]:
    """(pruned prefix size, its frontier nodes) — the hashes kept so the rest of the tree still verifies."""
    size = int(read_meta(conn, "pruned_size") or "0")
    text = read_meta(conn, "pruned_frontier") or ""
    hashes = [base64.b64decode(h) for h in text.split(",") if h]
    places = merkle.decompose(size)
    if len(hashes) != len(places):
        raise AuditLogError("pruned frontier metadata is inconsistent")
    return size, dict(zip(places, hashes, strict=True))


class AuditLog:
    """An open audit log. Use `AuditLog.open(...)`; a context manager (closing signs a final checkpoint)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        node_id: str,
        signer: Signer,
        checkpoint_every: int,
        clock: Clock,
        checkpoint_seconds: float | None = None,
        monotonic: Clock | None = None,
        clock_tolerance_ms: int = CLOCK_TOLERANCE_MS,
    ) -> None:
        self._conn = conn
        self.path = path
        self.node_id = node_id
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        self.checkpoint_ms = None if checkpoint_seconds is None else int(checkpoint_seconds * 1000)
        self._last_checkpoint_ms = 0
        self._clock = clock
        self._range = merkle.CompactRange()
        self._last_checkpoint = -1
        self._closed = False
        # Clock-step detection: the last entry's time (from the database, across processes) and, within this
        # process, the (wall, monotonic) pair of the last append: a wall clock that moves differently from the
        # monotonic clock was stepped.
        self._monotonic = monotonic
        self._tolerance = clock_tolerance_ms
        self._last_ts: int | None = None
        self._last_pair: tuple[int, int] | None = None

    # --- opening ------------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path,
        node_id: str,
        *,
        key_file: Path | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        checkpoint_seconds: float | None = DEFAULT_CHECKPOINT_SECONDS,
        clock: Clock = now_ms,
        monotonic: Clock | None = None,
        clock_tolerance_ms: int = CLOCK_TOLERANCE_MS,
        signer: Signer | None = None,
    ) -> AuditLog:
        """Open (or create) the log of `node_id` at `path`.

        `signer` replaces the key file: a checkpoint signer whose key lives elsewhere (a PKCS#11 token).

        `key_file` is the node's Ed25519 checkpoint key (created 0600 on first use); by default
        `<path>/../../keys/audit-<node>.ed25519`, which is `home/keys/...` for `home/audit/audit.sqlite3`.
        A checkpoint is signed every `checkpoint_every` entries, on the first append at least
        `checkpoint_seconds` after the previous checkpoint (None: no time rule), and on close.
        A wall-clock step larger than `clock_tolerance_ms` (behind the last entry, or — within one process —
        against `monotonic`, the process's monotonic clock by default when `clock` is the system clock) is
        recorded as a `clock.stepped` event before the entry that noticed it.
        """
        if not NODE_ID.fullmatch(node_id):
            raise AuditLogError(f"invalid node id {node_id!r}")
        if checkpoint_every < 1:
            raise AuditLogError("checkpoint_every must be at least 1")
        path = Path(path)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():  # owner-only from the start (SQLite gives -wal/-shm the same mode)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        if signer is None:
            signer = load_or_create_signer(key_file or key_path(path.parent.parent / "keys", node_id), node_id)
        conn = connect(path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA.strip().split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            stored = read_meta(conn, "node_id")
            if stored is None:
                conn.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [
                        ("schema", SCHEMA_VERSION),
                        ("node_id", node_id),
                        ("size", "0"),
                        ("vkey", signer.verifier.encode()),
                    ],
                )
            elif stored != node_id:
                raise AuditLogError(f"{path} is the log of node {stored!r}, not {node_id!r}")
            elif read_meta(conn, "vkey") != signer.verifier.encode():
                raise AuditLogError(f"{path}: checkpoint key does not match the key this log was started with")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
            raise
        if monotonic is None and clock is now_ms:
            monotonic = monotonic_ms
        log = cls(conn, path, node_id, signer, checkpoint_every, clock, checkpoint_seconds, monotonic,
                  clock_tolerance_ms)
        log._reload()
        return log

    @classmethod
    def open_station(cls, home_root: Path, node_id: str, **kwargs: Any) -> AuditLog:
        """The station layout: `home/audit/audit.sqlite3` and `home/keys/audit-<node>.ed25519`."""
        return cls.open(
            Path(home_root) / "audit" / "audit.sqlite3",
            node_id,
            key_file=key_path(Path(home_root) / "keys", node_id),
            **kwargs,
        )

    def _reload(self) -> None:
        """Rebuild the cached frontier from the database (another process may have appended)."""
        size = int(read_meta(self._conn, "size") or "0")
        reader = TreeReader(self._conn)
        self._range = merkle.CompactRange(size, [reader.node(lv, ix) for lv, ix in merkle.decompose(size)])
        row = self._conn.execute("SELECT size, ts_ms FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        self._last_checkpoint = -1 if row is None else int(row[0])
        # No checkpoint yet: the time rule counts from opening, not from 1970.
        self._last_checkpoint_ms = self._clock() if row is None else int(row[1])
        last = self._conn.execute("SELECT ts_ms FROM entries ORDER BY idx DESC LIMIT 1").fetchone()
        self._last_ts = None if last is None else int(last[0])

    # --- writing ------------------------------------------------------------------------------------------

    def append(self, event: AuditEvent) -> int:
        """Validate, append and commit one event; return its entry index (0-based)."""
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[AuditEvent]) -> list[int]:
        """Append several events in one durable transaction; return their indices."""
        for event in events:
            if not isinstance(event, AuditEvent):
                raise EventValidationError(type(event).__name__, "*", "not an AuditEvent")
            validate_event(event)
        self._check_open()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if int(read_meta(conn, "size") or "0") != self._range.size:
                self._reload()
            indices = self._append_in_txn(events)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._reload()
            raise
        return indices

    def _append_in_txn(self, events: Sequence[AuditEvent]) -> list[int]:
        rows = []
        nodes: list[tuple[int, int, bytes]] = []
        indices = []
        ts = self._clock()
        steps = self._clock_steps(ts)
        for event in [*steps, *events]:
            idx = self._range.size
            body = encode_entry(idx, self.node_id, ts, event)
            leaf = merkle.leaf_hash(body)
            made = self._range.append(leaf)
            rows.append((idx, ts, event.TYPE, body, leaf))
            nodes.extend(made[1:])
            indices.append(idx)
            # Checkpoints fall on every interval even inside a big batch (shipping cuts chunks on them).
            if self._range.size - max(self._last_checkpoint, 0) >= self.checkpoint_every:
                self._write_checkpoint(ts)
        if (
            self.checkpoint_ms is not None
            and ts - self._last_checkpoint_ms >= self.checkpoint_ms
            and self._last_checkpoint != self._range.size
        ):
            self._write_checkpoint(ts)
        conn = self._conn
        conn.executemany("INSERT INTO entries(idx, ts_ms, type, body, leaf) VALUES (?,?,?,?,?)", rows)
        conn.executemany("INSERT INTO nodes(level, idx, hash) VALUES (?,?,?)", nodes)
        conn.execute("UPDATE meta SET value=? WHERE key='size'", (str(self._range.size),))
        self._last_ts = ts
        return indices[len(steps) :]

    def _clock_steps(self, ts: int) -> list[AuditEvent]:
        """`clock.stepped` events for a wall clock that jumped since the last append (recorded, never refused:
        the entries keep the time the node had; the verifier reports the step)."""
        found: list[AuditEvent] = []
        mono = self._monotonic() if self._monotonic is not None else None
        if mono is not None and self._last_pair is not None:
            wall0, mono0 = self._last_pair
            expected = wall0 + (mono - mono0)
            if abs(ts - expected) > self._tolerance:
                found.append(ClockStepped(node_id=self.node_id, step_ms=ts - expected, previous_time=iso_ms(expected),
                                          observed_time=iso_ms(ts), detected_by="monotonic"))
        if not found and self._last_ts is not None and self._last_ts - ts > self._tolerance:
            found.append(ClockStepped(node_id=self.node_id, step_ms=ts - self._last_ts,
                                      previous_time=iso_ms(self._last_ts), observed_time=iso_ms(ts),
                                      detected_by="last-entry"))
        if mono is not None:
            self._last_pair = (ts, mono)
        return found

    def prune(self, cut: int, audit_event: Callable[[int, int], AuditEvent] | None = None) -> int:
        """Remove entries [pruned, cut) for retention, keeping the remainder verifiable; return entries removed.

        In one transaction: sign a *pruning checkpoint* at size `cut`, keep the frontier (compact range) of
        the removed prefix — the hashes needed so roots, inclusion and consistency proofs for the rest still
        verify — delete the entries, and append `audit_event(removed, cut)` (the purge is itself audited).
        Interior node hashes above the leaves are kept (hashes of hashes, no content).
        """
        self._check_open()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._reload()
            reader = TreeReader(conn)
            if not reader.pruned_size <= cut <= self._range.size:
                raise AuditLogError(f"cannot prune to {cut}: log holds [{reader.pruned_size}, {self._range.size})")
            removed = cut - reader.pruned_size
            if removed:
                places = merkle.decompose(cut)
                frontier = [reader.node(lv, ix) for lv, ix in places]
                root = merkle.fold(frontier)
                ts = self._clock()
                note = Checkpoint(origin(self.node_id), cut, root, ts, ("pruning",)).sign(self.signer)
                conn.execute(
                    "INSERT OR REPLACE INTO checkpoints(size, ts_ms, root, note, kind) VALUES (?,?,?,?,?)",
                    (cut, ts, root, note, "pruning"),
                )
                conn.execute("DELETE FROM entries WHERE idx < ?", (cut,))
                blob = ",".join(base64.b64encode(h).decode() for h in frontier)
                conn.executemany(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                    [("pruned_size", str(cut)), ("pruned_frontier", blob)],
                )
            if audit_event is not None:
                self._append_in_txn([audit_event(removed, cut)])
                # The purge record is signed at once: the verifier accepts a pruned prefix only with it.
                self._write_checkpoint(self._clock())
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            self._reload()
        return removed

    def _write_checkpoint(self, ts: int, kind: str = "periodic") -> str:
        size = self._range.size
        root = self._range.root()
        note = Checkpoint(origin(self.node_id), size, root, ts).sign(self.signer)
        self._conn.execute(
            "INSERT OR REPLACE INTO checkpoints(size, ts_ms, root, note, kind) VALUES (?,?,?,?,?)",
            (size, ts, root, note, kind),
        )
        self._last_checkpoint = size
        self._last_checkpoint_ms = ts
        return note

    def checkpoint(self, kind: str = "periodic") -> str:
        """Sign a checkpoint for the current tree now (or return the latest one if nothing changed)."""
        self._check_open()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._reload()
            if self._last_checkpoint == self._range.size and kind == "periodic":
                row = conn.execute("SELECT note FROM checkpoints WHERE size=?", (self._range.size,)).fetchone()
                note = str(row[0])
            else:
                note = self._write_checkpoint(self._clock(), kind)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return note

    # --- reading ------------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        self._check_open()
        return int(read_meta(self._conn, "size") or "0")

    def now(self) -> int:
        """The log's clock (ms since the epoch): the time stamped on entries."""
        return self._clock()

    @property
    def verifier_key(self) -> VerifierKey:
        return self.signer.verifier

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying connection (for the verifier, shipping and retention in this package)."""
        return self._conn

    def tree(self) -> TreeReader:
        return TreeReader(self._conn)

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        return merkle.root_from_getter(size, self.tree().node)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self.size if size is None else size
        return merkle.inclusion_proof(index, size, self.tree().node)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        size2 = self.size if size2 is None else size2
        return merkle.consistency_proof(size1, size2, self.tree().node)

    def entry(self, index: int) -> Entry:
        row = self._conn.execute(
            "SELECT idx, ts_ms, type, body, leaf FROM entries WHERE idx=?", (index,)
        ).fetchone()
        if row is None:
            raise AuditLogError(f"entry {index} not in the log")
        return Entry(int(row[0]), int(row[1]), str(row[2]), bytes(row[3]), bytes(row[4]))

    def entries(
        self,
        *,
        from_ms: int | None = None,
        to_ms: int | None = None,
        event_type: str | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[Entry]:
        """Entries in index order, filtered by time range [from_ms, to_ms), type and index range."""
        sql = "SELECT idx, ts_ms, type, body, leaf FROM entries WHERE idx >= ?"
        params: list[Any] = [start]
        for cond, value in (
            ("idx < ?", stop),
            ("ts_ms >= ?", from_ms),
            ("ts_ms < ?", to_ms),
            ("type = ?", event_type),
        ):
            if value is not None:
                sql += f" AND {cond}"
                params.append(value)
        for row in self._conn.execute(sql + " ORDER BY idx", params):
            yield Entry(int(row[0]), int(row[1]), str(row[2]), bytes(row[3]), bytes(row[4]))

    def checkpoints(self) -> list[tuple[int, str, str]]:
        """(size, kind, signed note) of every stored checkpoint, oldest first."""
        rows = self._conn.execute("SELECT size, kind, note FROM checkpoints ORDER BY size").fetchall()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def latest_checkpoint(self) -> str | None:
        row = self._conn.execute("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    # --- closing ------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise AuditLogError("audit log is closed")

    def close(self) -> None:
        """Sign a checkpoint covering everything appended, then close. Idempotent."""
        if self._closed:
            return
        try:
            if self.size and self._last_checkpoint < self.size:
                self.checkpoint()
        finally:
            self._closed = True
            self._conn.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

