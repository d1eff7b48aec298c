"""§3 1°, 3°, 4°, enforced and shown: an enrolment and a verification write no file but the audit log (strace over
the real commands), and after many enrol + gate cycles nothing in any place the system writes looks like an image
or a descriptor. That the worker cannot write even if code tried is shown in tests/biometric/test_isolation.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit import AuditLog
from audit.atrest import scan
from biometric.capture import SampleSource
from biometric.isolation import FaceWorker
from card import transport
from card.keystore import KeyStore
from card.personalise import personalise
from card.piv import PivSession
from card.virtual.harness import VirtualCardProcess
from cardbound.home import Home
from enrol.facecapture import worker_capture
from enrol.flow import EnrolRequest, enrol
from verify.facematch import worker_match
from verify.flow import Gate
from verify.station import BuiltinPolicy

CARDBOUND = str(Path(sys.executable).with_name("cardbound"))
STRACE = shutil.which("strace")
TRACED = "openat,open,creat,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,truncate,link,linkat,symlink,symlinkat"
_WRITE_OPEN = re.compile(r'^(?:openat|open)\((?:AT_FDCWD|\d+), "([^"]*)", ([A-Z_|]+)')
_PATH_CALL = re.compile(r'^(creat|rename|renameat2?|unlink|unlinkat|mkdir|mkdirat|truncate|link|linkat|symlink|symlinkat)'
                        r'\((?:AT_FDCWD, |\d+, )?"([^"]*)"')


def file_writes(trace_prefix: Path) -> list[tuple[str, str]]:
    """(call, path) of every successful file-system modification in an `strace -ff` trace."""
    out: list[tuple[str, str]] = []
    for part in trace_prefix.parent.glob(trace_prefix.name + ".*"):
        for line in part.read_text(errors="replace").splitlines():
            if "= -1 " in line:
                continue  # failed: nothing was written
            m = _WRITE_OPEN.match(line)
            if m and re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND", m.group(2)):
                out.append(("open-for-write", m.group(1)))
                continue
            m = _PATH_CALL.match(line)
            if m:
                out.append((m.group(1), m.group(2)))
    return out


def allowed(path: str, home: Path) -> bool:
    p = Path(path)
    if path in ("/dev/null", "/dev/tty") or path.startswith("/dev/pts/"):
        return True
    if p == home or p == home / "audit" or home / "audit" in p.parents:
        return True  # the audit log (SQLite database, WAL, shared memory, journal)
    if p in (home / "config", home / "config" / "node-id"):
        return True  # the station's audit node id, chosen on first use
    keys = home / "keys"
    if p.parent == keys and p.name.lstrip(".").startswith("audit-"):
        return True  # the audit checkpoint signing key, created on first use
    if p == keys / "register.jsonl":
        return True  # the issued-card register (card id, GUID, holder reference, dates: never a template)
    # the public card-authentication certificate issued at personalisation (kept for revocation)
    return keys / "cards" in p.parents or p == keys / "cards"


@pytest.mark.skipif(STRACE is None, reason="strace is installed by scripts/setup.sh")
def test_enrol_and_verify_write_only_the_audit_log(pcscd, virtual_card, faces_dir: Path,  # type: ignore[no-untyped-def]
                                                    tmp_path: Path) -> None:
    home = tmp_path / "home"
    ks = KeyStore.init(home / "keys")
    ks.issue_station("desk-1")
    ks.export_desk("desk-1", home / "desk-keys")
    ks.export_gate("gate-1", home / "gate-keys")
    with transport.connect(virtual_card.reader_name, timeout=5) as conn:  # card issuance, at the key officer
        personalise(PivSession(conn), ks.issue_card_auth_certificate, ks.management_key_for)
    root = faces_dir / "portraits/face_recognition"
    runs = {
        "enrol": ["enrol", "--reader", "0", "--photo", str(root / "obama/obama.jpg"), "--holder-ref", "ab" * 32,
                  "--category", "regular", "--valid-until", (datetime.now(UTC) + timedelta(days=90)).date().isoformat()],
        "verify": ["verify", "--once", "--reader", "0", "--photo", str(root / "obama/obama2.jpg")],
    }
    for name, args in runs.items():
        prefix = tmp_path / f"{name}.trace"
        res = subprocess.run([STRACE, "-f", "-ff", "-qq", "-e", f"trace={TRACED}", "-o", str(prefix),
                              CARDBOUND, "--home", str(home), *args],
                             capture_output=True, text=True, timeout=180, cwd=tmp_path)
        assert res.returncode == 0, (name, res.stderr)
        writes = file_writes(prefix)
        assert any("audit.sqlite3" in p for _, p in writes), f"{name}: the trace saw no audit write at all"
        unexpected = [(c, p) for c, p in writes if not allowed(p, home)]
        assert unexpected == [], f"{name} wrote outside the audit log: {unexpected}"
        for part in tmp_path.glob(prefix.name + ".*"):
            part.unlink()
    assert scan([home]) == []


def test_fifty_enrolments_two_hundred_decisions_leave_no_biometric_data(
    pcscd, faces_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    home = Home(tmp_path / "home").ensure()
    tmpdir = tmp_path / "tmp"
    cwd = tmp_path / "cwd"
    tmpdir.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))  # inherited by the worker: any temp file would land here
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.chdir(cwd)
    ks = KeyStore.init(home.keystore)
    ks.issue_station("desk-1")
    root = faces_dir / "portraits/face_recognition"
    people = [("obama/obama.jpg", "obama/obama2.jpg"), ("rose_leslie/img1.jpg", "rose_leslie/img2.jpg")]
    cards = [VirtualCardProcess(home.root / f"card-{i}.json", reader=i) for i in range(2)]
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    accepted = 0
    try:
        for c in cards:
            c.insert()
        with FaceWorker() as worker, AuditLog.open_station(home.root, node_id=home.node_id) as log:
            for i in range(50):
                card, (enrol_photo, _) = cards[i % 2], people[i % 2]
                with transport.connect(card.reader_name, timeout=5) as conn:
                    enrol(EnrolRequest(bytes([i % 2]) * 32, "regular", until, "desk-1", "op", replace=i >= 2),
                          session=PivSession(conn), keys=ks,
                          capture=lambda p=enrol_photo: worker_capture(worker, SampleSource.photos(str(root / p)), 1,
                                                                       "en"),
                          audit=log)
            gate = Gate("gate-1", ks.gate_trust(), BuiltinPolicy(), lambda: 1,
                        worker_match(worker, SampleSource.photos(str(root / people[0][1])), 2.0), log)
            for i in range(200):
                card, (_, live) = cards[i % 2], people[(i // 2) % 2]  # half genuine, half impostor
                gate.match = worker_match(worker, SampleSource.photos(str(root / live)), 2.0)
                with transport.connect(card.reader_name, timeout=5) as conn:
                    accepted += gate.decide(PivSession(conn)).accepted
    finally:
        for c in cards:
            c.stop()
    assert accepted == 100  # the genuine half, and only it
    places = [home.root, tmpdir, cwd, Path("/dev/shm")]
    findings = scan(places)
    assert findings == [], [str(f) for f in findings]
    assert sorted(os.listdir(tmpdir)) == [] and sorted(os.listdir(cwd)) == []


@pytest.mark.skipif(STRACE is None, reason="strace is installed by scripts/setup.sh")
def test_the_write_watch_sees_writes(tmp_path: Path) -> None:
    """Negative control: the same trace and parser do catch a file write, a rename and an unlink."""
    prefix = tmp_path / "ctl.trace"
    code = (f"import os; open({str(tmp_path / 'a')!r}, 'w').write('x'); "
            f"os.rename({str(tmp_path / 'a')!r}, {str(tmp_path / 'b')!r}); os.unlink({str(tmp_path / 'b')!r})")
    subprocess.run([STRACE, "-f", "-ff", "-qq", "-e", f"trace={TRACED}", "-o", str(prefix), sys.executable, "-c",
                    code], check=True, timeout=60)
    calls = {(c, Path(p).name) for c, p in file_writes(prefix)}
    assert {("open-for-write", "a"), ("rename", "a"), ("unlink", "b")} <= calls
