"""§3 3° and 4° in the processes that drive the worker: after a real gate decision (pcscd + virtual card, the
installed `cardbound gate`), nothing in the gate process's memory is a copy of the reference template it read from
the card, nor the desk process after an enrolment (the desk app with its real services, driven through Flask's test
client in a helper process: `desk_parent_helper.py`). The test reads the running gate's memory (/proc/PID/maps + /proc/PID/mem; the gate is non-dumpable, so
this needs CAP_SYS_PTRACE, which root has) and searches it for the template as sealed (512 bytes of float32), 32-byte
windows of it and the float64 encodings of its first values.

Before the template was kept in wipeable buffers end to end (seal/unseal, the worker pipe), the freed `bytes` copies
were still there after the decision and this test failed (4-5 copies in the gate, 2 in the desk); the worker kept
one (`Template.from_bytes` went through `bytes`) and the desk's worker one (`Template.from_descriptor` left its
float32 temporary to the allocator) until biometric.template stopped making unwiped copies.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from memscan import can_read_memory_of_non_dumpable, dumpable_and_core, find_in_memory, template_needles

from audit import AuditLog
from biometric import DESK, FaceEngine, load_path
from biometric.capture import enrolment_template
from card import transport
from card.keystore import KeyStore
from card.piv import PivSession
from cardbound.home import Home
from enrol.flow import CapturedTemplate, EnrolRequest, enrol

CARDBOUND = str(Path(sys.executable).with_name("cardbound"))
STATION = "desk-1"

pytestmark = pytest.mark.skipif(not can_read_memory_of_non_dumpable(),
                                reason="needs CAP_SYS_PTRACE (root) to read a non-dumpable process's memory")


def _lines(stream: object, out: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        out.put(line)


def _next_decision(lines: queue.Queue[str], timeout: float) -> dict[str, object]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            line = lines.get(timeout=max(0.01, end - time.monotonic()))
        except queue.Empty:
            break
        if line.startswith("{"):
            return json.loads(line)  # type: ignore[no-any-return]
    raise AssertionError("no gate decision in time")


def _worker_of(pid: int) -> int:
    """The sandboxed face worker among `pid`'s children (the other one is multiprocessing's resource tracker)."""
    workers = [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
               if b"multiprocessing.spawn" in Path(f"/proc/{k}/cmdline").read_bytes()]
    assert len(workers) == 1, workers
    return workers[0]


def test_gate_process_holds_no_copy_of_the_reference_after_a_decision(  # type: ignore[no-untyped-def]
        virtual_card_factory, faces_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    ks = KeyStore.init(home / "keys")
    ks.issue_station(STATION)
    ks.export_gate("gate-1", Home(home).gate_bundle)
    assert subprocess.run([CARDBOUND, "--home", str(home), "gate", "level", "1", "--site", "BEANR-TEST"],
                          capture_output=True, timeout=60).returncode == 0
    root = faces_dir / "portraits/face_recognition/obama"
    got = enrolment_template(FaceEngine(quality=DESK), [load_path(root / "obama.jpg")], num_jitters=0)
    assert got.template is not None
    reference = got.template.to_bytes()  # this test's own copy: the needle it looks for in the gate
    got.wipe()

    card = virtual_card_factory()
    h = Home(home)
    with transport.connect(card.reader_name, timeout=5) as conn, AuditLog.open_station(h.root, node_id=h.node_id) as log:
        enrol(EnrolRequest(b"\x07" * 32, "regular", datetime.now(UTC).replace(microsecond=0) + timedelta(days=30),
                           STATION, "op"), session=PivSession(conn), keys=KeyStore.open(h.keystore),
              capture=lambda: CapturedTemplate(bytearray(reference), 1, 1, 90), audit=log)
    card.remove()

    gate = subprocess.Popen([CARDBOUND, "--home", str(home), "gate", "--reader", "0", "--photo",
                             str(root / "obama2.jpg")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(gate.stdout, lines), daemon=True).start()
    try:
        time.sleep(3)  # the worker loads its models
        card.insert()
        decision = _next_decision(lines, 60)
        assert decision["reason"] == "ACCEPTED", decision  # the reference really was read, unsealed and compared
        card.remove()
        time.sleep(0.5)
        assert gate.poll() is None, "the gate stopped"
        non_dumpable, core = dumpable_and_core(gate.pid)
        hits = find_in_memory(gate.pid, template_needles(reference))
        worker_hits = find_in_memory(_worker_of(gate.pid), template_needles(reference))
    finally:
        gate.terminate()
        try:
            gate.wait(10)
        except subprocess.TimeoutExpired:
            gate.kill()
            gate.wait()
    assert core.split()[4:6] == ["0", "0"], core  # RLIMIT_CORE soft and hard
    found = {k: v for k, v in hits.items() if v}
    assert not found, f"the gate process still holds the reference template: {found}"
    # the worker too, once the comparison is over: the reference it received is wiped with every working copy
    found = {k: v for k, v in worker_hits.items() if v}
    assert not found, f"the gate's worker still holds the reference template: {found}"


def test_desk_process_holds_no_copy_of_the_template_after_an_enrolment(  # type: ignore[no-untyped-def]
        virtual_card_factory, faces_dir: Path, tmp_path: Path) -> None:
    from card.personalise import personalise
    from card.register import CardRegister
    from card.values import CardGuid
    from verify.cardcheck import read_card

    home = tmp_path / "home"
    ks = KeyStore.init(home / "keys")
    ks.issue_station("desk-test")  # the station desk_helpers.make_desk signs with
    register = CardRegister.beside(ks.path)
    card = virtual_card_factory()

    def issue(guid: bytes, public_key: object) -> object:  # card issuance at the key officer, in the register
        cert = ks.issue_card_auth_certificate(guid, public_key)  # type: ignore[arg-type]
        register.record_issued(CardGuid(guid), cert.serial_number, cert.not_valid_after_utc)
        return cert

    with transport.connect(card.reader_name, timeout=5) as conn:
        personalise(PivSession(conn), issue, ks.management_key_for)  # type: ignore[arg-type]
    desk = subprocess.Popen([sys.executable, str(Path(__file__).with_name("desk_parent_helper.py")), str(home),
                             card.reader_name, str(faces_dir / "portraits/face_recognition/obama/obama.jpg")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert desk.stdout is not None
        line = desk.stdout.readline()
        assert line, desk.stderr.read() if desk.stderr else ""
        result = json.loads(line)
        assert result["status"] == 200, result  # enrolled: written, read back, the worker's template sealed
        with transport.connect(card.reader_name, timeout=5) as conn:  # this test's own copy, from the card
            reading = read_card(PivSession(conn), ks.gate_trust(), now=datetime.now(UTC))
        template = bytes(reading.unsealed.template)
        reading.wipe()
        time.sleep(0.3)
        hits = find_in_memory(desk.pid, template_needles(template))
        worker_hits = find_in_memory(_worker_of(desk.pid), template_needles(template))
    finally:
        desk.kill()
        desk.wait()
    found = {k: v for k, v in hits.items() if v}
    assert not found, f"the desk process still holds the template: {found}"
    found = {k: v for k, v in worker_hits.items() if v}  # nor the worker that computed it
    assert not found, f"the desk's worker still holds the template: {found}"
