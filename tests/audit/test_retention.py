"""Retention: refuse > 10 years, purge a prefix, keep the remainder verifiable, audit the purge."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_helpers import gate_event, run_cli

from audit import AuditLog, merkle
from audit.checkpoint import parse_checkpoint
from audit.retention import DAY_MS, MAX_RETENTION_DAYS, RetentionError, parse_retention, purge
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


def _aged_log(tmp_path: Path, clock: Clock) -> AuditLog:
    log = AuditLog.open_station(tmp_path, NODE, checkpoint_every=16, clock=clock)
    for day in range(100):  # 7 events a day for 100 days
        clock.now = T0 + day * DAY_MS
        log.append_many([gate_event(day * 7 + j) for j in range(7)])
    return log


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


def test_purge_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = Clock()
    _aged_log(tmp_path, clock).close()
    assert run_cli(["--home", str(tmp_path), "audit", "purge", "--retention", "11y"]) == ExitCode.CONFIG
    assert "exceeds the 10-year maximum" in capsys.readouterr().err
    assert run_cli(["--home", str(tmp_path), "audit", "purge"]) == ExitCode.CONFIG
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "audit.json").write_text('{"retention_days": 3650}')
    assert run_cli(["--home", str(tmp_path), "audit", "purge"]) == 0  # nothing is 10 years old: everything stays
    assert "purged 0 entries" in capsys.readouterr().out
    assert run_cli(["--home", str(tmp_path), "audit", "purge", "--retention", "1d"]) == 0
    assert "purged 700 entries" in capsys.readouterr().out  # the first purge record (today) stays
    assert run_cli(["--home", str(tmp_path), "audit", "verify"]) == 0
