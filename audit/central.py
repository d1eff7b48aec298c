"""Reading the central PostgreSQL store: verify each node's shipped chain, export for auditors.

The central copy is checked with the same verifier as a node's database (content hashes, contiguity, every
shipped signed checkpoint) plus the stored frontier the shipper extends (it must equal the tree rebuilt from
content, or later shipments would be checked against a forged state).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import psycopg

from audit import merkle
from audit.checkpoint import VerifierKey, parse_checkpoint
from audit.export import ExportError, ExportResult, _filters, _row, check_request, write_export
from audit.log import Entry
from audit.verify import LogData, Report, verify_data


class CentralError(Exception):
    """The central store does not hold what was asked (unreachable: `audit.store.StoreUnreachable`)."""


def _connect(dsn: str) -> psycopg.Connection[Any]:
    from audit.store import connect

    return connect(dsn)  # StoreUnreachable: its own exit code, never "tampered"


def nodes(conn: psycopg.Connection[Any]) -> list[str]:
    try:
        return [str(r[0]) for r in conn.execute("SELECT node_id FROM audit_nodes ORDER BY node_id")]
    except psycopg.errors.UndefinedTable:
        return []


def _load(conn: psycopg.Connection[Any], node: str) -> tuple[LogData, bytes]:
    row = conn.execute(
        "SELECT vkey, size, frontier, pruned_size, role FROM audit_nodes WHERE node_id=%s", (node,)
    ).fetchone()
    if row is None:
        raise CentralError(f"the central store holds nothing from node {node}")
    vkey, size, frontier, pruned = str(row[0]), int(row[1]), bytes(row[2]), int(row[3])
    if row[4] is None:
        vkey = ""  # a node row from before registration (trusted on first use): its key is not a registered one
    raw = conn.execute(
        "SELECT idx, body, leaf, ts_ms, type FROM audit_entries WHERE node_id=%s ORDER BY idx", (node,)
    ).fetchall()
    rows = [(int(i), bytes(b), bytes(h)) for i, b, h, _, _ in raw]
    columns = [(int(t), str(ty)) for _, _, _, t, ty in raw]
    cps: list[tuple[int, bytes | None, str]] = [
        (int(s), None, str(n))
        for s, n in conn.execute("SELECT size, note FROM audit_checkpoints WHERE node_id=%s ORDER BY size", (node,))
    ]
    if pruned:
        # Shipped for the first time after a local purge: the prefix's frontier is the start of `frontier`'s
        # history, not kept centrally; the checks start at the first shipped checkpoint.
        cps = [c for c in cps if c[0] >= pruned]
    data = LogData(node, vkey, pruned, {}, size, rows, cps, columns)
    return data, frontier


def _cosigned(conn: psycopg.Connection[Any], node: str) -> list[tuple[str, str]]:
    """The witness's latest cosigned checkpoint of `node`, as a kept checkpoint: a central store restored from
    an older backup (or cut) is caught against it."""
    try:
        row = conn.execute(
            "SELECT witness, note FROM audit_cosignatures WHERE node_id=%s ORDER BY size DESC LIMIT 1", (node,)
        ).fetchone()
    except psycopg.errors.UndefinedTable:
        return []  # a store set up before the witness existed
    return [] if row is None else [(f"cosigned by witness {row[0]} (central store)", str(row[1]))]


def verify_central(dsn: str, node: str | None = None, keys: dict[str, VerifierKey] | None = None) -> list[Report]:
    """One report per node (or for `node`) held by the central store."""
    with _connect(dsn) as conn:
        names = [node] if node else nodes(conn)
        if not names:
            raise CentralError("the central store holds no audit data")
        reports = []
        for name in names:
            data, frontier = _load(conn, name)
            if data.pruned:
                report = Report(name, pruned=data.pruned)
                report.add("unverifiable", f"node {name} first shipped after pruning {data.pruned} entries: "
                           "the central copy cannot be rebuilt from content", "warning")
                reports.append(report)
                continue
            given = (keys or {}).get(name)
            if not data.vkey:
                report = Report(name)
                report.add("unregistered", f"node {name} has no registered key in the central store (a row from "
                           f"before registration): cardbound audit central add-node {name} --key FILE")
                reports.append(report)
                continue
            registered = VerifierKey.decode(data.vkey)
            report = verify_data(data, given or registered, _cosigned(conn, name))
            if given is not None and given != registered:
                report.add("key-mismatch", f"node {name}: the key given is not the one registered in the central "
                           "store")
            leaves = merkle.leaf_hashes([b for _, b, _ in data.rows])
            levels = merkle.build_levels(leaves) if leaves else [[]]
            expected = b"".join(levels[lv][ix] for lv, ix in merkle.decompose(len(leaves)))
            if len(leaves) == data.recorded_size and expected != frontier:
                report.add("bad-frontier", f"node {name}: the central frontier does not match the shipped content")
            reports.append(report)
    return reports


def export_central(
    dsn: str,
    out: Path,
    *,
    fmt: str = "jsonl",
    from_ms: int | None = None,
    to_ms: int | None = None,
    event_type: str | None = None,
    node: str | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Export from the central store (every node, or one), each row with its proof to the node's latest shipped
    signed checkpoint."""
    check_request(fmt, from_ms, to_ms, event_type, out, overwrite)
    with _connect(dsn) as conn:
        names = [node] if node else nodes(conn)
        if not names:
            raise ExportError("the central store holds no audit data")
        manifests: dict[str, tuple[str, str]] = {}
        rows: list[dict[str, Any]] = []
        for name in names:
            info = conn.execute(
                "SELECT vkey, size, checkpoint, pruned_size FROM audit_nodes WHERE node_id=%s", (name,)
            ).fetchone()
            if info is None:
                raise ExportError(f"the central store holds nothing from node {name}")
            vkey, size, note, pruned = str(info[0]), int(info[1]), str(info[2] or ""), int(info[3])
            if not size or not note:
                continue
            if pruned:
                raise ExportError(f"node {name} was shipped after pruning: export it from the node itself")
            cp = parse_checkpoint(note, VerifierKey.decode(vkey))
            leaves = [bytes(r[0]) for r in conn.execute(
                "SELECT leaf FROM audit_entries WHERE node_id=%s AND idx < %s ORDER BY idx", (name, cp.size))]
            levels = merkle.build_levels(leaves)

            def get(level: int, index: int, levels: list[list[bytes]] = levels) -> bytes:
                return levels[level][index]

            get_cached = functools.lru_cache(maxsize=1 << 16)(get)
            sql = "SELECT idx, ts_ms, type, body, leaf FROM audit_entries WHERE node_id=%s AND idx < %s"
            params: list[Any] = [name, cp.size]
            for cond, value in (("ts_ms >= %s", from_ms), ("ts_ms < %s", to_ms), ("type = %s", event_type)):
                if value is not None:
                    sql += f" AND {cond}"
                    params.append(value)
            for idx, ts, typ, body, leaf in conn.execute(sql + " ORDER BY idx", params):
                e = Entry(int(idx), int(ts), str(typ), bytes(body), bytes(leaf))
                rows.append(_row(name, e, merkle.inclusion_proof(e.index, cp.size, get_cached)))
            manifests[name] = (note, vkey)
    filters = _filters(from_ms, to_ms, type=event_type, node=node, source="central")
    return write_export(out, fmt, iter(rows), manifests, filters, overwrite=overwrite)
