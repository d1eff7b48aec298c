"""The sandboxed biometric worker: the only process that ever holds pixels or descriptors.

The parent (enrolment desk or gate) sends a *description* of the sample source (`SampleSource`: file paths, a
camera index, a video file) — never pixels — and gets back only a 512-byte template (enrolment) or a distance
(gate). The worker process:

- cannot write files: `RLIMIT_FSIZE=0` (any write that would grow a file fails with EFBIG; SIGXFSZ is ignored so
  it is an error, not a crash) and an audit hook that refuses opening files for writing, creating, renaming,
  removing or truncating them (defence in depth: the hook also stops zero-byte file creation, which the rlimit
  does not);
- cannot dump core: `RLIMIT_CORE=0` and `PR_SET_DUMPABLE=0` (no core file, no ptrace attach by other users);
- locks its memory against swap with `mlockall(MCL_CURRENT | MCL_FUTURE)` where the OS permits (reported);
- wipes every frame, sample, descriptor and template after use (`biometric.capture`).

Every request has a deadline; a worker that misses it or dies is killed and restarted, and the caller gets a
typed `WorkerError`. The 512-byte template crosses the pipe as raw bytes received *into* a caller-owned bytearray,
so the parent holds no immutable copy it cannot wipe.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import resource
import signal
import sys
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from biometric.capture import SampleSource

TEMPLATE_BYTES = 512
_PR_SET_DUMPABLE = 4
_MCL_CURRENT, _MCL_FUTURE = 1, 2
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_REFUSED_EVENTS = frozenset(
    {
        "os.remove",
        "os.rename",
        "os.truncate",
        "os.mkdir",
        "os.rmdir",
        "os.symlink",
        "os.link",
        "os.chmod",
        "os.utime",
        "shutil.copyfile",
        "shutil.move",
        "shutil.rmtree",
        "tempfile.mkstemp",
        "tempfile.mkdtemp",
    }
)


class WorkerError(Exception):
    """The worker failed to answer: it crashed, hung past the deadline, or reported an internal error."""


class WorkerTimeout(WorkerError):  # noqa: N818
    pass


class WorkerCrashed(WorkerError):  # noqa: N818
    pass


class SampleError(Exception):
    """The sample source is unusable: missing file, not an image, corrupt, too large, camera missing."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # the biometric error class name, e.g. "CameraError", "NotAnImageError"


@dataclass
class SandboxReport:
    fsize_limit: int
    core_limit: int
    dumpable: int
    memory_locked: bool


@dataclass
class EnrolmentResult:
    template: bytearray | None  # 512 bytes, caller-owned: wipe after sealing; None when no frame passed
    frames_seen: int
    frames_used: int
    quality: int
    reasons: list[str] = field(default_factory=list)

    def wipe(self) -> None:
        if self.template is not None:
            self.template[:] = bytes(len(self.template))


@dataclass
class ProbeOutcome:
    distance: float | None
    frames_seen: int
    reasons: list[str]
    capture_ms: float
    compare_ms: float


# ---------------------------------------------------------------------------------------------- worker side


def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _refuse_writes(event: str, args: tuple[Any, ...]) -> None:
    if event == "open":
        mode, flags = args[1], args[2]
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS
        ):
            raise PermissionError(f"biometric worker: writing files is forbidden ({args[0]!r})")
    elif event in _REFUSED_EVENTS:
        raise PermissionError(f"biometric worker: {event} is forbidden")


def apply_sandbox() -> SandboxReport:
    """Make this process unable to write files or dump core; lock memory where permitted. Irreversible."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = _libc()
    libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    locked = libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) == 0
    sys.dont_write_bytecode = True
    sys.addaudithook(_refuse_writes)
    return SandboxReport(
        resource.getrlimit(resource.RLIMIT_FSIZE)[0],
        resource.getrlimit(resource.RLIMIT_CORE)[0],
        int(libc.prctl(3, 0, 0, 0, 0)),  # PR_GET_DUMPABLE
        locked,
    )


def _serve(conn: Connection, warm: bool) -> None:
    report = apply_sandbox()
    from biometric.capture import enrolment_template, probe_distance
    from biometric.engine import FaceEngine
    from biometric.errors import ImageError
    from biometric.quality import PRESETS
    from biometric.template import Template

    engine = FaceEngine()
    if warm:
        engine.warm_up()
    conn.send(("ready", report))
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        op = request[0]
        try:
            if op == "enrol":
                _, source, max_samples, jitters, preset = request
                got = enrolment_template(
                    engine, source.frames(), max_samples=max_samples, num_jitters=jitters, quality=PRESETS[preset]
                )
                conn.send(("enrolled", got.frames_seen, got.frames_used, got.quality, got.reasons,
                           got.template is not None))
                if got.template is not None:
                    conn.send_bytes(got.template.vector.astype("<f4", copy=False).data)  # no bytes copy
                    got.wipe()
            elif op == "probe":
                _, source, budget_s, preset, allow_largest = request
                buf = bytearray(TEMPLATE_BYTES)
                conn.recv_bytes_into(buf)
                reference = Template.from_bytes(buf)
                buf[:] = bytes(TEMPLATE_BYTES)
                try:
                    res = probe_distance(engine, reference, source.frames(), budget_s=budget_s,
                                         quality=PRESETS[preset], allow_largest=allow_largest)
                finally:
                    reference.wipe()
                conn.send(("probed", res.distance, res.frames_seen, res.reasons, res.capture_ms, res.compare_ms))
            elif op == "sandbox":
                conn.send(("sandbox", report))
            elif op == "exec":  # test hook: run code *inside* the sandbox to prove what it cannot do
                if not os.environ.get("CARDBOUND_WORKER_TEST_HOOK"):
                    raise PermissionError("exec is only enabled for tests")
                scope: dict[str, Any] = {}
                exec(request[1], scope)  # noqa: S102 - test-only, gated by an environment variable
                conn.send(("result", scope.get("result")))
            elif op == "crash":
                if not os.environ.get("CARDBOUND_WORKER_TEST_HOOK"):
                    raise PermissionError("crash is only enabled for tests")
                os._exit(3)
            else:
                conn.send(("error", "ValueError", f"unknown request {op!r}"))
        except ImageError as exc:
            conn.send(("sample_error", type(exc).__name__, str(exc)))
        except Exception as exc:  # reported, not raised: the worker must keep serving
            conn.send(("error", type(exc).__name__, str(exc)))


# ---------------------------------------------------------------------------------------------- parent side


class BiometricWorker:
    """Handle to the sandboxed worker process. Start once, reuse for many requests; `close()` when done."""

    def __init__(self, *, start_timeout_s: float = 60.0, warm: bool = True) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._start_timeout_s = start_timeout_s
        self._warm = warm
        self._proc: Any = None
        self._conn: Connection | None = None
        self.sandbox: SandboxReport | None = None

    def start(self) -> BiometricWorker:
        if self._proc is not None and self._proc.is_alive():
            return self
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_serve, args=(child, self._warm), name="cardbound-biometric",
                                       daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        reply = self._recv(self._start_timeout_s, "start")
        if reply[0] != "ready":
            self._kill()
            raise WorkerError(f"worker did not start: {reply!r}")
        self.sandbox = reply[1]
        return self

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = None
        self._conn = None

    def close(self) -> None:
        self._kill()

    def __enter__(self) -> BiometricWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _recv(self, timeout_s: float, what: str) -> tuple[Any, ...]:
        assert self._conn is not None
        try:
            if not self._conn.poll(timeout_s):
                self._kill()
                raise WorkerTimeout(f"biometric worker did not answer {what} within {timeout_s:.1f} s; restarted")
            reply: tuple[Any, ...] = self._conn.recv()
        except (EOFError, OSError) as exc:
            self._kill()
            raise WorkerCrashed(f"biometric worker died during {what}; restarted") from exc
        return reply

    def _call(
        self, request: tuple[Any, ...], timeout_s: float, payload: bytes | bytearray | None = None
    ) -> tuple[Any, ...]:
        self.start()
        assert self._conn is not None
        try:
            self._conn.send(request)
            if payload is not None:
                self._conn.send_bytes(payload)
        except (BrokenPipeError, OSError) as exc:
            self._kill()
            raise WorkerCrashed("biometric worker pipe broken; restarted") from exc
        reply = self._recv(timeout_s, str(request[0]))
        if reply[0] == "sample_error":
            raise SampleError(reply[1], reply[2])
        if reply[0] == "error":
            raise WorkerError(f"{reply[1]}: {reply[2]}")
        return reply

    def enrol(
        self, source: SampleSource, *, max_samples: int = 3, num_jitters: int | None = None, preset: str = "desk",
        timeout_s: float = 60.0,
    ) -> EnrolmentResult:
        reply = self._call(("enrol", source, max_samples, num_jitters, preset), timeout_s)
        _, seen, used, quality, reasons, has_template = reply
        template: bytearray | None = None
        if has_template:
            assert self._conn is not None
            template = bytearray(TEMPLATE_BYTES)
            if not self._conn.poll(timeout_s):
                self._kill()
                raise WorkerTimeout("biometric worker did not send the template; restarted")
            self._conn.recv_bytes_into(template)
        return EnrolmentResult(template, seen, used, quality, list(reasons))

    def probe(
        self, reference: bytearray, source: SampleSource, *, budget_s: float = 2.0, preset: str = "gate",
        allow_largest: bool = True, timeout_s: float = 30.0,
    ) -> ProbeOutcome:
        if len(reference) != TEMPLATE_BYTES:
            raise ValueError(f"reference template must be {TEMPLATE_BYTES} bytes")
        reply = self._call(("probe", source, budget_s, preset, allow_largest), timeout_s, payload=reference)
        _, distance, seen, reasons, capture_ms, compare_ms = reply
        return ProbeOutcome(distance, seen, list(reasons), capture_ms, compare_ms)

    def run_in_sandbox(self, code: str, timeout_s: float = 30.0) -> Any:
        """Test hook (needs CARDBOUND_WORKER_TEST_HOOK=1 in the worker's environment): run `code` in the worker
        and return its `result` variable."""
        return self._call(("exec", code), timeout_s)[1]

    def crash(self, timeout_s: float = 10.0) -> None:
        """Test hook: make the worker die mid-request."""
        self._call(("crash",), timeout_s)
