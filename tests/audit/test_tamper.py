"""`cardbound audit verify` detects each kind of tampering AND names it (one line per finding, exit AUDIT)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from audit_helpers import gate_event, run_cli

from audit import AuditLog, merkle
from cardbound.errors import ExitCode

NODE = "gate-07"


def _fill(home: Path, start: int, n: int) -> None:
    with AuditLog.open_station(home, NODE, checkpoint_every=10) as log:
        for i in range(start, start + n):
            log.append(gate_event(i))


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    _fill(tmp_path, 0, 50)
    return tmp_path


def _db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "audit" / "audit.sqlite3", isolation_level=None)


def _verify(home: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    rc = run_cli(["--home", str(home), "audit", "verify", *extra])
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_clean_log_verifies(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, text = _verify(home, capsys)
    assert rc == 0, text
    assert "OK audit log of node gate-07: 50 entries" in text
    assert "5 signed checkpoints verified" in text


def test_modified_entry_named(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with _db(home) as db:
        body = db.execute("SELECT body FROM entries WHERE idx=17").fetchone()[0]
        db.execute("UPDATE entries SET body=? WHERE idx=17", (body.replace(b'"granted"', b'"refused"'),))
    rc, text = _verify(home, capsys)
    assert rc == ExitCode.AUDIT
    assert "MODIFIED: entries 17 modified" in text


def test_modified_entry_with_recomputed_hash_is_localised(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with _db(home) as db:
        body = db.execute("SELECT body FROM entries WHERE idx=17").fetchone()[0]
        forged = body.replace(b'"granted"', b'"refused"')
        db.execute("UPDATE entries SET body=?, leaf=? WHERE idx=17", (forged, merkle.leaf_hash(forged)))
    rc, text = _verify(home, capsys)
    assert rc == ExitCode.AUDIT
    assert "ROOT-MISMATCH: checkpoint at size 20" in text and "entries 10-19 altered" in text
    assert "checkpoint at size 10" not in text  # the earlier checkpoint still matches


def test_deleted_entry_named(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with _db(home) as db:
        db.execute("DELETE FROM entries WHERE idx=23")
    rc, text = _verify(home, capsys)
    assert rc == ExitCode.AUDIT
    assert "DELETED: entries 23 deleted" in text


def test_swapped_entries_named(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with _db(home) as db:
        a = db.execute("SELECT ts_ms, type, body, leaf FROM entries WHERE idx=30").fetchone()
        b = db.execute("SELECT ts_ms, type, body, leaf FROM entries WHERE idx=31").fetchone()
        db.execute("UPDATE entries SET ts_ms=?, type=?, body=?, leaf=? WHERE idx=30", b)
        db.execute("UPDATE entries SET ts_ms=?, type=?, body=?, leaf=? WHERE idx=31", a)
    rc, text = _verify(home, capsys)
    assert rc == ExitCode.AUDIT
    assert "REORDERED: entries 30 and 31 swapped" in text
    assert "MODIFIED" not in text


def test_truncated_tail_against_external_checkpoint(
    home: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = tmp_path_factory.mktemp("elsewhere") / "cp.txt"
    assert run_cli(["--home", str(home), "audit", "checkpoint", "--out", str(kept)]) == 0
    with _db(home) as db:  # a careful attacker removes the tail AND the checkpoints that cover it
        db.execute("DELETE FROM entries WHERE idx >= 44")
        db.execute("DELETE FROM checkpoints WHERE size > 40")
    rc, text = _verify(home, capsys, "--checkpoint", str(kept))
    assert rc == ExitCode.AUDIT
    assert "TRUNCATED: tail truncated: entries 44-49 missing" in text


def test_bad_checkpoint_signature_named(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with _db(home) as db:
        note = db.execute("SELECT note FROM checkpoints WHERE size=30").fetchone()[0]
        sig = note.rsplit(" ", 1)[1]
        bad = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
        db.execute("UPDATE checkpoints SET note=? WHERE size=30", (note.replace(sig, bad),))
    rc, text = _verify(home, capsys)
    assert rc == ExitCode.AUDIT
    assert "BAD-SIGNATURE: checkpoint at size 30" in text


def test_forged_external_checkpoint_refused(
    home: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = tmp_path_factory.mktemp("elsewhere") / "cp.txt"
    assert run_cli(["--home", str(home), "audit", "checkpoint", "--out", str(kept)]) == 0
    lines = kept.read_text().split("\n")
    lines[1] = "60"  # claim a bigger tree under the old signature
    kept.write_text("\n".join(lines))
    rc, text = _verify(home, capsys, "--checkpoint", str(kept))
    assert rc == ExitCode.AUDIT
    assert f"BAD-SIGNATURE: checkpoint {kept}" in text


def test_rolled_back_database_named(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = home / "audit" / "audit.sqlite3"
    old = tmp_path / "old-copy.sqlite3"
    shutil.copy(db, old)  # the log is closed: WAL folded into the main file
    _fill(home, 50, 25)
    kept = tmp_path / "cp.txt"
    assert run_cli(["--home", str(home), "audit", "checkpoint", "--out", str(kept)]) == 0
    shutil.copy(old, db)
    rc, text = _verify(home, capsys, "--checkpoint", str(kept))
    assert rc == ExitCode.AUDIT
    assert "ROLLED-BACK: database rolled back to an older copy: it holds 50 entries" in text
    assert "covers 75" in text
    # Without the checkpoint kept elsewhere, an older copy is indistinguishable from a shorter log.
    rc, _ = _verify(home, capsys)
    assert rc == 0


def test_missing_or_garbage_database_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = run_cli(["--home", str(tmp_path), "audit", "verify"])
    assert rc == ExitCode.INPUT
    (tmp_path / "junk").write_bytes(b"not sqlite" * 100)
    rc = run_cli(["--home", str(tmp_path), "audit", "verify", "--db", str(tmp_path / "junk")])
    assert rc == ExitCode.AUDIT
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 2


def test_sql_edit_that_changes_column_type_is_named(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # SQLite's replace() on a BLOB yields TEXT: the verifier must hash what is there, not crash.
    with _db(home) as db:
        db.execute("UPDATE entries SET body=replace(body, 'granted', 'refused') WHERE idx=17")
    rc, text = _verify(home, capsys)
    assert rc == ExitCode.AUDIT
    assert "MODIFIED: entries 17 modified" in text and "Traceback" not in text


def test_several_tamperings_each_named_once(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with _db(home) as db:
        db.execute("DELETE FROM entries WHERE idx=23")
        a = db.execute("SELECT ts_ms, type, body, leaf FROM entries WHERE idx=30").fetchone()
        b = db.execute("SELECT ts_ms, type, body, leaf FROM entries WHERE idx=31").fetchone()
        db.execute("UPDATE entries SET ts_ms=?, type=?, body=?, leaf=? WHERE idx=30", b)
        db.execute("UPDATE entries SET ts_ms=?, type=?, body=?, leaf=? WHERE idx=31", a)
        body = db.execute("SELECT body FROM entries WHERE idx=7").fetchone()[0]
        db.execute("UPDATE entries SET body=? WHERE idx=7", (body.replace(b'"granted"', b'"refused"'),))
    rc, text = _verify(home, capsys)
    assert rc == ExitCode.AUDIT
    lines = [ln for ln in text.splitlines() if ":" in ln and ln.split(":")[0].isupper()]
    assert lines[:3] == [
        "DELETED: entries 23 deleted (gap in the log)",
        "MODIFIED: entries 7 modified: content does not match its recorded hash",
        "REORDERED: entries 30 and 31 swapped",
    ]
    assert "content of entries 0-9 altered" in text  # the first checkpoint that no longer matches
    assert "TRUNCATED" not in text  # the shorter log is explained by the deletion


def test_query_columns_out_of_step_with_content_named(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Moving an entry out of a time window (or changing its type column) would hide it from filtered exports.
    with _db(home) as db:
        db.execute("UPDATE entries SET ts_ms = ts_ms - 86400000 WHERE idx=5")
        db.execute("UPDATE entries SET type = 'operator.login' WHERE idx=6")
    rc, text = _verify(home, capsys)
    assert rc == ExitCode.AUDIT
    assert "COLUMN-MISMATCH: entries 5-6: time/type columns differ from the signed content" in text


def test_bulk_sql_checks_agree_with_python_checks(home: Path) -> None:
    import dataclasses

    from audit.verify import load_sqlite, verify_data

    with _db(home) as db:
        a = db.execute("SELECT ts_ms, type, body, leaf FROM entries WHERE idx=30").fetchone()
        b = db.execute("SELECT ts_ms, type, body, leaf FROM entries WHERE idx=31").fetchone()
        db.execute("UPDATE entries SET ts_ms=?, type=?, body=?, leaf=? WHERE idx=30", b)
        db.execute("UPDATE entries SET ts_ms=?, type=?, body=?, leaf=? WHERE idx=31", a)
        db.execute("UPDATE entries SET ts_ms = ts_ms + 1 WHERE idx=12")
        db.execute("UPDATE entries SET body=replace(body, 'granted', 'refused') WHERE idx=17")
        data = load_sqlite(db)
        cols = [(int(t), str(ty)) for t, ty in db.execute("SELECT ts_ms, type FROM entries ORDER BY idx")]
    assert data.misplaced == [30, 31] and data.column_mismatch == [12]
    in_python = dataclasses.replace(data, misplaced=None, column_mismatch=None, columns=cols)
    assert [f.line() for f in verify_data(data, None).findings] == [
        f.line() for f in verify_data(in_python, None).findings
    ]
