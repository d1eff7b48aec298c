"""The desk (`cardbound enrol`) and the gate (`cardbound verify`) refuse, before any card or capture, a bundle holding
a key their role must not have and a key file open to others — on encrypted key files and on PKCS#11 tokens.
The real command in a subprocess; no reader is needed because the refusal comes first."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from card.keystore import KeyStore
from cardbound.errors import ExitCode

CARDBOUND = str(Path(sys.executable).with_name("cardbound"))
SITE_A, SITE_B = "BEANR-A", "BEZEE-B"


def cb(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    return subprocess.run([CARDBOUND, "--home", str(home), *args], capture_output=True, text=True, timeout=120,
                          env=env)


def enrol(home: Path, photo: Path) -> subprocess.CompletedProcess[str]:
    return cb(home, "enrol", "--reader", "0", "--photo", str(photo), "--holder-ref", "ab" * 32, "--category",
              "regular", "--valid-until", "2030-01-01", "--station", "desk-1", "--card-timeout", "1",
              "--json")  # the one JSON object carries the technical detail beside the operator's message


def verify(home: Path, photo: Path) -> subprocess.CompletedProcess[str]:
    return cb(home, "verify", "--once", "--reader", "0", "--photo", str(photo), "--card-timeout", "1")


def refused(res: subprocess.CompletedProcess[str], *words: str) -> None:
    assert res.returncode == ExitCode.KEYS, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    for w in words:
        assert w in res.stdout + res.stderr, (res.stdout, res.stderr)


@pytest.mark.parametrize("backend", ["file", "pkcs11"])
def test_desk_and_gate_commands_refuse_overreaching_bundles(tmp_path: Path, faces_dir: Path, backend: str) -> None:
    home = tmp_path / "home"
    photo = faces_dir / "portraits/face_recognition/obama/obama.jpg"
    ks = KeyStore.init(home / "keys", site=SITE_A, backend=backend)
    ks.add_site(SITE_B)
    ks.issue_station("desk-1")
    desk, gate = ks.export_desk("desk-1", home / "desk-keys"), ks.export_gate("gate-1", home / "gate-keys",
                                                                               site=SITE_A)
    other = ks.export_gate("gate-b", tmp_path / "gate-b", site=SITE_B)

    if backend == "file":
        # a desk bundle holding a verifier private key (another role's key), then a station key open to others
        shutil.copy(next(other.glob("verifier-*.key")), desk / "verifier-0000000000000000.key")
        refused(enrol(home, photo), "must not have")
        (desk / "verifier-0000000000000000.key").unlink()
        os.chmod(desk / "station.key", 0o644)
        refused(enrol(home, photo), "chmod 600")
        os.chmod(desk / "station.key", 0o600)
        # a gate bundle holding the CA key, then its own verifier key open to others
        shutil.copy(ks.path / "ca.key", gate / "ca.key")
        refused(verify(home, photo), "CA private key", "must not have")
        (gate / "ca.key").unlink()
        key = next(gate.glob("verifier-*.key"))
        os.chmod(key, 0o640)
        refused(verify(home, photo), "open to group or others")
        os.chmod(key, 0o600)
    else:
        # the desk's token also holding a verifier key; the gate's token also holding a station key
        from card.pkcs11 import TokenSession, Usage

        TokenSession.open("cb-desk-desk-1").generate_ec("verifier:smuggled", usage=Usage.DERIVE)
        refused(enrol(home, photo), "must not have")
        TokenSession.open(f"cb-site-{SITE_A}").generate_ec("station:smuggled", usage=Usage.SIGN)
        refused(verify(home, photo), "must not have")
        # a token bundle that also holds a key file
        (desk / "holder-ref.key").write_text("ab" * 32 + "\n")
        os.chmod(desk / "holder-ref.key", 0o600)
        refused(enrol(home, photo), "also holds a key file")
        (desk / "holder-ref.key").unlink()
