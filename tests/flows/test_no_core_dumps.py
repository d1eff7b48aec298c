"""The processes that hold card data, templates or keys next to the worker dump no core and are not dumpable:
`cardbound desk serve`, `cardbound enrol` and the gate (`verify --once` waiting for a card), set at the
composition root (`cardbound.cli.KEEP_NOTHING`).

How it is seen from outside: `/proc/PID/limits` for RLIMIT_CORE; for the dumpable flag, whether another process of
the same user may open `/proc/PID/mem` (the kernel refuses it for a non-dumpable process unless the reader has
CAP_SYS_PTRACE). Tests run as root, which has that capability, so both the process under test and the reader are
started without it (`setpriv --bounding-set -sys_ptrace`), and under a raised core limit (`prlimit`) the process
must lower itself. A plain Python process started the same way is the control: readable, core limit kept.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from card.keystore import KeyStore
from cardbound.home import Home

CARDBOUND = str(Path(sys.executable).with_name("cardbound"))
SETPRIV, PRLIMIT = shutil.which("setpriv"), shutil.which("prlimit")
CORE_LIMIT = 1 << 20
NO_PTRACE = [str(SETPRIV), "--bounding-set", "-sys_ptrace", "--inh-caps", "-sys_ptrace"]
LAUNCH = [str(PRLIMIT), f"--core={CORE_LIMIT}:{CORE_LIMIT}", "--", *NO_PTRACE]

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or SETPRIV is None or PRLIMIT is None,
                                reason="needs root, setpriv and prlimit to launch without CAP_SYS_PTRACE")


def mem_readable(pid: int) -> bool:
    """Whether a process without CAP_SYS_PTRACE (same user) may open /proc/PID/mem: False when PID is
    non-dumpable."""
    res = subprocess.run([*NO_PTRACE, sys.executable, "-c", f"open('/proc/{pid}/mem', 'rb').close()"],
                         capture_output=True, timeout=30)
    return res.returncode == 0


def core_limit(pid: int) -> tuple[str, str]:
    line = next(ln for ln in Path(f"/proc/{pid}/limits").read_text().splitlines()
                if ln.startswith("Max core file size"))
    soft, hard = line.split()[4:6]
    return soft, hard


def _launch(cmd: list[str], **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*LAUNCH, *cmd], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload, no-any-return]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def control() -> None:
    """The check can tell: a process that does nothing about it is readable and keeps the raised core limit."""
    proc = _launch([sys.executable, "-c", "import sys; print('up', file=sys.stderr, flush=True); sys.stdin.read()"],
                   stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None and proc.stderr.readline().strip() == b"up"
        readable, limit = mem_readable(proc.pid), core_limit(proc.pid)
    finally:
        _stop(proc)
    if not readable:
        pytest.skip("this host refuses /proc/PID/mem even for a dumpable process (Yama?): the check cannot tell")
    assert limit == (str(CORE_LIMIT), str(CORE_LIMIT))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    home = Home(tmp_path_factory.mktemp("nocore") / "home").ensure()
    ks = KeyStore.init(home.keystore)
    ks.issue_station("desk-1")
    fd = os.open(home.keystore / "holder-ref.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    ks.export_desk("desk-1", home.desk_bundle)
    ks.export_gate("gate-1", home.gate_bundle)
    return home


def _wait_keeping_nothing(proc: subprocess.Popen[bytes], what: str, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        if core_limit(proc.pid) == ("0", "0") and not mem_readable(proc.pid):
            return
        time.sleep(0.3)
    raise AssertionError(f"{what}: core limit {core_limit(proc.pid)}, /proc/PID/mem readable "
                         f"{mem_readable(proc.pid)}")


@pytest.mark.usefixtures("control")
def test_desk_serve_dumps_no_core_and_is_not_dumpable(home: Home, tmp_path: Path) -> None:
    log = tmp_path / "desk.log"
    with open(log, "wb") as logf:
        desk = _launch([CARDBOUND, "--home", str(home.root), "desk", "serve", "--port", "0", "--station", "desk-1"],
                       stderr=logf)
    try:
        end = time.monotonic() + 120
        while b"desk ready" not in log.read_bytes():  # its worker is up: it is serving
            assert desk.poll() is None, log.read_text()
            assert time.monotonic() < end, "desk did not start"
            time.sleep(0.2)
        _wait_keeping_nothing(desk, "desk serve", timeout=5)
    finally:
        _stop(desk)


@pytest.mark.usefixtures("control")
def test_enrol_dumps_no_core_and_is_not_dumpable(home: Home, faces_dir: Path) -> None:
    """`cardbound enrol --nrn-stdin` waits on standard input for the number (before any card or capture): the
    process is inspected while it waits, then let go without one."""
    valid = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d")
    photo = faces_dir / "portraits/face_recognition/obama/obama.jpg"
    enrol = _launch([CARDBOUND, "--home", str(home.root), "enrol", "--photo", str(photo), "--nrn-stdin",
                     "--category", "regular", "--valid-until", valid, "--card-timeout", "0.1"],
                    stderr=subprocess.DEVNULL)
    try:
        _wait_keeping_nothing(enrol, "enrol", timeout=60)
    finally:
        _stop(enrol)


@pytest.mark.usefixtures("control", "pcscd")
def test_gate_waiting_for_a_card_dumps_no_core_and_is_not_dumpable(home: Home, faces_dir: Path) -> None:
    photo = faces_dir / "portraits/face_recognition/obama/obama2.jpg"
    gate = _launch([CARDBOUND, "--home", str(home.root), "verify", "--once", "--reader", "0", "--photo", str(photo),
                    "--card-timeout", "60"], stderr=subprocess.DEVNULL)
    try:
        _wait_keeping_nothing(gate, "verify --once", timeout=50)
    finally:
        _stop(gate)


def test_no_core_dumps_lowers_both_limits_and_clears_the_dumpable_flag() -> None:
    code = ("import ctypes, resource; from biometric.isolation import no_core_dumps; libc = ctypes.CDLL(None); "
            "before = (resource.getrlimit(resource.RLIMIT_CORE), libc.prctl(3, 0, 0, 0, 0)); no_core_dumps(); "
            "print(before, (resource.getrlimit(resource.RLIMIT_CORE), libc.prctl(3, 0, 0, 0, 0)))")
    res = subprocess.run([*LAUNCH, sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [f"(({CORE_LIMIT},", f"{CORE_LIMIT}),", "1)", "((0,", "0),", "0)"], res.stdout
