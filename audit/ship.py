"""Shipping a node's log to the central PostgreSQL store.

Each node's chain is checked on arrival against the *central* copy's own state, never the node's word: under a
row lock on the node, the central frontier (compact range) is extended with the hashes of the shipped entries'
content, and the result must equal the root of a checkpoint signed by the node key pinned at first contact.
A shipment that does not extend the central tree consistently is refused whole.

One transaction per chunk (ending on a signed checkpoint): a failure (network, server restart, process killed)
rolls back at most the chunk in flight; the next run resumes from the central size, so re-shipping adds nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from audit import merkle
from audit.checkpoint import CheckpointError, VerifierKey, parse_checkpoint
from audit.log import AuditLogError, read_meta, read_pruned
from audit.verify import _claimed_index, as_bytes


class ShipError(Exception):
    """Shipping could not complete (server unreachable, connection lost). Safe to run again."""


class ShipRejected(ShipError):
    """The central store refused the shipment: it does not extend the node's known tree consistently, or the
    node is not registered (for this role, with this key)."""


class ShipUnregistered(ShipRejected):
    """The node (or this role, or this key) is not registered in the central store."""


class ShipUnreachable(ShipError):
    """The central store could not be reached, or the connection was lost mid-shipment."""


@dataclass(frozen=True)
class ShipResult:
    node_id: str
    shipped: int
    central_size: int
    chunks: int
    cosigned: str | None = None  # the latest checkpoint cosigned by the witness, now kept by the node


def _frontier_bytes(nodes: list[bytes]) -> bytes:
    return b"".join(nodes)


def _frontier_list(blob: bytes) -> list[bytes]:
    return [bytes(blob[i : i + 32]) for i in range(0, len(blob), 32)]


def ship(
    db: Path,
    dsn: str,
    *,
    max_batch: int = 5000,
    on_commit: Callable[[int], None] | None = None,
    connect_timeout: int = 5,
) -> ShipResult:
    """Ship every checkpointed entry of the local log at `db` that the central store does not hold yet."""
    local = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None, timeout=60.0)
    try:
        local.execute("BEGIN")  # one snapshot of the node's log for the whole shipment (writers go on)
        node_id = read_meta(local, "node_id")
        vkey_text = read_meta(local, "vkey")
        if node_id is None or vkey_text is None:
            raise AuditLogError(f"{db}: not an audit database")
        try:
            conn = psycopg.connect(dsn, connect_timeout=connect_timeout, autocommit=True)
        except psycopg.Error as exc:
            raise ShipUnreachable(f"central store unreachable: {_one_line(exc)}") from None
        def committed(size: int) -> None:
            record_shipped(db, size)
            if on_commit is not None:
                on_commit(size)

        try:
            with conn:
                result = _ship(local, conn, node_id, vkey_text, max_batch, committed)
                record_shipped(db, result.central_size)
                cosigned = latest_cosignature(conn, node_id)
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction):
            raise ShipRejected("the central store is not set up: `cardbound audit central init` (schema owner) "
                               "first") from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise ShipUnregistered(f"the central store refused node {node_id}: {exc.diag.message_primary} (register it "
                               f"first: cardbound audit central add-node {node_id} --key FILE)") from None
        except psycopg.OperationalError as exc:
            raise ShipUnreachable(f"connection to the central store lost: {_one_line(exc)}") from None
        except psycopg.Error as exc:
            raise ShipError(f"the central store failed: {_one_line(exc)}") from None
        if cosigned is not None:
            from audit.witness import store_cosigned

            store_cosigned(db, cosigned)
        return ShipResult(result.node_id, result.shipped, result.central_size, result.chunks, cosigned)
    finally:
        local.close()


def latest_cosignature(conn: psycopg.Connection[Any], node_id: str) -> str | None:
    """The newest cosigned checkpoint the witness left for `node_id` (its own row: row-level security)."""
    row = conn.execute(
        "SELECT note FROM audit_cosignatures WHERE node_id=%s ORDER BY size DESC, created_at DESC LIMIT 1",
        (node_id,),
    ).fetchone()
    return None if row is None else str(row[0])



def record_shipped(db: Path, size: int) -> None:
    """Remember locally how far the central store has acknowledged the log (retention will not purge beyond
    it unless forced). Only ever moves forward."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=60.0)
    try:
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('shipped_size', ?) ON CONFLICT(key) DO UPDATE SET "
            "value = CAST(max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
            (str(size),),
        )
    finally:
        conn.close()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _ship(
    local: sqlite3.Connection,
    conn: psycopg.Connection[Any],
    node_id: str,
    vkey_text: str,
    max_batch: int,
    on_commit: Callable[[int], None] | None,
) -> ShipResult:
    # Registered ahead by the schema owner (never trusted on first use); the server refuses any other node.
    row = conn.execute("SELECT vkey FROM cardbound_node_state(%s)", (node_id,)).fetchone()
    if row is None:
        raise ShipUnregistered(f"node {node_id} is not registered in the central store")
    if row[0] != vkey_text:
        raise ShipUnregistered(f"node {node_id}: checkpoint key differs from the key registered in the central store")
    key = VerifierKey.decode(str(row[0]))
    pruned, pruned_nodes = read_pruned(local)

    # Signed checkpoints of the local log, verified with the *pinned* key.
    checkpoints: dict[int, tuple[bytes, str]] = {}
    for size, note in local.execute("SELECT size, note FROM checkpoints ORDER BY size"):
        try:
            cp = parse_checkpoint(str(note), key)
        except CheckpointError as exc:
            raise ShipRejected(f"local checkpoint at size {size}: {exc}") from None
        checkpoints[cp.size] = (cp.root, str(note))

    shipped = chunks = 0
    while True:
        with conn.transaction():
            cur = conn.execute("SELECT size, frontier, pruned_size FROM cardbound_node_state(%s)", (node_id,))
            central = cur.fetchone()
            assert central is not None
            start, frontier = int(central[0]), _frontier_list(bytes(central[1]))
            old_size, new_pruned = start, int(central[2])
            targets = sorted(s for s in checkpoints if s > start)
            if not targets:
                return ShipResult(node_id, shipped, start, chunks)
            end = targets[0]
            for s in targets:
                if s - start > max_batch:
                    break
                end = s
            if start < pruned:
                if start != 0 or pruned not in checkpoints:
                    raise ShipRejected(f"entries {start}-{pruned - 1} were pruned locally before being shipped")
                # First contact after a local purge: start from the pruned prefix's signed frontier.
                frontier = [pruned_nodes[p] for p in merkle.decompose(pruned)]
                if merkle.fold(frontier) != checkpoints[pruned][0]:
                    raise ShipRejected("local pruned frontier does not match its signed checkpoint")
                new_pruned = pruned
                start = pruned
                end = max(end, pruned)
            rng = merkle.CompactRange(start, frontier)
            rows = [
                (idx, ts, typ, as_bytes(body), as_bytes(leaf))
                for idx, ts, typ, body, leaf in local.execute(
                    "SELECT idx, ts_ms, type, body, leaf FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                    (start, end),
                )
            ]
            if [r[0] for r in rows] != list(range(start, end)):
                raise ShipRejected(f"local log is missing entries in {start}-{end - 1}")
            for idx, _ts, _type, body, leaf in rows:
                computed = merkle.leaf_hash(body)
                if computed != leaf or _claimed_index(body) != idx:
                    raise ShipRejected(f"entry {idx}: content does not match its hash or its place")
                rng.append(computed)
            if end > start and rng.root() != checkpoints[end][0]:
                raise ShipRejected(
                    f"shipment {start}-{end - 1} does not extend the central tree of size {start} "
                    f"to the node's signed checkpoint at size {end} (history rewritten?)"
                )
            # INSERT, not COPY: PostgreSQL does not run COPY FROM into a table with row-level security.
            conn.cursor().executemany(
                "INSERT INTO audit_entries(node_id, idx, ts_ms, type, body, leaf) VALUES (%s, %s, %s, %s, %s, %s)",
                [(node_id, idx, ts, typ, body, leaf) for idx, ts, typ, body, leaf in rows],
            )
            conn.cursor().executemany(
                "INSERT INTO audit_checkpoints(node_id, size, note) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                [(node_id, s, checkpoints[s][1]) for s in targets if s <= end],
            )
            conn.execute(
                "SELECT cardbound_advance(%s, %s, %s, %s, %s, %s)",
                (node_id, old_size, end, _frontier_bytes(rng.nodes), checkpoints[end][1], new_pruned),
            )
        shipped += len(rows)
        chunks += 1
        if on_commit is not None:
            on_commit(end)


def central_state(dsn: str, node_id: str) -> tuple[int, bytes] | None:
    """(size, root) the central store holds for `node_id`, or None if it has never received it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            row = conn.execute("SELECT size, frontier FROM audit_nodes WHERE node_id=%s", (node_id,)).fetchone()
        except psycopg.errors.UndefinedTable:
            return None  # nothing was ever shipped to this store
    if row is None:
        return None
    return int(row[0]), merkle.fold(_frontier_list(bytes(row[1])))
