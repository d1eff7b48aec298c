"""`cardbound gate check` and the same checks at gate start: each broken piece named, FAIL → non-zero; a source that
cannot deliver frames is a fault of the gate at start-up, not a decision against a person."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from card.keystore import KeyStore
from cardbound.errors import ExitCode
from cardbound.home import Home
from verify.freshness import ListStamp, assess
from verify.selfcheck import Check, Status, list_check

CARDBOUND = str(Path(sys.executable).with_name("cardbound"))


def cb(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CARDBOUND, "--home", str(home), *args], capture_output=True, text=True, timeout=120)


def _status(out: str) -> dict[str, str]:
    rows = {}
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0] in ("OK", "WARN", "FAIL"):
            rows[line[6:18].strip()] = parts[0]
    return rows


def test_gate_check_all_ok_then_each_broken_piece(pcscd, tmp_path: Path, faces_dir: Path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "h"
    KeyStore.init(home / "keys").export_gate("gate-1", Home(home).gate_bundle)
    assert cb(home, "gate", "level", "2", "--site", "BEANR-1742").returncode == 0
    photo = str(faces_dir / "portraits/face_recognition/obama/obama2.jpg")
    hook = tmp_path / "door.sh"
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o755)
    ok = cb(home, "gate", "check", "--reader", "0", "--photo", photo, "--door-hook", str(hook))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert _status(ok.stdout) == {"config": "OK", "level": "OK", "trust": "OK", "crl": "OK", "readers": "OK",
                                  "camera": "OK", "door hook": "OK", "audit": "OK"}, ok.stdout
    assert ok.stdout.strip().endswith("gate check: OK")

    (Home(home).config / "security-level").write_text("9\n")
    bad = cb(home, "gate", "check", "--reader", "7", "--video", str(tmp_path / "nonexistent.mp4"),
             "--trust", str(tmp_path / "no-bundle"), "--door-hook", "/x/door.sh 'unclosed")
    assert bad.returncode == ExitCode.GATE_FAULT and "Traceback" not in bad.stderr
    rows = _status(bad.stdout)
    assert rows == {"config": "OK", "level": "WARN", "trust": "FAIL", "readers": "FAIL", "camera": "FAIL",
                    "door hook": "FAIL", "audit": "OK"}, bad.stdout
    assert "nonexistent.mp4" in bad.stdout and "gate check: FAIL" in bad.stdout

    cfg = tmp_path / "bad.toml"
    cfg.write_text("[gate]\nid = 'g1'\nfrobnicate = 1\n")
    broken = cb(home, "gate", "check", "--config", str(cfg), "--photo", photo)
    assert broken.returncode == ExitCode.GATE_FAULT and "frobnicate" in broken.stdout


def test_a_source_that_cannot_deliver_frames_stops_the_gate_at_start_up(tmp_path: Path) -> None:
    home = tmp_path / "h"
    KeyStore.init(home / "keys")
    empty = tmp_path / "frames"
    empty.mkdir()
    for source in (["--frames", str(empty)], ["--video", str(tmp_path / "nonexistent.mp4")], ["--camera", "47"]):
        res = cb(home, "gate", *source)
        assert res.returncode == ExitCode.NO_CAMERA, res.stderr
        assert "camera" in res.stderr and "Traceback" not in res.stderr
        assert not res.stdout.strip()  # no decision was made against anyone
    audit_db = Home(home).audit_db
    assert not audit_db.exists() or b"gate.decision" not in audit_db.read_bytes()


def test_list_ages_are_ok_warned_ahead_or_failed() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)

    def check(next_update: datetime, level: int = 1) -> Check:
        stamp = ListStamp("crl", "of the gate bundle", now - timedelta(hours=1), next_update)
        return list_check(assess(stamp, now=now, level=level, max_age=timedelta(days=7),
                                 warn_ahead=timedelta(hours=48)))

    assert check(now + timedelta(days=5)).status is Status.OK
    warn = check(now + timedelta(hours=30))
    assert warn.status is Status.WARN and "in 30 h" in warn.message and warn.name == "crl"
    stale = check(now - timedelta(days=4))
    assert stale.status is Status.FAIL and "stale" in stale.message and "LISTS_STALE" in stale.message


def test_sighup_reload_keeps_the_old_config_when_the_new_one_is_bad(pcscd, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                    faces_dir: Path) -> None:
    import signal
    import time

    from audit import AuditLog

    home = tmp_path / "h"
    KeyStore.init(home / "keys").export_gate("gate-1", Home(home).gate_bundle)
    example = (Path(__file__).resolve().parents[2] / "verify" / "gate.example.toml").read_text()
    good = example.replace("camera = 0", "")
    cfg = tmp_path / "gate.toml"
    cfg.write_text(good)
    photo = str(faces_dir / "portraits/face_recognition/obama/obama2.jpg")
    proc = subprocess.Popen([CARDBOUND, "--home", str(home), "gate", "--config", str(cfg), "--reader", "0",
                             "--photo", photo], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err: list[str] = []

    def wait_for(text: str, timeout: float = 60) -> None:
        assert proc.stderr is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            line = proc.stderr.readline()
            err.append(line)
            if text in line:
                return
        raise AssertionError(f"{text!r} not seen: {''.join(err)}")

    try:
        wait_for("watching")
        cfg.write_text(good.replace("[gate]", "[gate]\nfrobnicate = 1", 1))  # a typo: invalid
        proc.send_signal(signal.SIGHUP)
        wait_for("reload REFUSED")
        assert "frobnicate" in err[-1] and proc.poll() is None
        cfg.write_text(good.replace("occasional = { admitted = false }",
                                    "occasional = { admitted = false }\ncrew = { admitted = false }")
                       .replace("[policy.level1]   # normal operations",
                                "[policy.level1]\ncrew = { biometric = true, threshold = 0.40 }")
                       .replace("[policy.level2]   # heightened risk: everyone shows their face, thresholds tighter",
                                "[policy.level2]\ncrew = { biometric = true, threshold = 0.40 }"))
        proc.send_signal(signal.SIGHUP)
        wait_for("in force")
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
    assert rc == 0 and not any("Traceback" in ln for ln in err)
    h = Home(home)
    with AuditLog.open_station(h.root, node_id=h.node_id) as log:
        recs = [log.entry(i).record() for i in range(log.size)]
    kinds = [(r["type"], r["payload"].get("fault_code") or r["payload"].get("setting")) for r in recs]
    assert kinds == [("gate.fault", "config_reload_refused"), ("config.changed", "gate.config_reloaded")]
