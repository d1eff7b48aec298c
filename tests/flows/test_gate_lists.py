"""List ages through the installed `cardbound gate` (real pcscd, virtual cards): the CRL, the port-ban list and the
revoked-card list each carry their issue time; the policy's maximum age per ISPS level decides.

- A CRL past its nextUpdate: `gate check` FAILs (non-zero), `cardbound gate` refuses to start (exit 48, audited).
- A CRL a day before its nextUpdate: a WARN line in `gate check` and at start-up; the gate starts.
- A ban list 30 h old: fine at level 1; at level 2 (24 h) `gate check` FAILs, the gate does not start, and a gate
  already running when the level is raised refuses the next card LISTS_STALE (one audited decision, no capture).
- SIGHUP reloads the lists and the gate bundle's CRL (audited with their issue times); a stale new list or an
  older CRL is refused and what is in force stays.
- Undated (version 1) and future-dated lists are refused.
"""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gate_helpers import SITE, RunningGate, audited, cb, enrol_card, gate_config, gate_home, set_level

from card.keystore import KeyStore
from cardbound.errors import ExitCode
from cardbound.home import Home
from verify.banlist import key_id
from verify.revocation import format_revocation_list

KEY = bytes(range(32))
PHOTOS = "portraits/face_recognition"


def _rows(out: str) -> dict[str, tuple[str, str]]:
    """`gate check` lines by piece: name -> (status, message)."""
    rows = {}
    for line in out.splitlines():
        status = line.split(None, 1)[0] if line.strip() else ""
        if status in ("OK", "WARN", "FAIL"):
            rows[line[6:18].strip()] = (status, line[19:])
    return rows


def _ban_list(path: Path, issued: datetime) -> None:
    """An empty port-ban list (version 2) issued at `issued`."""
    path.write_text(f"cardbound-banlist 2 key-id={key_id(KEY)} issued={issued:%Y-%m-%dT%H:%M:%SZ}\n")


def _lists(tmp_path: Path, *, ban_age: timedelta, revoked_age: timedelta = timedelta(hours=1),
           policy_lines: str = "") -> Path:
    now = datetime.now(UTC)
    key = tmp_path / "holder-ref.key"
    key.write_text(KEY.hex() + "\n")
    key.chmod(0o600)
    _ban_list(tmp_path / "bans.txt", now - ban_age)
    (tmp_path / "revoked.txt").write_text(format_revocation_list([os.urandom(16)], issued_at=now - revoked_age))
    cfg: Path = gate_config(tmp_path / "gate.toml", policy_lines=policy_lines, gate_lines='ban_list = "bans.txt"\n'
                            'ban_list_key = "holder-ref.key"\nrevoked_cards = "revoked.txt"')
    return cfg


def _crl_issued(home: Path, days_ago: float) -> None:
    """Re-sign the CRL as if `days_ago` (30-day lifetime: nextUpdate 30 days after that) and re-export the gate
    bundle, as the key officer's `keys refresh-crl` + `export-gate` would have done then."""
    ks = KeyStore.open(Home(home).keystore)
    ks.refresh_crl(now=datetime.now(UTC) - timedelta(days=days_ago))
    ks.export_gate("gate-1", Home(home).gate_bundle)


def test_crl_past_next_update_fails_the_check_and_the_start(pcscd, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                            faces_dir: Path) -> None:
    home = gate_home(tmp_path)
    photo = str(faces_dir / PHOTOS / "obama/obama2.jpg")
    _crl_issued(home, days_ago=31)  # nextUpdate passed a day ago
    check = cb(home, "gate", "check", "--reader", "0", "--photo", photo)
    assert check.returncode == ExitCode.GATE_FAULT, check.stdout + check.stderr
    status, message = _rows(check.stdout)["crl"]
    assert status == "FAIL" and "stale at level 1" in message and "LISTS_STALE" in message, check.stdout
    assert _rows(check.stdout)["trust"][0] == "OK"  # the bundle itself is sound: only its CRL is too old

    start = cb(home, "gate", "--reader", "0", "--photo", photo)
    assert start.returncode == ExitCode.LISTS_STALE, start.stderr
    assert "crl" in start.stderr and "does not start" in start.stderr and "Traceback" not in start.stderr
    assert not start.stdout.strip()  # no decision against anyone
    assert [f["fault_code"] for f in audited(home, "gate.fault")] == ["lists_stale_at_start"]


def test_crl_a_day_before_next_update_is_warned_and_the_gate_starts(pcscd, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                    faces_dir: Path) -> None:
    home = gate_home(tmp_path)
    photo = str(faces_dir / PHOTOS / "obama/obama2.jpg")
    _crl_issued(home, days_ago=29)  # nextUpdate in a day
    # The default level-1 maximum age (7 days) would already refuse a CRL issued 29 days ago; a security plan that
    # allows a month at level 1 leaves the CRL's own nextUpdate as the deadline.
    cfg = gate_config(tmp_path / "gate.toml", policy_lines="level1 = { max_age_hours = 744 }")
    check = cb(home, "gate", "check", "--config", str(cfg), "--reader", "0", "--photo", photo)
    assert check.returncode == 0, check.stdout + check.stderr
    status, message = _rows(check.stdout)["crl"]
    assert status == "WARN" and "nextUpdate" in message and "refresh it now" in message, check.stdout
    assert check.stdout.strip().endswith("gate check: WARN")

    default = cb(home, "gate", "check", "--reader", "0", "--photo", photo)  # the built-in policy: 7 days at level 1
    assert default.returncode == ExitCode.GATE_FAULT and "maximum age 7 d" in _rows(default.stdout)["crl"][1]

    gate = RunningGate(home, "--config", str(cfg), "--reader", "0", "--photo", photo)
    try:
        assert gate.wait_ready(), "".join(gate.stderr)
        warning = [ln for ln in gate.stderr if ln.startswith("WARNING: crl")]
        assert len(warning) == 1 and "nextUpdate" in warning[0], gate.stderr
    finally:
        assert gate.stop() == 0


def test_list_ages_in_gate_check_and_at_start_per_level(pcscd, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                       faces_dir: Path) -> None:
    home = gate_home(tmp_path)
    photo = str(faces_dir / PHOTOS / "obama/obama2.jpg")
    cfg = _lists(tmp_path, ban_age=timedelta(hours=30))
    ok = cb(home, "gate", "check", "--config", str(cfg), "--reader", "0", "--photo", photo)
    assert ok.returncode == 0, ok.stdout
    rows = _rows(ok.stdout)
    assert (rows["crl"][0], rows["ban list"][0], rows["revoked list"][0]) == ("OK", "OK", "OK"), ok.stdout
    assert "valid at level 1" in rows["ban list"][1]

    set_level(home, 2)
    stale = cb(home, "gate", "check", "--config", str(cfg), "--reader", "0", "--photo", photo)
    assert stale.returncode == ExitCode.GATE_FAULT, stale.stdout
    rows = _rows(stale.stdout)
    assert rows["ban list"][0] == "FAIL" and "stale at level 2" in rows["ban list"][1], stale.stdout
    assert "maximum age 24 h" in rows["ban list"][1] and str(tmp_path / "bans.txt") in rows["ban list"][1]
    assert rows["revoked list"][0] == "OK" and rows["crl"][0] == "OK"
    start = cb(home, "gate", "--config", str(cfg), "--reader", "0", "--photo", photo)
    assert start.returncode == ExitCode.LISTS_STALE and "ban list" in start.stderr, start.stderr
    assert "revoked list" not in start.stderr and not start.stdout.strip()

    # raising the level says which lists are now too old (the level changes all the same: it is not the gate's call)
    raised = cb(home, "gate", "level", "3", "--site", SITE, "--config", str(cfg))
    assert raised.returncode == 0 and "2 -> 3" in raised.stdout
    assert "WARNING: ban list" in raised.stderr and "refused LISTS_STALE at level 3" in raised.stderr, raised.stderr

    # an undated (version 1) list, and one dated in the future, are refused at every level
    set_level(home, 1)
    (tmp_path / "revoked.txt").write_text("cardbound-revoked 1\n" + os.urandom(16).hex() + "\n")
    _ban_list(tmp_path / "bans.txt", datetime.now(UTC) + timedelta(hours=1))
    bad = cb(home, "gate", "check", "--config", str(cfg), "--reader", "0", "--photo", photo)
    assert bad.returncode == ExitCode.GATE_FAULT
    rows = _rows(bad.stdout)
    assert rows["revoked list"][0] == "FAIL" and "no issue time (format version 1)" in rows["revoked list"][1]
    assert rows["ban list"][0] == "FAIL" and "issued in the future" in rows["ban list"][1]


@pytest.mark.parametrize("bad", ["level2 = { max_age_hours = 0 }", "level2 = { max_age_hours = 200 }",
                                 "level1 = { max_age_days = 7 }"])
def test_a_bad_maximum_age_is_a_config_error(tmp_path: Path, bad: str) -> None:
    home = tmp_path / "home"  # the configuration is read first: nothing else is needed to refuse it
    cfg = gate_config(tmp_path / "gate.toml", policy_lines=bad)
    res = cb(home, "gate", "--config", str(cfg), "--photo", "x.jpg")
    assert res.returncode == ExitCode.CONFIG and "policy.lists.level" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_running_gate_refuses_lists_stale_at_level_2_and_reloads_fresh_lists(  # type: ignore[no-untyped-def]
        virtual_card_factory, tmp_path: Path, faces_dir: Path) -> None:
    home = gate_home(tmp_path)
    root = faces_dir / PHOTOS
    card = virtual_card_factory(reader=0)
    guid = enrol_card(home, card.reader_name, root / "obama/obama.jpg")
    card.remove()
    cfg = _lists(tmp_path, ban_age=timedelta(hours=30))  # fine at level 1 (7 days), stale at level 2 (24 h)
    gate = RunningGate(home, "--config", str(cfg), "--reader", "0", "--photo", str(root / "obama/obama2.jpg"))
    seen = []
    try:
        assert gate.wait_ready(), "".join(gate.stderr)
        assert not any(ln.startswith("WARNING") for ln in gate.stderr), gate.stderr

        def present() -> dict[str, Any]:
            card.insert()
            d: dict[str, Any] = gate.next()
            seen.append(d)
            card.remove()
            return d

        assert present()["reason"] == "ACCEPTED"
        set_level(home, 2)  # the duty officer raises the level: the 30-hour-old ban list is now too old
        stale = present()
        assert (stale["reason"], stale["decision"], stale["security_level"]) == ("LISTS_STALE", "reject", 2), stale
        detail = str(stale["detail"])
        assert detail.startswith("ban list: stale at level 2") and "revoked list" not in detail, detail
        assert "capture" not in stale["timings_ms"] and stale["card_id"] is None  # no biometric, no card work
        foreign = virtual_card_factory(reader=0, hostile="foreign")  # even a card that fails the SELECT
        seen.append(gate.next())
        assert seen[-1]["reason"] == "LISTS_STALE", seen[-1]
        foreign.remove()

        # a new revoked-card list that is itself too old: the reload is refused, the lists in force stay
        mark = len(gate.stderr)
        (tmp_path / "revoked.txt").write_text(format_revocation_list([], issued_at=datetime.now(UTC)
                                                                     - timedelta(hours=25)))
        gate.proc.send_signal(signal.SIGHUP)
        refused = gate.wait_stderr("reload REFUSED", since=mark)
        assert "revoked list" in refused and "stale at level 2" in refused, refused
        assert present()["reason"] == "LISTS_STALE"

        # fresh lists and a refreshed CRL (the key officer's refresh-crl + export-gate): reloaded, audited with
        # their issue times, and the next card is decided normally
        crl_file = Home(home).gate_bundle / "crl.pem"
        first_crl = crl_file.read_bytes()
        _crl_issued(home, days_ago=0)
        now = datetime.now(UTC)
        _ban_list(tmp_path / "bans.txt", now)
        (tmp_path / "revoked.txt").write_text(format_revocation_list([], issued_at=now))
        mark = len(gate.stderr)
        gate.proc.send_signal(signal.SIGHUP)
        reloaded = gate.wait_stderr("in force", since=mark)
        assert "crl 2 issued" in reloaded and "ban list issued" in reloaded, reloaded
        assert present()["reason"] == "ACCEPTED"

        # an older ban list than the one in force (still fresh enough): refused, only the most recent one counts
        _ban_list(tmp_path / "bans.txt", now - timedelta(hours=1))
        mark = len(gate.stderr)
        gate.proc.send_signal(signal.SIGHUP)
        older = gate.wait_stderr("reload REFUSED", since=mark)
        assert "ban list" in older and "older than the one in force" in older, older
        _ban_list(tmp_path / "bans.txt", now)

        # an older CRL put back into the bundle (it would un-revoke cards): refused, CRL 2 stays in force
        crl_file.write_bytes(first_crl)
        mark = len(gate.stderr)
        gate.proc.send_signal(signal.SIGHUP)
        rolled_back = gate.wait_stderr("reload REFUSED", since=mark)
        assert "gate trust" in rolled_back and "rolled_back" in rolled_back, rolled_back
        assert present()["reason"] == "ACCEPTED"
    finally:
        rc = gate.stop()
    assert rc == 0 and not any("Traceback" in ln for ln in gate.stderr), "".join(gate.stderr)
    decisions = audited(home, "gate.decision")
    assert [d["reason_code"] for d in decisions] == ["accepted", "lists_stale", "lists_stale", "lists_stale",
                                                     "accepted", "accepted"]
    assert [d["reason_code"] for d in decisions] == [d["reason"].lower() for d in seen]  # one event each
    assert [d["security_level"] for d in decisions] == [1, 2, 2, 2, 2, 2]
    assert [f["fault_code"] for f in audited(home, "gate.fault")] == ["lists_reload_refused", "lists_reload_refused",
                                                                      "trust_reload_refused"]
    reloads = [c["new_value"] for c in audited(home, "config.changed")]
    assert len(reloads) == 1 and f"ban list issued {now:%Y-%m-%dT%H:%M:%SZ}" in reloads[0], reloads
    assert "revoked list issued" in reloads[0] and "crl 2 issued" in reloads[0]
    everything = "".join(gate.stdout) + "".join(gate.stderr) + json.dumps(audited(home))
    assert guid.hex() not in everything and guid.hex().upper() not in everything
