"""Start and stop the real PC/SC chain for tests and the demo: pcscd and virtual card processes, by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from card import transport
from card.virtual.vpcd import Faults

PCSCD = "/usr/sbin/pcscd"
PCSCD_COMM = Path("/run/pcscd/pcscd.comm")
REPO_ROOT = Path(__file__).resolve().parents[2]


def reader_name(index: int) -> str:
    """The name pcscd gives vpcd's reader `index` (from /etc/reader.conf.d/vpcd)."""
    return f"Virtual PCD 00 {index:02d}"


class HarnessError(RuntimeError):
    """pcscd or a virtual card did not come up / go down as expected."""


def _pcscd_pids() -> list[int]:
    """The pcscd processes that serve *this* file system: a pcscd of another root (this suite run in a chroot
    beside the host's own card tests) has its socket elsewhere and would be waited for in vain."""
    try:
        ours = os.stat("/")
    except OSError:
        return []
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() != "pcscd":
                    continue
            except OSError:
                continue
            try:
                theirs = os.stat(entry / "root")
            except PermissionError:  # another user's pcscd (we are not root): assume it serves us, as before
                pids.append(int(entry.name))
                continue
            except OSError:  # gone meanwhile
                continue
            if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
                pids.append(int(entry.name))
    return pids


def _stop_pid(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGCONT)  # a frozen process cannot handle SIGTERM
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


class PcscDaemon:
    """`with PcscDaemon():` makes sure pcscd runs (starting `pcscd --foreground` when none runs) and stops
    the one it started, by PID. `owned` tells whether this object started it (and may restart it)."""

    def __init__(self, start_timeout: float = 10.0, log: Path | None = None) -> None:
        self.start_timeout = start_timeout
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.owned = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> PcscDaemon:
        running = _pcscd_pids()
        # attach to a running pcscd, unless it exits while we wait (another session's shutting down): then ours
        if running and self._wait_ready(attached=running):
            self.owned = False
            return self
        # a stale socket from a crashed pcscd blocks a new one; only safe to remove when none runs
        PCSCD_COMM.unlink(missing_ok=True)
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        try:
            # no --auto-exit: it would take the virtual readers away 60 s after the last client
            self.proc = subprocess.Popen(
                [PCSCD, "--foreground", "--info"], stdout=out, stderr=out, stdin=subprocess.DEVNULL
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # type: ignore[union-attr]
        self.owned = True
        self._wait_ready()
        return self

    def _wait_ready(self, attached: list[int] | None = None) -> bool:
        """Wait for the virtual readers. With `attached` (a pcscd we did not start): False as soon as all of those
        processes are gone, so the caller starts its own."""
        end = time.monotonic() + self.start_timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise HarnessError(f"pcscd exited with {self.proc.returncode}")
            try:
                if reader_name(0) in transport.list_readers():
                    return True
            except transport.TransportError:
                pass
            if attached is not None and not any(Path(f"/proc/{pid}").exists() for pid in attached):
                return False
            if time.monotonic() > end:
                raise HarnessError("pcscd did not become ready (no 'Virtual PCD' reader)")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.owned:
            _stop_pid(self.proc)
        self.proc = None

    def restart(self) -> None:
        """Stop and start again (only a daemon this object started)."""
        if not self.owned:
            raise HarnessError("pcscd was not started by this harness; will not restart it")
        self.stop()
        self.start()

    def __enter__(self) -> PcscDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class VirtualCardProcess:
    """A virtual card process in vpcd reader `reader`, backed by `image`. `insert()` starts it and waits until
    pcscd shows the card present; `remove()` stops it and waits until the reader is EMPTY."""

    image: Path
    reader: int = 0
    faults: Faults = Faults()
    t0: bool = False
    extended: bool = True
    timeout: float = 10.0
    fsync: bool = True
    hostile: str | None = None  # a `card.virtual.hostile` mode instead of the PIV card
    seed: int = 0

    def __post_init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def reader_name(self) -> str:
        return reader_name(self.reader)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "card.virtual", "--image", str(self.image), "--reader", str(self.reader)]
        if self.faults.drop_after is not None:
            cmd += ["--drop-after", str(self.faults.drop_after)]
        if self.faults.freeze_after is not None:
            cmd += ["--freeze-after", str(self.faults.freeze_after)]
        if self.faults.delay_ms:
            cmd += ["--delay-ms", str(self.faults.delay_ms)]
        if self.t0:
            cmd.append("--t0")
        if not self.extended:
            cmd.append("--no-extended")
        if not self.fsync:
            cmd.append("--no-fsync")
        if self.hostile:
            cmd += ["--hostile", self.hostile, "--seed", str(self.seed)]
        return cmd

    def insert(self, faults: Faults | None = None) -> VirtualCardProcess:
        if self.proc is not None and self.proc.poll() is None:
            raise HarnessError("card already inserted")
        if faults is not None:
            self.faults = faults
        try:  # another card still in this reader would be mistaken for ours
            transport.wait_for_removal(self.reader_name, timeout=self.timeout)
        except transport.NoCardError:
            raise HarnessError(f"reader {self.reader_name!r} still holds another card") from None
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            self.command(),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        end = time.monotonic() + self.timeout
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise HarnessError(f"virtual card exited with {self.proc.returncode}: {err.strip()[-500:]}")
            try:
                transport.wait_for_card(self.reader_name, timeout=0.5)
                return self
            except transport.NoCardError:
                pass
            if time.monotonic() > end:
                self.remove()
                raise HarnessError(f"virtual card not present in {self.reader_name!r}")

    def remove(self) -> None:
        """Pull the card: stop the process by PID and wait until the reader is EMPTY."""
        if self.proc is not None:
            _stop_pid(self.proc)
            if self.proc.stderr:
                self.proc.stderr.close()
        self.proc = None
        self.wait_empty()

    def kill(self) -> None:
        """Stop the process by PID without waiting for the reader (teardown of several cards)."""
        if self.proc is not None:
            _stop_pid(self.proc)

    def wait_empty(self) -> None:
        with contextlib.suppress(transport.PcscUnavailableError):  # no pcscd: no reader to be non-empty
            transport.wait_for_removal(self.reader_name, timeout=self.timeout)

    def freeze(self) -> None:
        """The card stops answering (SIGSTOP): transmit blocks in pcscd until thaw() or stop()."""
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.remove()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> VirtualCardProcess:
        return self.insert()

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
