"""Least privilege in the central PostgreSQL store, enforced by the server (real PostgreSQL 15), and the witness.

Node roles may only add their own rows and move their own state forward; keys are registered ahead; the witness
cosigns only consistent checkpoints, and a node's database rolled back or forked is caught against the
cosigned checkpoint it keeps."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from audit_helpers import gate_event, run_cli
from audit_pg import Central

from audit import AuditLog
from audit.ship import ShipUnregistered, central_state, ship
from audit.store import add_witness
from audit.witness import COSIGNED_FILE, load_or_create_witness, witness_central
from cardbound.errors import ExitCode


def _station(home: Path, node: str, start: int, n: int) -> Path:
    with AuditLog.open_station(home, node, checkpoint_every=20) as log:
        log.append_many([gate_event(i) for i in range(start, start + n)])
    return home / "audit" / "audit.sqlite3"


def test_node_b_cannot_touch_node_a(tmp_path: Path, central: Central) -> None:
    a_db = _station(tmp_path / "a", "gate-a", 0, 60)
    _station(tmp_path / "b", "desk-b", 0, 5)
    ship(a_db, central.register(tmp_path / "a", "gate-a"))
    b = central.register(tmp_path / "b", "desk-b")
    before = central_state(central.admin, "gate-a")
    attempts = {
        "insert a row as node A": "INSERT INTO audit_entries(node_id, idx, ts_ms, type, body, leaf) "
                                  "VALUES ('gate-a', 60, 0, 'x', '\\x00', '\\x00')",
        "insert a checkpoint as node A": "INSERT INTO audit_checkpoints(node_id, size, note) VALUES ('gate-a', 99, 'x')",
        "rewrite A's entries": "UPDATE audit_entries SET body = '\\x00' WHERE node_id = 'gate-a'",
        "delete A's entries": "DELETE FROM audit_entries WHERE node_id = 'gate-a'",
        "reset A's state": "UPDATE audit_nodes SET size = 0 WHERE node_id = 'gate-a'",
        "read A's registration": "SELECT vkey FROM audit_nodes",
        "advance A's state": "SELECT cardbound_advance('gate-a', 60, 0, '\\x', NULL, 0)",
        "lock A's state": "SELECT * FROM cardbound_node_state('gate-a')",
        "run DDL": "CREATE TABLE evil(x int)",
        "drop the policies": "ALTER TABLE audit_entries DISABLE ROW LEVEL SECURITY",
    }
    with psycopg.connect(b, autocommit=True) as conn:
        for what, stmt in attempts.items():
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
                conn.execute(stmt)
            print(f"{what}: {err.value.diag.sqlstate} {err.value.diag.message_primary}")
        # Row-level security: A's rows are not even visible to B.
        assert conn.execute("SELECT count(*) FROM audit_entries").fetchone() == (0,)
    assert central_state(central.admin, "gate-a") == before
    # Node A itself cannot rewrite its own shipped history either: append-only for nodes.
    with psycopg.connect(central.as_role("cardbound_node_gate_a"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE audit_entries SET body = '\\x00' WHERE node_id = 'gate-a'")
        assert conn.execute("SELECT count(*) FROM audit_entries").fetchone() == (60,)


def test_unregistered_node_key_is_refused(tmp_path: Path, central: Central, capsys: pytest.CaptureFixture[str]) -> None:
    db = _station(tmp_path / "c", "gate-c", 0, 10)
    b = central.register(_home_with_log(tmp_path / "b", "desk-b"), "desk-b")
    # gate-c was never registered: shipping it (here with desk-b's credentials) is refused by the server.
    with pytest.raises(ShipUnregistered, match="is not registered for node gate-c"):
        ship(db, b)
    # A login role nobody registered: same.
    with psycopg.connect(central.admin, autocommit=True) as conn:
        conn.execute("DO $$ BEGIN CREATE ROLE stranger LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    rc = run_cli(["--home", str(tmp_path / "c"), "audit", "ship", "--dsn", central.as_role("stranger")])
    assert rc == ExitCode.KEYS
    assert "add-node gate-c --key FILE" in capsys.readouterr().err
    assert central_state(central.admin, "gate-c") is None
    # Registered through the command line by the schema owner, it ships.
    pub = tmp_path / "c" / "keys" / "audit-gate-c.ed25519.pub"
    assert run_cli(["audit", "central", "add-node", "gate-c", "--key", str(pub), "--dsn", central.owner]) == 0
    assert "ships as PostgreSQL role cardbound_node_gate_c" in capsys.readouterr().out
    rc = run_cli(["--home", str(tmp_path / "c"), "audit", "ship", "--dsn", central.as_role("cardbound_node_gate_c")])
    assert rc == 0 and "shipped 10 entries" in capsys.readouterr().out
    # A key file of another node is not registered under this name.
    other = tmp_path / "b" / "keys" / "audit-desk-b.ed25519.pub"
    assert run_cli(["audit", "central", "add-node", "gate-c", "--key", str(other), "--dsn", central.owner]) == ExitCode.KEYS


def _home_with_log(home: Path, node: str) -> Path:
    _station(home, node, 0, 1)
    return home


# --- the witness ---------------------------------------------------------------------------------------------


def _witness(tmp_path: Path, central: Central) -> tuple[str, Path]:
    with psycopg.connect(central.admin, autocommit=True) as conn:
        conn.execute("DO $$ BEGIN CREATE ROLE witness_w1 LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    add_witness(central.owner, "witness_w1")
    key = tmp_path / "witness" / "witness.ed25519"
    load_or_create_witness(key, "cardbound-witness")
    return central.as_role("witness_w1"), key


def test_rolled_back_database_is_caught_against_the_witness(
    tmp_path: Path, central: Central, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "gate"
    db = _station(home, "gate-a", 0, 40)
    node_dsn = central.register(home, "gate-a")
    witness_dsn, wkey = _witness(tmp_path, central)
    old = tmp_path / "old.sqlite3"
    shutil.copy(db, old)  # an older copy of the node's database, size 40
    _station(home, "gate-a", 40, 35)
    ship(db, node_dsn)
    done, refused = witness_central(witness_dsn, load_or_create_witness(wkey, "cardbound-witness"))
    assert [(c.node_id, c.size) for c in done] == [("gate-a", 75)] and refused == []
    assert ship(db, node_dsn).cosigned is not None  # the node now keeps the cosigned checkpoint
    kept = home / "audit" / COSIGNED_FILE
    assert kept.is_file() and "— cardbound-witness " in kept.read_text()
    wpub = f"{wkey}.pub"
    rc = run_cli(["--home", str(home), "audit", "verify", "--witness-key", wpub])
    assert rc == 0, capsys.readouterr()
    capsys.readouterr()

    shutil.copy(old, db)  # roll the database back; nobody kept a checkpoint by hand
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    rc = run_cli(["--home", str(home), "audit", "verify", "--witness-key", wpub])
    err = capsys.readouterr().err
    assert rc == ExitCode.AUDIT
    assert "ROLLED-BACK: database rolled back to an older copy: it holds 40 entries" in err
    assert "cosigned by the witness" in err and "covers 75" in err

    # The kept file gone too: said so (a warning), since only the central store can tell now.
    saved = kept.read_text()
    kept.unlink()
    run_cli(["--home", str(home), "audit", "verify", "--witness-key", wpub])
    assert "NO-COSIGNED-CHECKPOINT: no cosigned checkpoint kept beside the log" in capsys.readouterr().out
    kept.write_text(saved)

    # A forged cosignature line on the kept checkpoint is named too.
    text = kept.read_text()
    line = [ln for ln in text.splitlines() if ln.startswith("— cardbound-witness ")][0]
    kept.write_text(text.replace(line, line[:-8] + "AAAAAAA="))
    rc = run_cli(["--home", str(home), "audit", "verify", "--witness-key", wpub])
    assert "BAD-COSIGNATURE: the kept cosigned checkpoint carries no valid cosignature" in capsys.readouterr().err


def test_witness_refuses_a_rewritten_central_history(tmp_path: Path, central: Central) -> None:
    home = tmp_path / "gate"
    db = _station(home, "gate-a", 0, 40)
    node_dsn = central.register(home, "gate-a")
    witness_dsn, wkey = _witness(tmp_path, central)
    witness = load_or_create_witness(wkey, "cardbound-witness")
    ship(db, node_dsn)
    assert [c.size for c in witness_central(witness_dsn, witness)[0]] == [40]
    # The central store restored from an older backup (state back at size 20): not cosigned, named.
    with psycopg.connect(central.admin, autocommit=True) as conn:
        conn.execute("UPDATE audit_nodes SET size=20, checkpoint=(SELECT note FROM audit_checkpoints "
                     "WHERE node_id='gate-a' AND size=20) WHERE node_id='gate-a'")
    done, refused = witness_central(witness_dsn, witness)
    assert done == [] and refused == ["node gate-a: central tree of size 20 is smaller than the one cosigned "
                                      "before (40): rolled back"]
    # ... and `audit verify --dsn` names it too, once the restored copy is self-consistent (entries cut to 20).
    with psycopg.connect(central.admin, autocommit=True) as conn:
        conn.execute("DELETE FROM audit_checkpoints WHERE node_id='gate-a' AND size > 20")
        conn.execute("DELETE FROM audit_entries WHERE node_id='gate-a' AND idx >= 20")
    from audit.central import verify_central

    (report,) = verify_central(central.owner)
    rolled = [f for f in report.findings if f.code == "rolled-back"]
    assert len(rolled) == 1 and "cosigned by witness cardbound-witness (central store)" in rolled[0].message
    # Someone with full rights on the store replaces the node's history and state with another, validly
    # signed one (e.g. the node key was stolen): the witness does not cosign the fork.
    fork = tmp_path / "fork"
    shutil.copytree(home / "keys", fork / "keys")
    fdb = _station(fork, "gate-a", 1000, 60)
    with psycopg.connect(central.admin, autocommit=True) as conn:
        conn.execute("DELETE FROM audit_checkpoints WHERE node_id='gate-a'")
        conn.execute("DELETE FROM audit_entries WHERE node_id='gate-a'")
        conn.execute("UPDATE audit_nodes SET size=0, frontier='', checkpoint=NULL WHERE node_id='gate-a'")
    ship(fdb, node_dsn)
    done, refused = witness_central(witness_dsn, witness)
    assert done == [] and len(refused) == 1
    assert "not consistent with the one cosigned at size 40 (history rewritten: fork)" in refused[0]
