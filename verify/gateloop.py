"""The gate's long-running loop: one watcher thread per reader, one audited decision per card presentation.

Total by construction: a presentation ends in exactly one decision, whatever the card does (a foreign card, a mute
card, garbage, a card pulled at any APDU) and whatever goes wrong inside (`INTERNAL_ERROR`); then the watcher waits
until the reader is seen EMPTY before it arms again, so a card left on the reader is never decided twice. A watcher
that dies anyway is a fault of the gate: the loop stops and says so (`LoopResult.fault`), and the command exits
non-zero so a supervisor restarts it.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from audit import AuditLog, GateFault
from card import transport
from verify.decision import Decision, Reason
from verify.flow import Gate


@dataclass(frozen=True)
class Lane:
    reader: str  # the PC/SC reader name
    reader_id: str  # "reader-0", ...: its position in the gate's list (audit-safe, unlike the reader name)
    lane_id: str  # the lane / door id of the gate configuration


class HookError(ValueError):
    """The door hook command cannot be used (unparsable, not found, not executable)."""


@dataclass(frozen=True)
class DoorHook:
    """The door-relay command, checked once at start-up: run with the decision JSON on stdin, within `timeout_s`."""

    argv: tuple[str, ...]
    timeout_s: float = 2.0

    @classmethod
    def parse(cls, command: str, timeout_s: float = 2.0) -> DoorHook:
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise HookError(f"--door-hook cannot be parsed: {exc}") from None
        if not argv:
            raise HookError("--door-hook is empty")
        if shutil.which(argv[0]) is None:  # a bare name is looked up on PATH, a path is checked as it is
            raise HookError(f"--door-hook: {argv[0]!r} is not an executable file")
        if not 0 < timeout_s <= 60:
            raise HookError("door hook timeout must be in (0, 60] seconds")
        return cls(tuple(argv), timeout_s)

    def run(self, decision: Decision) -> str | None:
        """Run the hook; None on success, else a fault code (never raises)."""
        try:
            done = subprocess.run(self.argv, input=decision.to_json(), text=True, timeout=self.timeout_s,
                                  check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return "door_hook_timeout"
        except (OSError, subprocess.SubprocessError):
            return "door_hook_failed"
        return None if done.returncode == 0 else "door_hook_failed"


@dataclass
class LoopResult:
    decisions: int = 0
    fault: str | None = None  # why the loop stopped on its own (a watcher died), None when asked to stop


@dataclass
class GateLoop:
    gate: Gate
    lanes: list[Lane]
    audit: AuditLog
    emit: Callable[[Decision], None]
    hook: DoorHook | None = None
    max_decisions: int = 0
    card_timeout_s: float = 2.0
    err: TextIO = field(default_factory=lambda: sys.stderr)
    on_reload: Callable[[], None] | None = None  # re-read policy and lists (SIGHUP); never raises

    def __post_init__(self) -> None:
        self.stop = threading.Event()
        self.reload = threading.Event()  # set from a signal handler; the reload runs between decisions
        # One biometric worker and one audit log: decisions are serialised. Re-entrant: a reload (run under it)
        # audits its own fault through `fault()`, which takes it too.
        self._lock = threading.RLock()
        self._count = 0
        self._fault: str | None = None

    # --- one presentation ---------------------------------------------------------------------------------

    def present(self, lane: Lane) -> Decision:
        """Connect to the card just seen on `lane` and decide. Never raises; the decision is audited."""
        gate = self.gate
        try:
            try:
                conn = transport.connect(lane.reader, timeout=self.card_timeout_s)
            except transport.NoCardError:  # gone between detection and connection
                return self._record(Decision(Reason.NO_CARD, gate.gate_id), lane)
            except transport.TransportError as exc:
                return self._record(
                    Decision(Reason.CARD_ERROR, gate.gate_id, detail=f"connect: {type(exc).__name__}"), lane)
            with conn:
                return gate.decide_connection(conn, reader_id=lane.reader_id, lane_id=lane.lane_id)
        except Exception as exc:  # noqa: BLE001 - whatever it was, this presentation gets its decision
            return self._record(Decision(Reason.INTERNAL_ERROR, gate.gate_id,
                                         detail=f"unexpected {type(exc).__name__}"), lane)

    def _record(self, decision: Decision, lane: Lane) -> Decision:
        decision.reader_id, decision.lane_id = lane.reader_id, lane.lane_id
        if decision.security_level is None:
            try:
                decision.security_level = self.gate.security_level()
            except Exception:  # noqa: BLE001
                decision.security_level = 3
        return self.gate.record(decision)

    def fault(self, code: str, lane: Lane | None = None, card_id: str | None = None) -> None:
        """Audit a fault of the gate (never raises: a failing audit log is said on stderr)."""
        try:
            with self._lock:
                self.audit.append(GateFault(gate_id=self.gate.gate_id, fault_code=code,
                                            lane_id=lane.lane_id if lane else None, card_id=card_id))
        except Exception as exc:  # noqa: BLE001
            print(f"gate fault {code} could not be audited: {type(exc).__name__}", file=self.err, flush=True)

    def _open_door(self, lane: Lane, decision: Decision) -> None:
        assert self.hook is not None
        failed = self.hook.run(decision)
        if failed:
            print(f"{lane.lane_id}: {failed}", file=self.err, flush=True)
            self.fault(failed, lane, decision.card_id)

    # --- the watchers -------------------------------------------------------------------------------------

    def _wait_until_empty(self, lane: Lane) -> None:
        """Block until the reader is seen EMPTY (or the loop stops). Errors are retried, never re-decided."""
        while not self.stop.is_set():
            try:
                transport.wait_for_removal(lane.reader, timeout=0.5)
                return
            except transport.NoCardError:
                continue
            except transport.TransportError:
                self.stop.wait(0.5)

    def _watch(self, lane: Lane) -> None:
        while not self.stop.is_set():
            try:
                transport.wait_for_card(lane.reader, timeout=0.5)
            except transport.NoCardError:
                continue
            except transport.TransportError as exc:  # reader unplugged, pcscd restarting: no presentation yet
                print(f"{lane.lane_id}: reader unavailable ({type(exc).__name__}); retrying", file=self.err,
                      flush=True)
                self.stop.wait(1.0)
                continue
            with self._lock:
                if self.stop.is_set():
                    return
                decision = self.present(lane)
                self._count += 1
                if self.max_decisions and self._count >= self.max_decisions:
                    self.stop.set()
            self.emit(decision)
            if not decision.audited:
                print(f"{lane.lane_id}: decision NOT audited; refused", file=self.err, flush=True)
            elif decision.accepted and self.hook is not None:
                # In its own thread, with its deadline: a hanging relay never stalls this lane or the others.
                threading.Thread(target=self._open_door, args=(lane, decision), daemon=True).start()
            self._wait_until_empty(lane)

    def _guarded(self, lane: Lane) -> None:
        try:
            self._watch(lane)
        except BaseException as exc:  # noqa: BLE001 - a dead watcher must be seen, not silently gone
            self._fault = f"reader thread for {lane.lane_id} died ({type(exc).__name__})"
            self.fault("reader_thread_died", lane)
            self.stop.set()

    def run(self) -> LoopResult:
        threads = [threading.Thread(target=self._guarded, args=(lane,), daemon=True, name=lane.lane_id)
                   for lane in self.lanes]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                if self.reload.is_set():
                    self.reload.clear()
                    if self.on_reload is not None:
                        with self._lock:  # never in the middle of a decision
                            self.on_reload()
                for t in threads:
                    t.join(0.2)
        finally:
            self.stop.set()
            for t in threads:
                t.join(3)
        return LoopResult(self._count, self._fault)
