"""The SQLite log: durable appends, indices, checkpoints, proofs that verify against the signed root."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from audit_helpers import gate_event

from audit import AuditLog, AuditLogError, BiometricContentError, merkle
from audit.checkpoint import load_verifier, parse_checkpoint


def test_append_returns_indices_and_persists(tmp_path: Path) -> None:
    db = tmp_path / "audit" / "audit.sqlite3"
    with AuditLog.open(db, "gate-07", checkpoint_every=10) as log:
        assert [log.append(gate_event(i)) for i in range(5)] == [0, 1, 2, 3, 4]
        assert log.append_many([gate_event(i) for i in range(5, 25)]) == list(range(5, 25))
    key = tmp_path / "keys" / "audit-gate-07.ed25519"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    with AuditLog.open(db, "gate-07") as log:
        assert log.size == 25
        assert log.append(gate_event(25)) == 25
        rec = log.entry(3).record()
        assert rec["idx"] == 3 and rec["type"] == "gate.decision" and rec["node"] == "gate-07"
        # Checkpoints fall on the interval, inside a batch too.
        assert [s for s, _, _ in log.checkpoints()] == [10, 20, 25]
    with AuditLog.open(db, "gate-07") as log:
        notes = log.checkpoints()
    assert [s for s, _, _ in notes] == [10, 20, 25, 26]  # close() signed the tail
    vkey = load_verifier(key.with_name(key.name + ".pub"))
    cp = parse_checkpoint(notes[-1][2], vkey)
    assert cp.size == 26


def test_proofs_verify_against_signed_root(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "a.db", "n1", key_file=tmp_path / "k") as log:
        log.append_many([gate_event(i) for i in range(37)])
        note = log.checkpoint()
        cp = parse_checkpoint(note, log.verifier_key)
        leaves = [e.leaf for e in log.entries()]
        assert cp.root == merkle.root_of(leaves) == log.root()
        for i in (0, 1, 16, 31, 32, 36):
            merkle.verify_inclusion(i, 37, leaves[i], log.inclusion_proof(i), cp.root)
        for s1 in (1, 2, 8, 20, 36, 37):
            merkle.verify_consistency(s1, 37, log.root(s1), cp.root, log.consistency_proof(s1))


def test_refused_event_writes_nothing(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "a.db", "n1", key_file=tmp_path / "k") as log:
        log.append(gate_event(0))
        bad = gate_event(1)
        object.__setattr__(bad, "card_id", "ab" * 100)
        with pytest.raises(BiometricContentError):
            log.append_many([gate_event(2), bad])
        assert log.size == 1


def test_wrong_node_or_key_refused(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "a.db", "n1", key_file=tmp_path / "k"):
        pass
    with pytest.raises(AuditLogError, match="node"):
        AuditLog.open(tmp_path / "a.db", "n2", key_file=tmp_path / "k2")
    with pytest.raises(AuditLogError, match="key"):
        AuditLog.open(tmp_path / "a.db", "n1", key_file=tmp_path / "other")


def test_time_based_checkpoint_interval(tmp_path: Path) -> None:
    now = [1_000_000]
    with AuditLog.open(tmp_path / "a.db", "n1", key_file=tmp_path / "k", checkpoint_every=1000,
                       checkpoint_seconds=60, clock=lambda: now[0]) as log:
        for i in range(10):
            now[0] += 25_000  # an event every 25 s
            log.append(gate_event(i))
        sizes = [s for s, _, _ in log.checkpoints()]
    # On the first append >= 60 s after opening / after the previous checkpoint: at 75 s, 150 s, 225 s.
    assert sizes == [3, 6, 9]
