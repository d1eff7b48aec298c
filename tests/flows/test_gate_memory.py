"""The gate's memory stays flat over 1,000 consecutive decisions (resident size growth < 5 %), in the gate
process and in its face worker. Nothing accumulates per decision: no sample, no template, no decision history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit import AuditLog
from biometric.capture import SampleSource
from biometric.isolation import FaceWorker
from card import transport
from card.keystore import KeyStore
from card.piv import PivSession
from card.virtual.harness import VirtualCardProcess
from enrol.facecapture import worker_capture
from enrol.flow import EnrolRequest, enrol
from verify.facematch import worker_match
from verify.flow import Gate
from verify.station import BuiltinPolicy

DECISIONS = 1000
WARM_UP = 100


def rss_kb(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_memory_flat_over_1000_decisions(pcscd, faces_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ks = KeyStore.init(tmp_path / "keys")
    ks.issue_station("desk-1")
    root = faces_dir / "portraits/face_recognition/kit_harington"
    card = VirtualCardProcess(tmp_path / "card.json", reader=0, fsync=False).insert()
    try:
        with FaceWorker() as worker, AuditLog.open(tmp_path / "a.sqlite3", "n", key_file=tmp_path / "a.key") as log:
            with transport.connect(card.reader_name, timeout=5) as conn:
                enrol(EnrolRequest(b"\x02" * 32, "regular", datetime.now(UTC).replace(microsecond=0) + timedelta(days=9),
                                   "desk-1", "op"), session=PivSession(conn), keys=ks,
                      capture=lambda: worker_capture(worker, SampleSource.photos(str(root / "johnsnow_test1.jpg")), 1,
                                                     "en"), audit=log)
            gate = Gate("gate-1", ks.gate_trust(), BuiltinPolicy(), lambda: 1,
                        worker_match(worker, SampleSource.photos(str(root / "john2.jpeg")), 2.0), log)
            assert worker.pid is not None
            accepted = 0
            with transport.connect(card.reader_name, timeout=5) as conn:
                for i in range(DECISIONS):
                    if i == WARM_UP:
                        base_gate, base_worker = rss_kb(), rss_kb(worker.pid)
                    accepted += gate.decide(PivSession(conn)).accepted
            end_gate, end_worker = rss_kb(), rss_kb(worker.pid)
    finally:
        card.stop()
    assert accepted == DECISIONS
    growth_gate = (end_gate - base_gate) / base_gate
    growth_worker = (end_worker - base_worker) / base_worker
    print(f"\nRSS gate {base_gate} -> {end_gate} kB ({growth_gate:+.2%}), "
          f"worker {base_worker} -> {end_worker} kB ({growth_worker:+.2%})")
    assert growth_gate < 0.05 and growth_worker < 0.05
