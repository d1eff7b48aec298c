"""`cardbound verify --once` and `cardbound gate` end to end: exit codes, JSON lines, door hook, level changes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from gate_helpers import enrol_card

from audit import AuditLog
from biometric import DESK, FaceEngine
from card.keystore import KeyStore
from cardbound.errors import ExitCode
from cardbound.home import Home

CARDBOUND = str(Path(sys.executable).with_name("cardbound"))
STATION = "desk-1"


def cb(home: Path, *args: str, timeout: float = 120, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CARDBOUND, "--home", str(home), *args], capture_output=True, text=True,
                          timeout=timeout, input=stdin)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("gatehome")
    ks = KeyStore.init(h / "keys")
    ks.issue_station(STATION)
    ks.export_gate("gate-1", Home(h).gate_bundle)  # the gate holds only its bundle
    assert cb(h, "gate", "level", "1", "--site", "BEANR-TEST").returncode == 0  # a new gate is at level 3
    return h


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    return FaceEngine(quality=DESK)


def decision(res: subprocess.CompletedProcess[str]) -> dict[str, object]:
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, (res.stdout, res.stderr)
    return json.loads(lines[0])  # type: ignore[no-any-return]


def test_verify_once_genuine_impostor_no_face(home: Path, virtual_card, faces_dir: Path, engine: FaceEngine,  # type: ignore[no-untyped-def]
                                              tmp_path: Path) -> None:
    root = faces_dir / "portraits/face_recognition"
    enrol_card(home, virtual_card.reader_name, root / "obama/obama.jpg", engine, valid_for=timedelta(days=30))
    ok = cb(home, "verify", "--once", "--reader", "0", "--photo", str(root / "obama/obama2.jpg"))
    assert ok.returncode == 0, ok.stderr
    d = decision(ok)
    assert d["decision"] == "accept" and d["reason"] == "ACCEPTED" and d["card_id"]
    assert {"card_auth", "unseal", "capture", "compare", "total"} <= set(d["timings_ms"])  # type: ignore[call-overload]

    bad = cb(home, "verify", "--once", "--reader", "0", "--photo", str(root / "biden/biden2.jpg"), "--lang", "fr")
    assert bad.returncode == ExitCode.FACE_MISMATCH and decision(bad)["reason"] == "FACE_MISMATCH"
    assert "ne correspond pas" in bad.stderr

    from PIL import Image

    grey = tmp_path / "grey.png"
    Image.new("RGB", (640, 480), (90, 90, 90)).save(grey)
    nf = cb(home, "verify", "--once", "--reader", "0", "--photo", str(grey))
    assert nf.returncode == ExitCode.QUALITY and decision(nf)["reason"] == "NO_LIVE_FACE"

    cam = cb(home, "verify", "--once", "--reader", "0", "--camera", "33")
    assert cam.returncode == ExitCode.NO_CAMERA and decision(cam)["reason"] == "CAMERA_ERROR"


def test_verify_once_expired_and_not_enrolled(home: Path, virtual_card_factory, faces_dir: Path,  # type: ignore[no-untyped-def]
                                              engine: FaceEngine) -> None:
    root = faces_dir / "portraits/face_recognition"
    blank = virtual_card_factory()
    ne = cb(home, "verify", "--once", "--reader", "0", "--photo", str(root / "obama/obama2.jpg"))
    assert ne.returncode == ExitCode.CARD_NOT_ENROLLED, ne.stderr  # a blank card: no CHUID, no 9E certificate
    assert decision(ne)["reason"] == "NOT_ENROLLED"
    enrol_card(home, blank.reader_name, root / "obama/obama.jpg", engine, valid_for=timedelta(seconds=2))
    time.sleep(3)
    ex = cb(home, "verify", "--once", "--reader", "0", "--photo", str(root / "obama/obama2.jpg"))
    assert ex.returncode == ExitCode.TEMPLATE_EXPIRED and decision(ex)["reason"] == "TEMPLATE_EXPIRED"


def test_verify_once_clear_errors(home: Path, pcscd, tmp_path: Path, faces_dir: Path) -> None:  # type: ignore[no-untyped-def]
    photo = str(faces_dir / "portraits/face_recognition/obama/obama2.jpg")
    nocard = cb(home, "verify", "--once", "--reader", "0", "--photo", photo, "--card-timeout", "0.5")
    assert nocard.returncode == ExitCode.NO_CARD and decision(nocard)["reason"] == "NO_CARD"
    assert cb(home, "verify", "--once", "--reader", "9", "--photo", photo).returncode == ExitCode.NO_READER
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[gate]\nid = 'g1'\nfrobnicate = 1\n")
    res = cb(home, "verify", "--once", "--config", str(cfg), "--photo", photo)
    assert res.returncode == ExitCode.CONFIG and "frobnicate" in res.stderr and "Traceback" not in res.stderr
    cfg.write_text("this is [not toml")
    assert cb(home, "gate", "level", "2", "--config", str(cfg)).returncode == ExitCode.CONFIG
    assert cb(home, "verify", "--once", "--photo", photo, "--trust", str(tmp_path / "nothing")).returncode == ExitCode.KEYS
    assert cb(home, "verify", "--once").returncode == ExitCode.USAGE  # no live source


def test_gate_level_is_persisted_and_audited(tmp_path: Path) -> None:
    h = tmp_path / "h"
    assert cb(h, "gate", "level", "3", "--operator", "duty-officer").returncode == ExitCode.USAGE  # no site id
    assert not (h / "config" / "security-level").exists()
    assert cb(h, "gate", "level", "3", "--operator", "duty-officer", "--site", "BEANR-1742").returncode == 0
    assert (h / "config" / "security-level").read_text().strip() == "3"
    res = cb(h, "gate", "level", "1", "--site", "BEANR-1742")
    assert res.returncode == 0 and "3 -> 1" in res.stdout
    home = Home(h)
    with AuditLog.open_station(home.root, node_id=home.node_id) as log:
        recs = [log.entry(i).record() for i in range(log.size)]
    # no level file means level 3 (fail closed), so the first change is recorded as 3 -> 3
    assert [(r["payload"]["site_id"], r["payload"]["old_level"], r["payload"]["new_level"]) for r in recs] == [
        ("BEANR-1742", 3, 3), ("BEANR-1742", 3, 1)]
    assert cb(h, "gate", "level", "4").returncode == ExitCode.USAGE
    bad_site = cb(h, "gate", "level", "2", "--site", "not a site!")
    assert bad_site.returncode == ExitCode.USAGE and "Traceback" not in bad_site.stderr
    assert (h / "config" / "security-level").read_text().strip() == "1"


def test_level_change_whose_audit_append_fails_does_not_take_effect(tmp_path: Path) -> None:
    h = tmp_path / "h"
    assert cb(h, "gate", "level", "1", "--site", "BEANR-1742").returncode == 0
    db = Home(h).audit_db
    moved = db.with_name("moved-away")
    db.rename(moved)
    db.mkdir()  # the audit log cannot be opened: a directory where the database should be
    res = cb(h, "gate", "level", "3", "--site", "BEANR-1742")
    assert res.returncode != 0 and "NOT changed" in res.stderr and "Traceback" not in res.stderr
    assert (h / "config" / "security-level").read_text().strip() == "1"


def test_missing_or_corrupt_level_file_is_level_3_said_loudly(tmp_path: Path) -> None:
    from verify.station import load_settings

    h = tmp_path / "h"
    home = Home(h).ensure()
    settings = load_settings(None, home)
    assert settings.security_level() == 3 and "no security level file" in (settings.level_problem() or "")
    for content in ("", "7\n", "\xff\xfe garbage"):
        settings.level_file.write_bytes(content.encode("latin-1"))
        assert settings.security_level() == 3 and settings.level_problem()
    res = cb(h, "verify", "--once", "--photo", "x.jpg", "--card-timeout", "0.1", "--reader", "9")
    assert "running at ISPS security level 3" in res.stderr


def test_gate_runs_decisions_and_door_hook(home: Path, virtual_card_factory, faces_dir: Path,  # type: ignore[no-untyped-def]
                                          engine: FaceEngine, tmp_path: Path) -> None:
    root = faces_dir / "portraits/face_recognition"
    card = virtual_card_factory()
    enrol_card(home, card.reader_name, root / "obama/obama.jpg", engine, valid_for=timedelta(days=30))
    card.remove()
    door_log = tmp_path / "door.jsonl"
    hook = f"{sys.executable} -c \"import sys; open({str(door_log)!r}, 'a').write(sys.stdin.read() + chr(10))\""
    proc = subprocess.Popen([CARDBOUND, "--home", str(home), "gate", "--reader", "0", "--photo",
                             str(root / "obama/obama2.jpg"), "--door-hook", hook, "--max-decisions", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)  # worker start
        for _ in range(2):
            card.insert()
            time.sleep(1.5)
            card.remove()
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"gate did not stop after 2 decisions: {out} {err}") from None
    finally:
        proc.kill()
    lines = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    assert [ln["reason"] for ln in lines] == ["ACCEPTED", "ACCEPTED"], err
    assert proc.returncode == 0
    assert len(door_log.read_text().strip().splitlines()) == 2


def test_pseudonymise_reads_stdin_and_checks_the_number(tmp_path: Path) -> None:
    from verify.banlist import load_key, pseudonymise

    h = tmp_path / "h"
    assert cb(h, "gate", "pseudonymise", stdin="85.07.30-033.28\n").returncode == ExitCode.KEYS  # no key yet
    res = cb(h, "gate", "pseudonymise", "--new-key", stdin="85.07.30-033.28\n")
    assert res.returncode == 0, res.stderr
    key = load_key(h / "keys" / "holder-ref.key")
    assert res.stdout.strip() == pseudonymise("85073003328", key).hex()
    assert cb(h, "gate", "pseudonymise", "--new-key", stdin="85073003328\n").returncode == ExitCode.KEYS
    bad = cb(h, "gate", "pseudonymise", stdin="85.07.30-033.29\n")
    assert bad.returncode == ExitCode.INPUT and "85" not in bad.stderr.replace(str(h), "")  # the number is not echoed
