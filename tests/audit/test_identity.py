"""Unambiguous identity: one node id per station home; `audit verify` says which key it used, never guesses."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from audit_helpers import gate_event, run_cli

from audit import AuditLog
from cardbound.errors import ExitCode
from cardbound.home import Home


def test_two_stations_on_one_host_get_different_node_ids(tmp_path: Path) -> None:
    desk, gate = Home(tmp_path / "desk"), Home(tmp_path / "gate")
    a, b = desk.node_id, gate.node_id
    assert a != b
    host = socket.gethostname().lower()[:8]
    assert a.startswith(host) and b.startswith(host)
    assert desk.node_id == a and Home(tmp_path / "desk").node_id == a  # generated once, then kept
    assert (tmp_path / "desk" / "config" / "node-id").read_text().strip() == a
    with AuditLog.open_station(desk.root, a) as log, AuditLog.open_station(gate.root, b) as log2:
        log.append(gate_event(1))
        log2.append(gate_event(2))


def test_a_home_with_an_older_log_keeps_its_node_id(tmp_path: Path) -> None:
    with AuditLog.open_station(tmp_path, "vm") as log:
        log.append(gate_event(0))
    assert Home(tmp_path).node_id == "vm"


def _station(root: Path, node: str, n: int = 12) -> Path:
    with AuditLog.open_station(root, node, checkpoint_every=5) as log:
        log.append_many([gate_event(i) for i in range(n)])
    return root / "audit" / "audit.sqlite3"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    rc = run_cli(list(argv))
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_verify_names_its_key_and_where_it_came_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "gate"
    _station(home, "gate-a")
    rc, text = _run(capsys, "--home", str(home), "audit", "verify")
    assert rc == 0, text
    assert f"from station home {home}/keys/audit-gate-a.ed25519.pub" in text
    assert "key: cardbound-audit-gate-a+" in text


def test_copied_log_without_key_says_which_key_it_lacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _station(tmp_path / "gate", "gate-a")
    copy = tmp_path / "copy.sqlite3"
    shutil.copy(db, copy)
    other = tmp_path / "desk"  # the default home of whoever verifies: another station, with its own key
    _station(other, "desk-b")
    rc, text = _run(capsys, "--home", str(other), "audit", "verify", "--db", str(copy))
    assert rc == ExitCode.KEYS, text
    assert "no verifier key for node gate-a: pass --key FILE with its verifier key audit-gate-a.ed25519.pub" in text
    assert "BAD-SIGNATURE" not in text and "FAILED" not in text
    # With the key, kept apart from the log: OK, and the source named.
    pub = tmp_path / "gate" / "keys" / "audit-gate-a.ed25519.pub"
    rc, text = _run(capsys, "--home", str(other), "audit", "verify", "--db", str(copy), "--key", str(pub))
    assert rc == 0 and f"from --key {pub}" in text and "OK audit log of node gate-a" in text


def test_same_node_id_in_another_home_is_not_a_false_tamper_alarm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case: two homes both called `vm`; verifying one's log with the other's key."""
    _station(tmp_path / "one", "vm")
    _station(tmp_path / "two", "vm")
    copy = tmp_path / "one" / "audit" / "audit.sqlite3"
    shutil.copy(copy, tmp_path / "two" / "audit" / "audit.sqlite3")
    rc, text = _run(capsys, "--home", str(tmp_path / "two"), "audit", "verify")
    assert rc == ExitCode.KEYS, text
    assert "is not the key the log records" in text and "BAD-SIGNATURE" not in text


def test_key_taken_from_the_log_is_unverified(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _station(tmp_path / "gate", "gate-a")
    empty = tmp_path / "empty"
    rc, text = _run(capsys, "--home", str(empty), "audit", "verify", "--db", str(db), "--trust-log-key")
    assert rc == ExitCode.KEYS, text
    assert "from the log itself (UNVERIFIED" in text and "UNVERIFIED: node gate-a's log is consistent" in text
    assert "NOT CONTRADICTED (unverified key) audit log of node gate-a" in text and "OK audit" not in text
