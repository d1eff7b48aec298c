"""Shipping to a real PostgreSQL: idempotent, resumable across a server restart, chain checked on arrival.

Every shipment runs as the node's own least-privilege role (registered ahead by the schema owner), never as a
superuser; `central.admin` (superuser) only inspects."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from audit_helpers import gate_event, run_cli
from audit_pg import Central, PgServer, make_central

from audit import AuditLog, merkle
from audit.ship import ShipError, ShipRejected, ShipUnregistered, central_state, ship
from cardbound.errors import ExitCode

NODE = "gate-07"


def _log(home: Path, start: int, n: int, every: int = 100) -> Path:
    with AuditLog.open_station(home, NODE, checkpoint_every=every) as log:
        log.append_many([gate_event(i) for i in range(start, start + n)])
    return home / "audit" / "audit.sqlite3"


def _central(dsn: str) -> list[tuple[int, bytes]]:
    with psycopg.connect(dsn) as conn:
        return [(int(i), bytes(b)) for i, b in conn.execute(
            "SELECT idx, body FROM audit_entries WHERE node_id=%s ORDER BY idx", (NODE,))]


def _local(db: Path) -> list[tuple[int, bytes]]:
    conn = sqlite3.connect(db)
    try:
        return [(int(i), bytes(b)) for i, b in conn.execute("SELECT idx, body FROM entries ORDER BY idx")]
    finally:
        conn.close()


def test_ship_is_idempotent_and_incremental(
    tmp_path: Path, central: Central, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _log(tmp_path, 0, 250)
    pg_dsn = central.register(tmp_path, NODE)
    assert run_cli(["--home", str(tmp_path), "audit", "ship", "--dsn", pg_dsn]) == 0
    assert "shipped 250 entries" in capsys.readouterr().out
    assert run_cli(["--home", str(tmp_path), "audit", "ship", "--dsn", pg_dsn]) == 0
    assert "shipped 0 entries of node gate-07; central store holds 250" in capsys.readouterr().out
    _log(tmp_path, 250, 30)
    assert run_cli(["--home", str(tmp_path), "audit", "ship", "--dsn", pg_dsn]) == 0
    assert _central(central.admin) == _local(db)
    with AuditLog.open_station(tmp_path, NODE) as log:
        assert central_state(central.admin, NODE) == (280, log.root())


def test_server_restart_mid_shipment_loses_and_duplicates_nothing(
    tmp_path: Path, pg_server: PgServer
) -> None:
    store = make_central(pg_server)
    db = _log(tmp_path, 0, 3000, every=50)
    dsn = store.register(tmp_path, NODE)
    stopped: list[int] = []

    def stop_server_after_some_chunks(size: int) -> None:
        # The shipper has committed a chunk and still holds its session: the server goes down under it.
        if size >= 600 and not stopped:
            stopped.append(size)
            pg_server.stop()

    try:
        with pytest.raises(ShipError, match="lost|unreachable"):
            ship(db, dsn, max_batch=50, on_commit=stop_server_after_some_chunks)
    finally:
        pg_server.start()
    assert stopped == [600]
    partial = _central(store.admin)
    assert 600 <= len(partial) < 3000
    assert [i for i, _ in partial] == list(range(len(partial)))
    result = ship(db, dsn, max_batch=500)
    assert result.shipped == 3000 - len(partial)
    assert _central(store.admin) == _local(db)  # nothing lost, nothing duplicated
    assert ship(db, dsn).shipped == 0
    with AuditLog.open_station(tmp_path, NODE) as log:
        assert central_state(store.admin, NODE) == (3000, log.root())


def test_unreachable_server_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _log(tmp_path, 0, 5)
    bad = "host=127.0.0.1 port=1 user=x connect_timeout=2"
    rc = run_cli(["--home", str(tmp_path), "audit", "ship", "--dsn", bad])
    assert rc == ExitCode.AUDIT_STORE_UNREACHABLE  # 61: its own code, not 60 ("tampered")
    assert int(ExitCode.AUDIT_STORE_UNREACHABLE) != int(ExitCode.AUDIT)
    err = capsys.readouterr().err
    assert "central store unreachable" in err and "run again to resume" in err and "Traceback" not in err
    for argv in (["verify", "--dsn", bad], ["export", "--dsn", bad, "--out", str(tmp_path / "x.jsonl")],
                 ["central", "init", "--dsn", bad]):
        assert run_cli(["--home", str(tmp_path), "audit", *argv]) == ExitCode.AUDIT_STORE_UNREACHABLE, argv
        assert "central store unreachable" in capsys.readouterr().err


def test_rewritten_history_is_refused_on_arrival(tmp_path: Path, central: Central) -> None:
    db = _log(tmp_path, 0, 200)
    pg_dsn = central.register(tmp_path, NODE)
    ship(db, pg_dsn)
    # The node's database is replaced by a different history signed with the same key (e.g. restored and
    # re-written): its new checkpoints do not extend what the centre already holds.
    conn = sqlite3.connect(db, isolation_level=None)
    body = conn.execute("SELECT body FROM entries WHERE idx=151").fetchone()[0]
    forged = body.replace(b'"granted"', b'"refused"').replace(b'"match"', b'"no-match"')
    assert forged != body
    conn.execute("UPDATE entries SET body=?, leaf=? WHERE idx=151", (forged, merkle.leaf_hash(forged)))
    conn.close()
    with AuditLog.open_station(tmp_path, NODE, checkpoint_every=100) as log:
        # Rebuild the node's stored tree so the forger's log is internally consistent, then extend it.
        leaves = [e.leaf for e in log.entries()]
        levels = merkle.build_levels(leaves)
        log.connection.execute("DELETE FROM nodes")
        log.connection.executemany(
            "INSERT INTO nodes(level, idx, hash) VALUES (?,?,?)",
            [(lv, ix, h) for lv in range(1, len(levels)) for ix, h in enumerate(levels[lv])],
        )
        log.connection.execute("DELETE FROM checkpoints WHERE size > 100")
    with AuditLog.open_station(tmp_path, NODE, checkpoint_every=100) as log:
        log.append_many([gate_event(i) for i in range(200, 300)])
    with pytest.raises(ShipRejected, match="does not extend the central tree of size 200"):
        ship(db, pg_dsn)
    assert len(_central(central.admin)) == 200


def test_other_key_for_known_node_refused(tmp_path: Path, central: Central) -> None:
    db = _log(tmp_path / "a", 0, 10)
    pg_dsn = central.register(tmp_path / "a", NODE)
    ship(db, pg_dsn)
    with pytest.raises(ShipUnregistered, match="differs from the key registered"):
        ship(_log(tmp_path / "b", 0, 10), pg_dsn)


def test_central_store_verifies_and_exports(
    tmp_path: Path, central: Central, capsys: pytest.CaptureFixture[str]
) -> None:
    pg_dsn = central.owner  # the auditor's reading role: the schema owner
    for node in ("gate-07", "desk-01"):
        with AuditLog.open_station(tmp_path / node, node, checkpoint_every=40) as log:
            log.append_many([gate_event(i) for i in range(100)])
        ship(tmp_path / node / "audit" / "audit.sqlite3", central.register(tmp_path / node, node))
    assert run_cli(["--home", str(tmp_path), "audit", "verify", "--dsn", pg_dsn]) == 0
    out = capsys.readouterr().out
    assert "OK audit log of node desk-01: 100 entries" in out and "OK audit log of node gate-07: 100 entries" in out

    export = tmp_path / "central.jsonl"
    assert run_cli(["--home", str(tmp_path), "audit", "export", "--dsn", pg_dsn, "--out", str(export),
                    "--type", "gate.decision"]) == 0
    assert "exported 200 entries" in capsys.readouterr().out
    keys = [str(tmp_path / n / "keys" / f"audit-{n}.ed25519.pub") for n in ("gate-07", "desk-01")]
    assert run_cli(["audit", "verify-export", str(export), "--key", keys[0], "--key", keys[1]]) == 0
    assert "200 of 200 rows verified" in capsys.readouterr().out

    # Someone with write access to the central tables alters a shipped entry: named on verification.
    with psycopg.connect(central.admin, autocommit=True) as conn:
        conn.execute("UPDATE audit_entries SET body = convert_to(replace(convert_from(body, 'UTF8'), 'gate-07', "
                     "'gate-08'), 'UTF8') WHERE node_id='desk-01' AND idx=42")
    assert run_cli(["--home", str(tmp_path), "audit", "verify", "--dsn", pg_dsn]) == ExitCode.AUDIT
    err = capsys.readouterr().err
    assert "MODIFIED: entries 42 modified" in err and "node desk-01 FAILED" in err


def test_shipper_killed_mid_shipment_resumes(tmp_path: Path, central: Central) -> None:
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    db = _log(tmp_path, 0, 2000, every=20)
    pg_dsn = central.register(tmp_path, NODE)
    for threshold in (200, 800):
        if threading.active_count() == 1:
            pid = os.fork()
            if pid == 0:  # the shipper process, killed while it works
                try:
                    ship(db, pg_dsn, max_batch=20, on_commit=lambda _size: time.sleep(0.01))
                finally:
                    os._exit(0)
        else:  # forking a multi-threaded process is unsafe: a fresh interpreter instead
            code = ("import sys, time; from audit.ship import ship; "
                    "ship(sys.argv[1], sys.argv[2], max_batch=20, on_commit=lambda s: time.sleep(0.01))")
            pid = subprocess.Popen([sys.executable, "-c", code, str(db), pg_dsn]).pid
        deadline = time.monotonic() + 60
        while (central_state(central.admin, NODE) or (0, b""))[0] < threshold and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)  # mid-shipment: about 100 chunks of 10+ ms each remain
        os.waitpid(pid, 0)
    partial = len(_central(central.admin))
    assert 800 <= partial < 2000, partial
    assert ship(db, pg_dsn, max_batch=20).shipped == 2000 - partial
    assert _central(central.admin) == _local(db)


def test_ship_after_local_purge(tmp_path: Path, central: Central) -> None:
    from audit.retention import DAY_MS, purge

    now = [1_700_000_000_000]
    with AuditLog.open_station(tmp_path, NODE, checkpoint_every=50, clock=lambda: now[0]) as log:
        pg_dsn = central.register(tmp_path, NODE)
        log.append_many([gate_event(i) for i in range(120)])
        log.checkpoint()  # what `cardbound audit ship` does first: only signed entries ship
        ship(tmp_path / "audit" / "audit.sqlite3", pg_dsn)
        now[0] += 40 * DAY_MS
        log.append_many([gate_event(i) for i in range(120, 150)])
        purge(log, 30)  # the first 120 go locally; the centre keeps them
        log.append_many([gate_event(i) for i in range(150, 170)])
    ship(tmp_path / "audit" / "audit.sqlite3", pg_dsn)
    rows = _central(central.admin)
    assert [i for i, _ in rows] == list(range(171))  # 170 events + the purge record
    assert run_cli(["--home", str(tmp_path), "audit", "verify", "--dsn", central.owner]) == 0


def test_entries_purged_before_shipping_are_reported(tmp_path: Path, central: Central) -> None:
    from audit.retention import DAY_MS, purge

    now = [1_700_000_000_000]
    db = tmp_path / "audit" / "audit.sqlite3"
    with AuditLog.open_station(tmp_path, NODE, checkpoint_every=50, clock=lambda: now[0]) as log:
        log.append_many([gate_event(i) for i in range(60)])
    pg_dsn = central.register(tmp_path, NODE)
    ship(db, pg_dsn)
    with AuditLog.open_station(tmp_path, NODE, checkpoint_every=50, clock=lambda: now[0]) as log:
        log.append_many([gate_event(i) for i in range(60, 100)])
        now[0] += 40 * DAY_MS
        log.append(gate_event(100))
        from audit.retention import PurgeRefused

        with pytest.raises(PurgeRefused, match="40 of the entries to purge have not been shipped"):
            purge(log, 30)  # the node knows what the centre acknowledged (60)
        purge(log, 30, force=True)  # removes 0..99, of which 60..99 never reached the centre
    with pytest.raises(ShipRejected, match="entries 60-99 were pruned locally before being shipped"):
        ship(db, pg_dsn)
