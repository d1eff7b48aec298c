"""Retention: refuse > 10 years, purge a prefix, keep the remainder verifiable, audit the purge."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from audit_helpers import gate_event, run_cli

from audit import AuditLog, merkle
from audit.checkpoint import parse_checkpoint
from audit.retention import DAY_MS, MAX_RETENTION_DAYS, PurgeRefused, RetentionError, parse_retention, purge
from audit.ship import record_shipped
from audit.verify import verify_database
from cardbound.errors import ExitCode

NODE = "gate-07"
T0 = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@pytest.mark.parametrize(
    ("text", "days"), [("90", 90), ("90d", 90), ("18m", 548), ("5y", 1826), ("120m", 3652), ("10y", 3652)]
)
def test_parse_retention(text: str, days: int) -> None:
    assert parse_retention(text) == days


@pytest.mark.parametrize("text", ["3653", "11y", "121m", "0", "-5", "forever", "5w"])
def test_retention_above_ten_years_or_nonsense_refused(text: str) -> None:
    with pytest.raises(RetentionError):
        parse_retention(text)
    assert MAX_RETENTION_DAYS == 3652


def _aged_log(tmp_path: Path, clock: Clock, shipped: bool = True) -> AuditLog:
    log = AuditLog.open_station(tmp_path, NODE, checkpoint_every=16, clock=clock)
    for day in range(100):  # 7 events a day for 100 days
        clock.now = T0 + day * DAY_MS
        log.append_many([gate_event(day * 7 + j) for j in range(7)])
    if shipped:  # as if `audit ship` had delivered everything (retention never purges unshipped entries unforced)
        record_shipped(log.path, log.size)
    return log


DB = Path("audit") / "audit.sqlite3"


def _codes(path: Path) -> list[str]:
    return [f.code for f in verify_database(path).findings if f.code != "key-from-log"]


def test_purge_keeps_remainder_verifiable_and_is_audited(tmp_path: Path) -> None:
    clock = Clock()
    log = _aged_log(tmp_path, clock)
    clock.now = T0 + 100 * DAY_MS
    result = purge(log, 30, operator_id="op-1")
    assert result.removed == 70 * 7 and result.first_kept == 490
    assert [e.index for e in log.entries()][0] == 490
    last = log.entry(log.size - 1).record()
    assert last["type"] == "retention.purge"
    assert last["payload"]["purged_entries"] == 490 and last["payload"]["first_kept_index"] == 490
    note = log.checkpoint()
    cp = parse_checkpoint(note, log.verifier_key)
    # Inclusion of every kept entry, including the first one right after the pruned prefix.
    for i in (490, 491, 500, 511, 512, cp.size - 1):
        merkle.verify_inclusion(i, cp.size, log.entry(i).leaf, log.inclusion_proof(i, cp.size), cp.root)
    # Consistency from the signed pruning checkpoint to now.
    pruning = [n for s, kind, n in log.checkpoints() if kind == "pruning"]
    assert len(pruning) == 1
    pcp = parse_checkpoint(pruning[0], log.verifier_key)
    assert pcp.size == 490 and pcp.extensions == ("pruning",)
    merkle.verify_consistency(490, cp.size, pcp.root, cp.root, log.consistency_proof(490, cp.size))
    log.close()
    report = verify_database(tmp_path / "audit" / "audit.sqlite3")
    assert report.ok and report.pruned == 490, [f.line() for f in report.findings]
    # Purging again with the same period removes nothing more but is still recorded.
    with AuditLog.open_station(tmp_path, NODE, clock=clock) as log2:
        size = log2.size
        assert purge(log2, 30).removed == 0
        assert log2.size == size + 1


def test_tampered_pruned_frontier_detected(tmp_path: Path) -> None:
    clock = Clock()
    log = _aged_log(tmp_path, clock)
    clock.now = T0 + 100 * DAY_MS
    purge(log, 30)
    conn = log.connection
    blob = conn.execute("SELECT value FROM meta WHERE key='pruned_frontier'").fetchone()[0]
    first = blob.split(",")[0]
    conn.execute("UPDATE meta SET value=? WHERE key='pruned_frontier'", (blob.replace(first, "A" * 43 + "=", 1),))
    log.close()
    report = verify_database(tmp_path / "audit" / "audit.sqlite3")
    assert not report.ok
    assert any(f.code == "root-mismatch" for f in report.findings)
    assert "forged-frontier" in [f.code for f in report.findings]


def test_purge_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = Clock()
    _aged_log(tmp_path, clock, shipped=False).close()
    assert run_cli(["--home", str(tmp_path), "audit", "purge", "--retention", "11y"]) == ExitCode.CONFIG
    assert "exceeds the 10-year maximum" in capsys.readouterr().err
    assert run_cli(["--home", str(tmp_path), "audit", "purge"]) == ExitCode.CONFIG
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "audit.json").write_text('{"retention_days": 3650}')
    assert run_cli(["--home", str(tmp_path), "audit", "purge"]) == 0  # nothing is 10 years old: everything stays
    assert "purged 0 entries" in capsys.readouterr().out
    assert run_cli(["--home", str(tmp_path), "audit", "purge", "--retention", "1d"]) == ExitCode.FAILURE
    assert "700 of the entries to purge have not been shipped" in capsys.readouterr().err
    assert run_cli(["--home", str(tmp_path), "audit", "purge", "--retention", "1d", "--force"]) == 0
    assert "purged 700 entries" in capsys.readouterr().out  # the first purge record (today) stays
    assert run_cli(["--home", str(tmp_path), "audit", "verify"]) == 0
    out = capsys.readouterr().out
    assert "FORCED-PURGE: entry" in out and "unshipped entries: 700" in out


# --- pruning must be proven: each way of faking it is named ----------------------------------------------------


def _frontier_blob(conn: sqlite3.Connection, size: int) -> str:
    """What an attacker with write access but no key can compute: the frontier from the public leaf hashes."""
    import base64

    leaves = [bytes(r[0]) for r in conn.execute("SELECT leaf FROM entries WHERE idx < ? ORDER BY idx", (size,))]
    levels = merkle.build_levels(leaves)
    return ",".join(base64.b64encode(levels[lv][ix]).decode() for lv, ix in merkle.decompose(size))


def test_prefix_deleted_with_forged_frontier_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's reproduction: entries 0-39 of 50 deleted, frontier written from the public leaf hashes."""
    with AuditLog.open_station(tmp_path, NODE, checkpoint_every=10) as log:
        log.append_many([gate_event(i) for i in range(50)])
    kept = [n for _s, _k, n in AuditLog.open_station(tmp_path, NODE).checkpoints()]
    for i, note in enumerate(kept):
        (tmp_path / f"cp{i}.txt").write_text(note)
    with sqlite3.connect(tmp_path / DB, isolation_level=None) as db:
        blob = _frontier_blob(db, 40)
        db.execute("INSERT INTO meta(key, value) VALUES ('pruned_size', '40'), ('pruned_frontier', ?)", (blob,))
        db.execute("DELETE FROM entries WHERE idx < 40")
    pub = tmp_path / "keys" / f"audit-{NODE}.ed25519.pub"
    args = ["--home", str(tmp_path), "audit", "verify", "--key", str(pub)]
    for i in range(len(kept)):
        args += ["--checkpoint", str(tmp_path / f"cp{i}.txt")]
    assert run_cli(args) == ExitCode.AUDIT
    err = capsys.readouterr().err
    assert "PRUNING-UNPROVEN: entries 0-39 are missing and no signed pruning checkpoint at size 40" in err
    assert "PURGE-EVENT-MISSING: no retention.purge event with first_kept_index 40" in err


def test_pruned_size_moved_past_the_pruning_checkpoint_is_named(tmp_path: Path) -> None:
    clock = Clock()
    log = _aged_log(tmp_path, clock)
    clock.now = T0 + 100 * DAY_MS
    purge(log, 30)  # proper purge at 490
    log.close()
    with sqlite3.connect(tmp_path / DB, isolation_level=None) as db:
        # Reconstruct the interior of the kept prefix from stored nodes and leaves, then cut 14 more.
        reader = AuditLog.open_station(tmp_path, NODE, clock=clock)
        import base64

        blob = ",".join(base64.b64encode(reader.tree().node(lv, ix)).decode() for lv, ix in merkle.decompose(504))
        reader.close()
        db.execute("UPDATE meta SET value='504' WHERE key='pruned_size'")
        db.execute("UPDATE meta SET value=? WHERE key='pruned_frontier'", (blob,))
        db.execute("DELETE FROM entries WHERE idx < 504")
    codes = _codes(tmp_path / DB)
    assert "pruning-wrong-size" in codes
    assert "purge-event-missing" in codes  # the purge event says first_kept_index 490


def test_deleted_purge_event_is_named(tmp_path: Path) -> None:
    clock = Clock()
    log = _aged_log(tmp_path, clock)
    clock.now = T0 + 100 * DAY_MS
    purge(log, 30)
    size = log.size
    log.close()
    with sqlite3.connect(tmp_path / DB, isolation_level=None) as db:
        # Remove the purge record and the checkpoint that covers it, and make the metadata agree: the cover-up
        # that a plain truncation check cannot see.
        (idx,) = db.execute("SELECT idx FROM entries WHERE type='retention.purge'").fetchone()
        assert idx == size - 1
        db.execute("DELETE FROM entries WHERE idx=?", (idx,))
        db.execute("DELETE FROM checkpoints WHERE size > ?", (idx,))
        db.execute("UPDATE meta SET value=? WHERE key='size'", (str(idx),))
    report = verify_database(tmp_path / DB)
    assert [f.code for f in report.findings if f.severity == "error"] == ["purge-event-missing"]


def test_purge_refuses_a_clock_behind_the_latest_checkpoint(tmp_path: Path) -> None:
    clock = Clock()
    log = _aged_log(tmp_path, clock)
    log.checkpoint()  # signed at day 99
    size = log.size
    with pytest.raises(PurgeRefused, match="behind the latest signed checkpoint"):
        purge(log, 30, now=T0 + 60 * DAY_MS)  # clock set back 39 days
    assert log.size == size and _codes(tmp_path / DB) == []  # nothing written
    result = purge(log, 30, now=T0 + 60 * DAY_MS, force=True)
    assert result.first_kept == 210
    rec = log.entry(log.size - 1).record()["payload"]
    assert rec["forced"] is True and rec["clock_behind_ms"] == 39 * DAY_MS
    log.close()
    assert "forced-purge" in _codes(tmp_path / DB)


def test_purge_refuses_to_cut_unshipped_entries(tmp_path: Path) -> None:
    clock = Clock()
    log = _aged_log(tmp_path, clock, shipped=False)
    record_shipped(log.path, 300)
    clock.now = T0 + 100 * DAY_MS
    with pytest.raises(PurgeRefused, match="190 of the entries to purge have not been shipped"):
        purge(log, 30)
    assert purge(log, 60).first_kept == 280  # within what was shipped: allowed
    log.close()
