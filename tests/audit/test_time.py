"""Honest time: clock steps under a writing node are recorded by the node and shown by `audit verify`."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_helpers import gate_event, run_cli

from audit import AuditLog
from audit.retention import DAY_MS
from audit.verify import verify_database

NODE = "gate-07"
T0 = 1_700_000_000_000
DB = Path("audit") / "audit.sqlite3"


class Clocks:
    """A wall clock that can be stepped, and the monotonic clock it should follow."""

    def __init__(self) -> None:
        self.wall = T0
        self.mono = 5_000

    def tick(self, ms: int = 1000) -> None:
        self.wall += ms
        self.mono += ms


def _verify(home: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    pub = home / "keys" / f"audit-{NODE}.ed25519.pub"
    rc = run_cli(["--home", str(home), "audit", "verify", "--key", str(pub)])
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_clock_stepped_forward_then_back_under_a_writer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = Clocks()
    with AuditLog.open_station(tmp_path, NODE, checkpoint_every=10, clock=lambda: c.wall,
                               monotonic=lambda: c.mono) as log:
        for i in range(5):
            c.tick()
            log.append(gate_event(i))
        c.wall += DAY_MS  # someone sets the clock one day ahead
        for i in range(5, 10):
            c.tick()
            log.append(gate_event(i))
        c.wall -= DAY_MS  # ... and back
        for i in range(10, 41):
            c.tick()
            log.append(gate_event(i))
        steps = [e.record()["payload"] for e in log.entries(event_type="clock.stepped")]
    assert [s["detected_by"] for s in steps] == ["monotonic", "monotonic"]
    assert steps[0]["step_ms"] == DAY_MS and steps[1]["step_ms"] == -DAY_MS
    rc, text = _verify(tmp_path, capsys)
    assert rc == 0, text  # the hash chain is intact: findings, not failures
    assert "CLOCK-STEP: entry 5: the node recorded its clock stepping forward by 1.0 days" in text
    assert "CLOCK-STEP: entry 11: the node recorded its clock stepping back by 1.0 days" in text
    assert "CLOCK-BACKWARD: entries 11-42 are dated before an earlier entry (up to 24.0 h back, at entry 11" in text


def test_clock_set_back_between_runs_is_recorded_and_reported(tmp_path: Path) -> None:
    """No monotonic clock spans two processes: the node compares with its own last entry instead."""
    now = [T0 + DAY_MS]
    with AuditLog.open_station(tmp_path, NODE, checkpoint_every=10, clock=lambda: now[0]) as log:
        log.append_many([gate_event(i) for i in range(19)])
    now[0] = T0  # restarted with the clock a day behind: 31 earlier-dated entries
    with AuditLog.open_station(tmp_path, NODE, checkpoint_every=10, clock=lambda: now[0]) as log:
        for i in range(31):
            now[0] += 1000
            log.append(gate_event(100 + i))
        (step,) = [e for e in log.entries(event_type="clock.stepped")]
    assert step.index == 19 and step.record()["payload"]["detected_by"] == "last-entry"
    report = verify_database(tmp_path / DB)
    codes = [f.code for f in report.findings]
    assert report.ok and "clock-backward" in codes and "clock-step" in codes
    assert "clock-before-checkpoint" in codes  # entries after the checkpoint signed at T0 + 1 day


def test_small_corrections_are_not_findings(tmp_path: Path) -> None:
    c = Clocks()
    with AuditLog.open_station(tmp_path, NODE, clock=lambda: c.wall, monotonic=lambda: c.mono) as log:
        for i in range(20):
            c.tick()
            c.wall -= 500 if i % 2 else 0  # NTP slewing: half a second back now and then
            log.append(gate_event(i))
        assert not list(log.entries(event_type="clock.stepped"))
    codes = [f.code for f in verify_database(tmp_path / DB).findings]
    assert not [c for c in codes if c.startswith("clock")]
