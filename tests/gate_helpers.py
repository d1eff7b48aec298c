"""Helpers for tests that drive the installed `cardbound gate` command: a gate home, a card enrolled through the
real flow, a running gate whose JSON lines and stderr are collected, the audit events of a home."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
SITE = "BEANR-TEST"
EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "verify" / "gate.example.toml"


def cb(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CARDBOUND, "--home", str(home), *args], capture_output=True, text=True, timeout=timeout)


def gate_home(root: Path, level: int = 1) -> Path:
    """A station home with its keys, a desk station, the gate's bundle, at ISPS `level`."""
    h = root / "home"
    ks = KeyStore.init(h / "keys")
    ks.issue_station(STATION)
    ks.export_gate("gate-1", Home(h).gate_bundle)
    set_level(h, level)
    return h


def set_level(home: Path, level: int) -> subprocess.CompletedProcess[str]:
    res = cb(home, "gate", "level", str(level), "--site", SITE)
    assert res.returncode == 0, res.stderr
    return res


def enrol_card(home: Path, reader: str, photo: Path, engine: FaceEngine | None = None, *,
               valid_for: timedelta = timedelta(days=30), category: str = "regular") -> bytes:
    """Enrol the card in `reader` through the enrolment flow; return its GUID."""
    engine = engine or FaceEngine(quality=DESK)

    def capture() -> CapturedTemplate:
        got = enrolment_template(engine, [load_path(photo)], num_jitters=0)
        assert got.template is not None
        out = CapturedTemplate(bytearray(got.template.to_bytes()), 1, 1, got.quality)
        got.wipe()
        return out

    h = Home(home)
    with transport.connect(reader, timeout=5) as conn, AuditLog.open_station(h.root, node_id=h.node_id) as log:
        session = PivSession(conn)
        enrol(EnrolRequest(b"\x07" * 32, category, datetime.now(UTC).replace(microsecond=0) + valid_for,
                           STATION, "op"), session=session, keys=KeyStore.open(h.keystore), capture=capture, audit=log)
        return session.get_chuid().guid


def gate_config(path: Path, *, gate_lines: str = "", policy_lines: str = "", time_budget_ms: int = 2000) -> Path:
    """The example configuration without a camera, with extra `[gate]` keys and `[policy.lists]` lines."""
    text = EXAMPLE_CONFIG.read_text().replace("camera = 0", "")
    assert "time_budget_ms = 2000" in text
    text = text.replace("time_budget_ms = 2000", f"time_budget_ms = {time_budget_ms}")
    text = text.replace("[gate]\n", f"[gate]\n{gate_lines}\n", 1)
    if policy_lines:
        text += f"\n[policy.lists]\n{policy_lines}\n"
    path.write_text(text)
    return path


def audited(home: Path, event_type: str | None = None) -> list[dict[str, Any]]:
    h = Home(home)
    with AuditLog.open_station(h.root, node_id=h.node_id) as log:
        recs = [log.entry(i).record() for i in range(log.size)]
    if event_type is None:
        return recs
    return [r["payload"] for r in recs if r["type"] == event_type]


class RunningGate:
    """`cardbound gate ARGS` in the background; decisions (JSON lines) and stderr lines are collected."""

    def __init__(self, home: Path, *args: str) -> None:
        self.proc = subprocess.Popen([CARDBOUND, "--home", str(home), "gate", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout.append(line)
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            if "watching" in line:
                self.ready.set()

    def wait_ready(self, timeout: float = 60) -> bool:
        """True once the gate watches its readers; False at once if it exited, or after `timeout`."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.ready.wait(0.2):
                return True
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader threads collect the last lines
                return self.ready.is_set()
        return False

    def next(self, timeout: float = 30) -> dict[str, Any]:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no decision within {timeout} s; stderr: {''.join(self.stderr)[-2000:]}") from None

    def wait_stderr(self, text: str, *, since: int = 0, timeout: float = 30) -> str:
        """The first stderr line from index `since` on that contains `text` (waiting for it)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in self.stderr[since:]:
                if text in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not on stderr within {timeout} s: {''.join(self.stderr)[-2000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)
