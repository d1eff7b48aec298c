"""`cardbound gate` against hostile cards, through real pcscd + vsmartcard-vpcd: a foreign card (6A82 to SELECT), a
mute card, cards answering random data or truncated replies, and a genuine card pulled at each APDU of the gate's
transaction, all on reader 0, while a genuine card on reader 1 is accepted between them. The gate keeps running,
every presentation gets exactly one decision and one audit event, the door hook runs only for the accepted card,
and no card GUID appears in any output or audit event."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from gate_helpers import CARDBOUND, RunningGate, audited, enrol_card, gate_home

from biometric import DESK, FaceEngine
from card.virtual.vpcd import Faults
from cardbound.errors import ExitCode

# The gate home, the enrolment through the real flow, the running gate and the audit reader are shared with the
# other `cardbound gate` tests (tests/gate_helpers.py).
_enrol = enrol_card
_audited = audited


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    return FaceEngine(quality=DESK)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h: Path = gate_home(tmp_path)  # the gate holds only its bundle, at level 1
    return h


def test_hostile_cards_on_one_reader_genuine_accepted_on_the_other(  # type: ignore[no-untyped-def]
        home: Path, virtual_card_factory, faces_dir: Path, engine: FaceEngine, tmp_path: Path) -> None:
    root = faces_dir / "portraits/face_recognition"
    genuine = virtual_card_factory(reader=1)
    guid_a = _enrol(home, genuine.reader_name, root / "obama/obama.jpg", engine)
    other = virtual_card_factory(reader=0)
    guid_b = _enrol(home, other.reader_name, root / "obama/obama.jpg", engine)
    other.remove()
    genuine.remove()
    door_log = tmp_path / "door.jsonl"
    hook = tmp_path / "door.sh"
    hook.write_text(f"#!/bin/sh\ncat >> {door_log}\necho >> {door_log}\n")
    hook.chmod(0o755)

    gate = RunningGate(home, "--reader", "0", "--reader", "1", "--photo", str(root / "obama/obama2.jpg"),
                       "--door-hook", str(hook))
    seen: list[dict[str, Any]] = []
    try:
        assert gate.ready.wait(60), "".join(gate.stderr)
        limits = Path(f"/proc/{gate.proc.pid}/limits").read_text()
        assert [ln.split()[4:6] for ln in limits.splitlines() if ln.startswith("Max core file size")] == [["0", "0"]]

        def present_genuine() -> None:
            genuine.insert()
            d = gate.next()
            seen.append(d)
            assert (d["reader_id"], d["reason"]) == ("reader-1", "ACCEPTED"), d
            genuine.remove()

        present_genuine()
        genuine.insert()  # left on the reader while the hostile cards come and go: decided once, not again
        left = gate.next()
        seen.append(left)
        assert left["reason"] == "ACCEPTED"

        hostile = [("foreign", 0), ("mute", 0), ("random", 1), ("random", 2), ("random", 3), ("truncated", 4)]
        for mode, seed in hostile:
            card = virtual_card_factory(reader=0, hostile=mode, seed=seed)
            d = gate.next(timeout=40)
            seen.append(d)
            assert d["reader_id"] == "reader-0" and d["decision"] == "reject", (mode, d)
            assert d["reason"] in ("CARD_ERROR", "CARD_AUTH_FAILED", "NOT_ENROLLED", "CARD_REMOVED"), (mode, d.get("detail"))
            card.remove()
        genuine.remove()
        present_genuine()

        # The genuine card B pulled at each APDU of the gate's transaction (select, CHUID, certificate, challenge,
        # template, ..., and the re-proof after the face check): never accepted, each one decided and audited.
        pulled: list[str] = []
        for k in range(12):
            card = virtual_card_factory(image=other.image, reader=0, faults=Faults(drop_after=k))
            d = gate.next()
            seen.append(d)
            pulled.append(d["reason"])
            card.remove()
            if d["reason"] == "ACCEPTED":  # k is past the last APDU: the transaction was complete
                break
        assert pulled[-1] == "ACCEPTED", pulled  # the sweep covered every APDU
        assert all(r != "ACCEPTED" for r in pulled[:-1]), pulled
        # pulled right after the face check: the re-proof fails, so no ACCEPTED and no door
        assert pulled[-2] == "CARD_REMOVED", pulled
        present_genuine()
        time.sleep(1.0)  # a card left on reader 0 would have been decided again by now
        assert gate.lines.empty()
        assert gate.proc.poll() is None, "".join(gate.stderr)
    finally:
        rc = gate.stop()
    assert rc == 0, "".join(gate.stderr)
    assert not any("Traceback" in ln for ln in gate.stderr), "".join(gate.stderr)

    decisions = _audited(home, "gate.decision")
    assert len(decisions) == len(seen)  # one audit event per presentation, no more, no less
    assert [d["reason_code"] for d in decisions] == [d["reason"].lower() for d in seen]
    assert all(d["reader_id"] in ("reader-0", "reader-1") and d["lane_id"] for d in decisions)
    accepted = [d for d in seen if d["reason"] == "ACCEPTED"]
    door = [json.loads(ln) for ln in door_log.read_text().splitlines() if ln.strip()]
    assert len(door) == len(accepted)
    assert {d["card_id"] for d in door} <= {d["card_id"] for d in seen if d["reader_id"] == "reader-1"} | {
        seen[-2]["card_id"]}  # the door opened for the genuine cards' ACCEPTED decisions only
    assert all(d["lane_id"] for d in door)

    # No raw GUID anywhere: decisions, stderr, the door hook's input, the audit log.
    everything = "".join(gate.stdout) + "".join(gate.stderr) + door_log.read_text() + json.dumps(
        _audited(home, "gate.decision") + _audited(home, "gate.fault"))
    for guid in (guid_a, guid_b):
        for spelling in (guid.hex(), guid.hex().upper(), "-".join((guid.hex()[:8], guid.hex()[8:12]))):
            assert spelling not in everything


def test_bad_door_hook_is_refused_at_start_up(home: Path, tmp_path: Path) -> None:
    for hook in ("/x/door.sh 'unclosed", str(tmp_path / "missing.sh"), ""):
        res = subprocess.run([CARDBOUND, "--home", str(home), "gate", "--photo", "x.jpg", "--door-hook", hook],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == ExitCode.USAGE, res.stderr
        assert "door-hook" in res.stderr and "Traceback" not in res.stderr


def test_failing_and_hanging_hooks_are_audited_and_do_not_stall_the_lane(  # type: ignore[no-untyped-def]
        home: Path, virtual_card_factory, faces_dir: Path, engine: FaceEngine, tmp_path: Path) -> None:
    root = faces_dir / "portraits/face_recognition"
    card = virtual_card_factory(reader=0)
    _enrol(home, card.reader_name, root / "obama/obama.jpg", engine)
    card.remove()
    hang = tmp_path / "hang.sh"  # fails (exit 1) the first time, hangs the second
    seen_once = tmp_path / "hook-ran"
    hang.write_text(f"#!/bin/sh\nif [ ! -e {seen_once} ]; then touch {seen_once}; exit 1; fi\nsleep 30\n")
    hang.chmod(0o755)
    gate = RunningGate(home, "--reader", "0", "--photo", str(root / "obama/obama2.jpg"), "--door-hook", str(hang),
                       "--door-hook-timeout", "1")
    try:
        assert gate.ready.wait(60), "".join(gate.stderr)
        t = []
        for _ in range(2):
            t0 = time.monotonic()
            card.insert()
            assert gate.next()["reason"] == "ACCEPTED"
            t.append(time.monotonic() - t0)
            card.remove()
        time.sleep(1.5)  # the second hook's deadline
    finally:
        assert gate.stop() == 0
    faults = _audited(home, "gate.fault")
    assert [f["fault_code"] for f in faults] == ["door_hook_failed", "door_hook_timeout"]
    assert all(f["lane_id"] == "lane-1" and f["card_id"] for f in faults)


def test_gate_whose_reader_threads_die_exits_non_zero(  # type: ignore[no-untyped-def]
        home: Path, virtual_card_factory, faces_dir: Path, engine: FaceEngine) -> None:
    """The consumer of the decisions went away (stdout closed): the reader thread cannot report and dies; the
    gate stops with a fault (audited) and a non-zero exit, so a supervisor restarts it."""
    root = faces_dir / "portraits/face_recognition"
    card = virtual_card_factory(reader=0)
    _enrol(home, card.reader_name, root / "obama/obama.jpg", engine)
    card.remove()
    proc = subprocess.Popen([CARDBOUND, "--home", str(home), "gate", "--reader", "0", "--photo",
                             str(root / "obama/obama2.jpg")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()  # the supervisor's end of the pipe is gone before the first decision
    try:
        time.sleep(4)  # worker start
        card.insert()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "stopped on a fault" in err and "Traceback" not in err, err
    assert [f["fault_code"] for f in _audited(home, "gate.fault")] == ["reader_thread_died"]


def test_several_faces_refused_at_level_2_flagged_at_level_1(  # type: ignore[no-untyped-def]
        home: Path, virtual_card_factory, faces_dir: Path, engine: FaceEngine) -> None:
    root = faces_dir / "portraits/face_recognition"
    card = virtual_card_factory(reader=0)
    _enrol(home, card.reader_name, root / "obama/obama.jpg", engine)
    two = str(root / "_multi_person/obama_and_biden.jpg")

    def once(*args: str) -> tuple[int, dict[str, Any]]:
        res = subprocess.run([CARDBOUND, "--home", str(home), "verify", "--once", "--reader", "0", *args],
                             capture_output=True, text=True, timeout=120)
        lines = [json.loads(ln) for ln in res.stdout.splitlines() if ln.startswith("{")]
        assert len(lines) == 1, res.stderr
        return res.returncode, lines[0]

    subprocess.run([CARDBOUND, "--home", str(home), "gate", "level", "2", "--site", "BEANR-TEST"], check=True,
                   capture_output=True, timeout=60)
    rc, d = once("--photo", two)
    assert (rc, d["reason"], d["decision"]) == (ExitCode.SEVERAL_FACES, "SEVERAL_FACES", "reject"), d
    assert "MULTIPLE_FACES" in d.get("detail", "")
    subprocess.run([CARDBOUND, "--home", str(home), "gate", "level", "1", "--site", "BEANR-TEST"], check=True,
                   capture_output=True, timeout=60)
    rc, d = once("--photo", two)
    assert d["reason"] in ("ACCEPTED", "FACE_MISMATCH") and d["flags"] == ["SEVERAL_FACES"], d
    _, alone = once("--photo", str(root / "obama/obama2.jpg"))
    assert alone["reason"] == "ACCEPTED" and "flags" not in alone
    flags = [e.get("flags") for e in _audited(home, "gate.decision")]
    assert flags == [None, "several_faces", None]
