"""Process isolation for everything that touches pixels or descriptors.

A long-lived worker process (multiprocessing `spawn`: a fresh interpreter, nothing inherited from the parent's
memory) is started once, loads the face models once and serves many requests. Before it reads its first request it
makes itself unable to keep anything:

- `RLIMIT_FSIZE = 0`: the kernel refuses every `write()` to a regular file (also in place, also appending) with
  EFBIG; SIGXFSZ is ignored so the attempt is an `OSError`, not a crash. What the limit does NOT stop: creating an
  empty file (`O_CREAT`), truncating to 0 (`O_TRUNC`, `truncate`), unlink/rename/mkdir/chmod, writing through a
  shared `mmap` of an existing file (no size change), and writes to pipes, sockets and devices.
- a `sys.addaudithook` hook, defence in depth for the gaps above at the Python level: it refuses `open` for
  writing/appending/creating/truncating, the `os.*` calls that change the file system, writable `mmap`s of files,
  sockets, `ctypes` library loading and starting processes. C extensions calling libc directly bypass the hook;
  they still hit the rlimit, so at worst they can create an empty file (Landlock/seccomp would close that).
- `RLIMIT_CORE = 0` and `prctl(PR_SET_DUMPABLE, 0)`: no core file, no ptrace attach, no /proc/PID/mem reads by
  other unprivileged processes.
- `mlockall(MCL_CURRENT | MCL_FUTURE)` where permitted (root, or an unlimited RLIMIT_MEMLOCK), so no page of a
  sample is ever swapped out; whether it took is in `SandboxReport`.
- stdin/stdout/stderr point at /dev/null: nothing it prints can land in a log.

Wire protocol. Requests (parent → worker) are pickled tuples `(id, op, args, payload_len)` followed by an optional
raw payload (the 512-byte reference at the gate). They name the *source* of a sample (`SampleSource`: photo paths,
camera index, video file, frames directory), never pixels. Replies (worker → parent) are JSON (never pickle: a
worker compromised by a hostile image must not get code execution in the parent), followed by an optional raw
payload received straight into a caller-owned bytearray (the 512-byte template at enrolment) so that the parent
never holds an immutable copy it cannot wipe. Raw payloads in both directions go through `send_buffer` and
`recv_buffer_into` (same framing as `Connection.send_bytes`, but written from and read into the caller's buffer:
`Connection.send_bytes` would send `header + buf`, a `bytes` copy of the reference, and `recv_bytes_into` reads
through `bytes` chunks).

Every request has a deadline. A worker that misses it or dies is killed (SIGKILL, by PID), a fresh one is spawned
at once, and the caller gets a typed `IsolationError`.

Public API:
    FaceWorker(*, start_timeout_s=60.0, preload=True) — context manager; start()/close()
        .enrol_template(source, *, preset="desk", max_samples=3, jitter=None, timeout_s=60.0) -> EnrolmentReply
        .verify_probe(reference, source, *, threshold=None, budget_s=2.0, preset="gate", allow_several=True,
                      timeout_s=None) -> ProbeReply
        .frame_quality(encoded, *, preset="desk", timeout_s=10.0) -> FrameQuality   (the desk's live hints)
        .compare_photos(SampleSource.photos(a, b), *, preset="gate", allow_several=False) -> PhotoComparison
          (`cardbound biometric compare`: only the distance or the quality reasons come back)
        .enrol_template_from_frames(frames, *, preset="desk", max_samples=3, timeout_s=60.0) -> EnrolmentReply
          (encoded frames a browser sent, held in caller-owned bytearrays: they cross the pipe as the raw payload,
          are decoded only in the worker, and both copies are wiped)
        .sandbox -> SandboxReport
    SandboxedWorker(registry, *, diagnostics=False, audit_hook=True, ...) — the generic mechanism
        .call(op, *args, timeout_s, payload=None, into=None) -> (meta, payload_len)
    Errors: IsolationError > WorkerStartError, WorkerTimeout, WorkerCrashed, WorkerProtocolError,
        RequestFailed > SampleUnusable
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib
import itertools
import json
import math
import multiprocessing
import os
import resource
import signal
import struct
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from biometric.capture import SampleSource

TEMPLATE_BYTES = 512
MAX_REPLY_BYTES = 64 * 1024  # a JSON reply header is small; anything bigger is a protocol violation
MAX_PAYLOAD_BYTES = 4096
MAX_FRAME_BYTES = 4 * 1024 * 1024  # one encoded camera frame (a 1920x1080 JPEG is ~0.3-0.6 MB)
MAX_FRAMES_PER_REQUEST = 5
MAX_FRAMES_PAYLOAD = MAX_FRAME_BYTES * MAX_FRAMES_PER_REQUEST
FACE_REGISTRY = "biometric.isolation:face_handlers"
NO_HANDLERS = "biometric.isolation:no_handlers"

_PR_SET_DUMPABLE, _PR_GET_DUMPABLE = 4, 3
_MCL_CURRENT, _MCL_FUTURE = 1, 2
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_MLOCK_MIN_LIMIT = 1 << 30  # below this MCL_FUTURE would make the face engine's allocations fail
_REFUSED_EVENTS = frozenset(
    {
        "os.remove", "os.rename", "os.truncate", "os.mkdir", "os.rmdir", "os.symlink", "os.link", "os.chmod",
        "os.chown", "os.utime", "os.mkfifo", "os.mknod", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
        "os.fork", "os.forkpty", "os.startfile", "shutil.copyfile", "shutil.copymode", "shutil.copystat",
        "shutil.copytree", "shutil.move", "shutil.rmtree", "shutil.make_archive", "shutil.unpack_archive",
        "tempfile.mkstemp", "tempfile.mkdtemp", "subprocess.Popen", "pty.spawn", "socket.__new__",
        "socket.connect", "socket.bind", "socket.sendto", "ctypes.dlopen", "sqlite3.connect",
    }
)


def no_core_dumps() -> None:
    """For the processes that hold card data next to the worker (gate, desk): no core file (`RLIMIT_CORE = 0`)
    and not dumpable (no ptrace attach, no /proc/PID/mem by other users). Linux only; elsewhere a no-op."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the rlimit alone
        _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


# ------------------------------------------------------------------------------------------------------- errors


class IsolationError(Exception):
    """The sandboxed worker did not deliver an answer."""


class WorkerStartError(IsolationError):
    """The worker could not be started (or did not become ready within the start deadline)."""


class WorkerTimeout(IsolationError):  # noqa: N818 - reads better at the call site than WorkerTimeoutError
    """The request missed its deadline; the worker was killed and a fresh one started."""


class WorkerCrashed(IsolationError):  # noqa: N818
    """The worker died during the request (signal, exit, broken pipe); a fresh one was started."""

    def __init__(self, message: str, exitcode: int | None = None) -> None:
        super().__init__(message)
        self.exitcode = exitcode  # negative: killed by that signal


class WorkerProtocolError(IsolationError):
    """The worker answered something that is not a valid reply; it was killed and restarted."""


class RequestFailed(IsolationError):
    """The handler raised inside the worker; the worker itself is fine and keeps serving."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind  # the exception class name inside the worker
        self.detail = message


class SampleUnusable(RequestFailed):  # noqa: N818
    """The sample source cannot be used: missing file, not an image, corrupt, too large, camera missing.
    `kind` is the `biometric.errors` class name (e.g. "NotAnImageError", "CameraError")."""


# ------------------------------------------------------------------------------------------------------- sandbox


@dataclass(frozen=True)
class SandboxReport:
    """What the worker read back from the kernel after sandboxing itself."""

    pid: int
    fsize_limit: tuple[int, int]  # (soft, hard), both 0
    core_limit: tuple[int, int]  # (soft, hard), both 0
    dumpable: int  # PR_GET_DUMPABLE, 0
    memory_locked: bool  # mlockall(MCL_CURRENT|MCL_FUTURE) took
    mlock_detail: str  # why not, when it did not
    vm_locked_kb: int  # VmLck from /proc/self/status (0 when not locked)
    audit_hook: bool
    stdio_null: bool

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SandboxReport:
        try:
            return cls(
                pid=int(d["pid"]),
                fsize_limit=(int(d["fsize_limit"][0]), int(d["fsize_limit"][1])),
                core_limit=(int(d["core_limit"][0]), int(d["core_limit"][1])),
                dumpable=int(d["dumpable"]),
                memory_locked=bool(d["memory_locked"]),
                mlock_detail=str(d["mlock_detail"]),
                vm_locked_kb=int(d["vm_locked_kb"]),
                audit_hook=bool(d["audit_hook"]),
                stdio_null=bool(d["stdio_null"]),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise WorkerProtocolError(f"malformed sandbox report: {exc}") from exc


_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:  # loaded before the audit hook refuses ctypes.dlopen
        _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _LIBC


def _refuse(event: str, args: tuple[Any, ...]) -> None:
    """Audit hook: refuse anything that could leave a trace outside this process's memory."""
    if event == "open":
        path, mode, flags = args[0], args[1], args[2]
        if path == os.devnull:
            return
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS
        ):
            raise PermissionError(f"isolated worker: opening {path!r} for writing is forbidden")
    elif event == "mmap.__new__":
        fileno, access = args[0], args[2]
        import mmap  # already imported by whoever raised the event

        if fileno != -1 and access in (mmap.ACCESS_WRITE, mmap.ACCESS_DEFAULT):
            raise PermissionError("isolated worker: writable file mappings are forbidden")
    elif event in _REFUSED_EVENTS:
        raise PermissionError(f"isolated worker: {event} is forbidden")


def _vm_locked_kb() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmLck:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _report(memory_locked: bool, mlock_detail: str, audit_hook: bool, stdio_null: bool) -> SandboxReport:
    return SandboxReport(
        pid=os.getpid(),
        fsize_limit=resource.getrlimit(resource.RLIMIT_FSIZE),
        core_limit=resource.getrlimit(resource.RLIMIT_CORE),
        dumpable=int(_libc().prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0)),
        memory_locked=memory_locked,
        mlock_detail=mlock_detail,
        vm_locked_kb=_vm_locked_kb(),
        audit_hook=audit_hook,
        stdio_null=stdio_null,
    )


def _lock_memory() -> tuple[bool, str]:
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if os.geteuid() != 0 and soft != resource.RLIM_INFINITY and soft < _MLOCK_MIN_LIMIT:
        # MCL_FUTURE under a small limit would make later allocations fail: better unlocked than broken
        return False, f"RLIMIT_MEMLOCK is {soft} bytes (need root or >= 1 GiB)"
    if _libc().mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
        err = ctypes.get_errno()
        return False, f"mlockall failed: {os.strerror(err)}"
    return True, ""


def apply_sandbox(*, audit_hook: bool = True, null_stdio: bool = True) -> SandboxReport:
    """Make the calling process unable to write files or dump core, lock its memory where permitted.

    Irreversible (the hard limits are lowered too, and audit hooks cannot be removed): call it only in a process
    made for that purpose."""
    libc = _libc()
    if null_stdio:
        fd = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(fd, target)
        os.close(fd)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    locked, detail = _lock_memory()
    sys.dont_write_bytecode = True  # late imports must not even try to write __pycache__
    if audit_hook:
        import mmap  # noqa: F401 - the hook refers to its constants; import before it is installed

        sys.addaudithook(_refuse)
    return _report(locked, detail, audit_hook, null_stdio)


# ------------------------------------------------------------------------------------------------ worker side

HandlerResult = tuple[dict[str, Any], bytearray | None]
Handler = Callable[..., HandlerResult]  # handler(ctx, payload: bytearray | None, *args) -> (meta, payload out)


class WorkerContext:
    """State kept across requests inside the worker (the face engine, loaded once)."""

    def __init__(self, report: SandboxReport) -> None:
        self.report = report
        self._engine: Any = None
        self.pending: Any = None  # the live probe captured ahead of its reference (`probe_capture`), if any

    def drop_pending(self) -> None:
        if self.pending is not None:
            self.pending.wipe()
            self.pending = None

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from biometric.engine import FaceEngine

            self._engine = FaceEngine()
        return self._engine


def no_handlers() -> dict[str, Handler]:
    return {}


def face_handlers() -> dict[str, Handler]:
    return {"enrol_template": _h_enrol_template, "verify_probe": _h_verify_probe,
            "frame_quality": _h_frame_quality, "enrol_frames": _h_enrol_frames,
            "probe_capture": _h_probe_capture, "probe_compare": _h_probe_compare, "probe_discard": _h_probe_discard,
            "compare_photos": _h_compare_photos}


def _encoded_frames(payload: bytearray | None, lengths: list[int]) -> Iterator[Any]:
    """Decode the encoded frames packed in `payload` one at a time (each wiped by the consumer)."""
    from biometric.sources import load_bytes

    if payload is None or sum(lengths) != len(payload) or not all(isinstance(n, int) and n > 0 for n in lengths):
        raise ValueError("frame lengths do not match the payload")
    view = memoryview(payload)
    offset = 0
    try:
        for n in lengths:
            yield load_bytes(view[offset : offset + n])
            offset += n
    finally:
        view.release()


def _h_frame_quality(ctx: WorkerContext, payload: bytearray | None, preset: str) -> HandlerResult:
    from biometric.quality import PRESETS, QualityFailure
    from biometric.sources import load_bytes
    from biometric.wipe import wipe

    if payload is None:
        raise ValueError("frame_quality needs an encoded frame")
    frame = load_bytes(payload)
    try:
        sample = ctx.engine.analyse(frame, quality=PRESETS[preset], allow_several=False)
    except QualityFailure as exc:
        m = exc.metrics
        return {"ok": False, "reasons": [r.value for r in exc.reasons],
                "inter_eye_px": None if m is None else round(m.inter_eye_px, 1)}, None
    finally:
        wipe(frame)
    try:
        return {"ok": True, "reasons": [], "inter_eye_px": round(sample.quality.inter_eye_px, 1)}, None
    finally:
        sample.wipe()


def _h_enrol_frames(
    ctx: WorkerContext, payload: bytearray | None, lengths: list[int], preset: str, max_samples: int
) -> HandlerResult:
    from biometric.capture import enrolment_template
    from biometric.quality import PRESETS

    got = enrolment_template(ctx.engine, _encoded_frames(payload, lengths), max_samples=max_samples,
                             quality=PRESETS[preset])
    out: bytearray | None = None
    try:
        if got.template is not None:
            le = got.template.vector.astype("<f4", copy=False)
            out = bytearray(le.data.cast("B"))
    finally:
        got.wipe()
    meta = {"frames_seen": got.frames_seen, "frames_used": got.frames_used, "quality": got.quality,
            "reasons": list(got.reasons), "spread": round(got.spread, 4),
            "disagreeing": [list(p) for p in got.disagreeing]}
    return meta, out


def _h_enrol_template(
    ctx: WorkerContext, payload: bytearray | None, source: SampleSource, preset: str, max_samples: int,
    jitter: int | None,
) -> HandlerResult:
    from biometric.capture import enrolment_template
    from biometric.quality import PRESETS

    got = enrolment_template(ctx.engine, source.frames(), max_samples=max_samples, num_jitters=jitter,
                             quality=PRESETS[preset])
    out: bytearray | None = None
    try:
        if got.template is not None:
            # straight from the array into a bytearray we can wipe after sending (no immutable bytes copy)
            le = got.template.vector.astype("<f4", copy=False)
            out = bytearray(le.data.cast("B"))
    finally:
        got.wipe()
    meta = {"frames_seen": got.frames_seen, "frames_used": got.frames_used, "quality": got.quality,
            "reasons": list(got.reasons), "spread": round(got.spread, 4),
            "disagreeing": [list(p) for p in got.disagreeing]}
    return meta, out


def _h_verify_probe(
    ctx: WorkerContext, payload: bytearray | None, source: SampleSource, threshold: float | None, budget_s: float,
    preset: str, allow_several: bool, fuse: int = 1,
) -> HandlerResult:
    from biometric.capture import probe_distance
    from biometric.quality import PRESETS
    from biometric.template import Template

    if payload is None or len(payload) != TEMPLATE_BYTES:
        raise ValueError(f"verify_probe needs the {TEMPLATE_BYTES}-byte reference")
    reference = Template.from_bytes(payload)
    try:
        res = probe_distance(ctx.engine, reference, source.frames(), budget_s=budget_s, quality=PRESETS[preset],
                             allow_several=allow_several, fuse=fuse)
    finally:
        reference.wipe()
    matched = None if threshold is None else (res.distance is not None and res.distance <= threshold)
    meta = {"distance": res.distance, "matched": matched, "frames_seen": res.frames_seen,
            "reasons": list(res.reasons), "capture_ms": res.capture_ms, "compare_ms": res.compare_ms,
            "faces": res.faces, "frames_used": res.frames_used}
    return meta, None


def _h_probe_capture(
    ctx: WorkerContext, payload: bytearray | None, source: SampleSource, budget_s: float, preset: str,
    allow_several: bool, fuse: int,
) -> HandlerResult:
    """First half of a gate probe, started when the card is detected: capture and fuse the live probe, keep it
    here (never sent), wait for `probe_compare` or `probe_discard`. A new capture wipes any earlier one."""
    from biometric.capture import live_probe
    from biometric.quality import PRESETS

    ctx.drop_pending()
    probe = live_probe(ctx.engine, source.frames(), budget_s=budget_s, quality=PRESETS[preset],
                       allow_several=allow_several, fuse=fuse)
    ctx.pending = probe
    meta = {"frames_seen": probe.frames_seen, "frames_used": probe.frames_used, "reasons": list(probe.reasons),
            "capture_ms": probe.capture_ms, "acquired": probe.template is not None, "faces": probe.faces}
    return meta, None


def _h_probe_compare(ctx: WorkerContext, payload: bytearray | None, threshold: float | None) -> HandlerResult:
    """Second half: the 512-byte reference arrives; compare 1:1 with the pending probe and wipe both."""
    from biometric.template import Template

    if payload is None or len(payload) != TEMPLATE_BYTES:
        ctx.drop_pending()
        raise ValueError(f"probe_compare needs the {TEMPLATE_BYTES}-byte reference")
    if ctx.pending is None:
        raise LookupError("no pending probe")
    probe, ctx.pending = ctx.pending, None
    reference = Template.from_bytes(payload)
    try:
        res = probe.compare_with(reference)
    finally:
        reference.wipe()
        probe.wipe()
    matched = None if threshold is None else (res.distance is not None and res.distance <= threshold)
    meta = {"distance": res.distance, "matched": matched, "frames_seen": res.frames_seen,
            "reasons": list(res.reasons), "capture_ms": res.capture_ms, "compare_ms": res.compare_ms,
            "faces": res.faces, "frames_used": res.frames_used}
    return meta, None


def _h_probe_discard(ctx: WorkerContext, payload: bytearray | None) -> HandlerResult:
    """The card was refused (or needs no face): the pending probe is wiped unused."""
    had = ctx.pending is not None
    ctx.drop_pending()
    return {"discarded": had}, None


def _h_compare_photos(
    ctx: WorkerContext, payload: bytearray | None, source: SampleSource, preset: str, allow_several: bool
) -> HandlerResult:
    """`cardbound biometric compare`: the first photo of `source` as the enrolment sample, the second as the live
    probe, both decoded, described and compared here; only the distance (or the quality reasons) leaves."""
    from biometric.quality import PRESETS, QualityFailure
    from biometric.template import compare
    from biometric.wipe import sensitive, wipe

    if source.kind != "photo" or len(source.paths) != 2:
        raise ValueError("compare_photos needs a source of exactly two photos")
    engine, quality = ctx.engine, PRESETS[preset]
    frames = source.frames()
    photo = 1
    try:
        with sensitive(next(frames)) as f1, sensitive(engine.analyse(f1, allow_several=allow_several,
                                                                     quality=quality)) as s1:
            wipe(f1)
            ref = engine.reference_template([s1])
        photo = 2
        with sensitive(ref), sensitive(next(frames)) as f2:
            s2 = engine.analyse(f2, allow_several=allow_several, quality=quality)
            wipe(f2)
            with sensitive(s2), sensitive(engine.probe_template(s2)) as probe:
                distance = compare(ref, probe)
    except QualityFailure as exc:
        return {"distance": None, "photo": photo, "reasons": [r.value for r in exc.reasons]}, None
    finally:
        getattr(frames, "close", lambda: None)()  # a generator: stop the source (it wipes what it holds)
    return {"distance": float(distance), "photo": None, "reasons": []}, None


# Diagnostics: only registered when the parent asks for them (tests and the audit module's conformance probe).


def _h_sandbox(ctx: WorkerContext, payload: bytearray | None) -> HandlerResult:
    r = _report(ctx.report.memory_locked, ctx.report.mlock_detail, ctx.report.audit_hook, ctx.report.stdio_null)
    return _report_json(r), None


def _h_echo(ctx: WorkerContext, payload: bytearray | None, value: Any) -> HandlerResult:
    return {"value": value}, payload


def _h_sleep(ctx: WorkerContext, payload: bytearray | None, seconds: float) -> HandlerResult:
    time.sleep(seconds)
    return {"slept": seconds}, None


def _h_crash(ctx: WorkerContext, payload: bytearray | None, how: str) -> HandlerResult:
    if how == "exit":
        os._exit(3)
    if how == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if how == "abort":
        os.abort()
    raise ValueError(f"unknown crash {how!r}")


def _h_bad_reply(ctx: WorkerContext, payload: bytearray | None, size: int) -> HandlerResult:
    return {"junk": "x" * size}, None


def _h_try_write(ctx: WorkerContext, payload: bytearray | None, method: str, path: str) -> HandlerResult:
    """Try to leave `path` behind (or change it) in one of several ways; report what happened."""
    try:
        _WRITES[method](path)
    except OSError as exc:
        return {"outcome": "refused", "exc": type(exc).__name__, "errno": exc.errno, "message": str(exc)}, None
    return {"outcome": "done"}, None


def _w_open_w(path: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write("x")


def _w_open_x(path: str) -> None:
    with open(path, "xb") as f:
        f.write(b"x")


def _w_os_open_creat(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)


def _w_append(path: str) -> None:
    with open(path, "ab") as f:
        f.write(b"x")


def _w_overwrite(path: str) -> None:  # in place, no growth
    with open(path, "r+b") as f:
        f.write(b"x")


def _w_numpy_tofile(path: str) -> None:
    import numpy as np

    np.zeros(16, dtype=np.float32).tofile(path)


def _w_truncate(path: str) -> None:
    os.truncate(path, 0)


def _w_remove(path: str) -> None:
    os.remove(path)


def _w_rename(path: str) -> None:
    os.rename(path, path + ".moved")


def _w_mmap(path: str) -> None:
    import mmap

    fd = os.open(path, os.O_RDWR)  # a shared writable mapping needs a read-write descriptor
    try:
        m = mmap.mmap(fd, 0, access=mmap.ACCESS_WRITE)
        m[0:1] = b"x"
        m.close()
    finally:
        os.close(fd)


def _w_libc(path: str) -> None:
    """Bypasses the audit hook (as a C extension would): only the kernel's rlimit stands in the way."""
    libc = _libc()
    fd = libc.open(path.encode(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    try:
        if libc.write(fd, b"x", 1) < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        libc.close(fd)


_WRITES: dict[str, Callable[[str], None]] = {
    "open_w": _w_open_w,
    "open_x": _w_open_x,
    "os_open_creat": _w_os_open_creat,
    "append": _w_append,
    "overwrite": _w_overwrite,
    "numpy_tofile": _w_numpy_tofile,
    "truncate": _w_truncate,
    "remove": _w_remove,
    "rename": _w_rename,
    "mmap": _w_mmap,
    "libc": _w_libc,
}
WRITE_METHODS = tuple(_WRITES)

_DIAGNOSTICS: dict[str, Handler] = {
    "diag.sandbox": _h_sandbox,
    "diag.echo": _h_echo,
    "diag.sleep": _h_sleep,
    "diag.crash": _h_crash,
    "diag.bad_reply": _h_bad_reply,
    "diag.try_write": _h_try_write,
}


def _report_json(r: SandboxReport) -> dict[str, Any]:
    return {
        "pid": r.pid, "fsize_limit": list(r.fsize_limit), "core_limit": list(r.core_limit), "dumpable": r.dumpable,
        "memory_locked": r.memory_locked, "mlock_detail": r.mlock_detail, "vm_locked_kb": r.vm_locked_kb,
        "audit_hook": r.audit_hook, "stdio_null": r.stdio_null,
    }


def _load_registry(spec: str) -> dict[str, Handler]:
    module_name, _, attr = spec.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    handlers = dict(factory())
    for name, fn in handlers.items():
        if not isinstance(name, str) or not callable(fn):
            raise TypeError(f"registry {spec} has a bad handler entry {name!r}")
    return handlers


# Raw payloads (templates, encoded frames) cross the pipe without ever being copied into a `bytes` object, which
# could not be wiped and would stay in freed memory: `Connection.send_bytes` sends `header + buf` for anything up to
# 16 KiB (an immutable copy of the 512-byte reference), and `Connection.recv_bytes_into` reads through `os.read`
# chunks and a BytesIO before copying into the caller's buffer. These two keep the same framing (a 4-byte
# big-endian length, then the bytes), so either end may still use the `Connection` methods for JSON and pickles.
_LENGTH = struct.Struct("!i")


def send_buffer(conn: Connection, buf: bytes | bytearray | memoryview) -> None:
    """Send `buf` as one message, written straight from the caller's buffer (no copy)."""
    fd = conn.fileno()
    with memoryview(buf) as view, view.cast("B") as data:
        for part in (memoryview(_LENGTH.pack(len(data))), data):
            while len(part):
                part = part[os.write(fd, part):]


def recv_buffer_into(conn: Connection, buf: bytearray) -> int:
    """Receive one message straight into `buf` (`readv`, no intermediate copy); return its length. A message
    longer than `buf` raises `multiprocessing.BufferTooShort` with nothing of it read (the stream is then out of
    step: the caller must drop the connection)."""
    fd = conn.fileno()
    head = b""
    while len(head) < _LENGTH.size:
        chunk = os.read(fd, _LENGTH.size - len(head))
        if not chunk:
            raise EOFError
        head += chunk
    n = int(_LENGTH.unpack(head)[0])
    if not 0 <= n <= len(buf):
        raise multiprocessing.BufferTooShort(f"message of {n} bytes for a {len(buf)}-byte buffer")
    with memoryview(buf) as view:
        got = 0
        while got < n:
            k = os.readv(fd, [view[got:n]])
            if k == 0:
                raise OSError("got end of file during message")
            got += k
    return n


def _send(conn: Connection, header: dict[str, Any], payload: bytearray | None = None) -> None:
    header["payload"] = None if payload is None else len(payload)
    conn.send_bytes(json.dumps(header, allow_nan=False).encode())
    if payload is not None:
        send_buffer(conn, payload)
        payload[:] = bytes(len(payload))


def _worker_main(conn: Connection, registry: str, diagnostics: bool, audit_hook: bool, preload: bool) -> None:
    """Entry point of the worker process (spawned: a fresh interpreter)."""
    try:
        handlers = _load_registry(registry)
        if diagnostics:
            handlers.update(_DIAGNOSTICS)
        # import what requests will need *before* the sandbox: imports after it cannot cache bytecode
        import numpy  # noqa: F401

        if preload:
            from biometric.engine import FaceEngine

            engine = FaceEngine()
            engine.warm_up()
        report = apply_sandbox(audit_hook=audit_hook)
        ctx = WorkerContext(report)
        if preload:
            ctx._engine = engine
    except Exception as exc:  # reported to the parent: there is nowhere else to say it
        _send(conn, {"id": 0, "status": "error", "kind": type(exc).__name__, "message": str(exc)[:500]})
        return
    _send(conn, {"id": 0, "status": "ready", "meta": _report_json(report)})
    while True:
        try:
            rid, op, args, payload_len = conn.recv()
        except EOFError:
            return  # parent closed the pipe: shut down
        payload: bytearray | None = None
        if payload_len:
            if not 0 < payload_len <= MAX_FRAMES_PAYLOAD:
                return  # a parent that announces this is broken: stop; it sees EOF and restarts us
            payload = bytearray(payload_len)
            if recv_buffer_into(conn, payload) != payload_len:
                return  # not what was announced: stop; the parent sees EOF and restarts us
        try:
            handler = handlers.get(op)
            if handler is None:
                raise LookupError(f"unknown request {op!r}")
            meta, out = handler(ctx, payload, *args)
            _send(conn, {"id": rid, "status": "ok", "meta": meta}, out)
        except Exception as exc:  # reported, not raised: the worker keeps serving
            from biometric.errors import ImageError

            status = "sample_error" if isinstance(exc, ImageError) else "error"
            _send(conn, {"id": rid, "status": status, "kind": type(exc).__name__, "message": str(exc)[:500]})
        finally:
            if payload is not None:
                payload[:] = bytes(len(payload))


# ------------------------------------------------------------------------------------------------ parent side


class SandboxedWorker:
    """Handle on one sandboxed worker process serving the handlers of `registry` ("module:factory").

    Start once, reuse for many requests; not thread-safe (one request at a time, as at a gate)."""

    def __init__(
        self,
        registry: str = NO_HANDLERS,
        *,
        start_timeout_s: float = 60.0,
        diagnostics: bool = False,
        audit_hook: bool = True,
        preload: bool = False,
    ) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._registry = registry
        self._start_timeout_s = start_timeout_s
        self._diagnostics = diagnostics
        self._audit_hook = audit_hook
        self._preload = preload
        self._proc: Any = None
        self._conn: Connection | None = None
        self._ready = False
        self._ids = itertools.count(1)
        self.sandbox: SandboxReport | None = None
        self.restarts = 0

    # lifecycle -------------------------------------------------------------------------------------------

    def _spawn(self) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_worker_main,
            args=(child, self._registry, self._diagnostics, self._audit_hook, self._preload),
            name="cardbound-isolated",
            daemon=True,
        )
        try:
            proc.start()
        except OSError as exc:
            parent.close()
            raise WorkerStartError(f"cannot start the isolated worker: {exc}") from exc
        finally:
            child.close()
        self._proc, self._conn, self._ready = proc, parent, False

    def _await_ready(self) -> None:
        assert self._conn is not None
        try:
            if not self._conn.poll(self._start_timeout_s):
                self._kill()
                raise WorkerStartError(f"isolated worker not ready within {self._start_timeout_s:.0f} s")
            header = self._read_header()
        except (EOFError, OSError) as exc:
            self._kill()
            raise WorkerStartError("isolated worker died while starting") from exc
        if header.get("status") != "ready":
            self._kill()
            raise WorkerStartError(f"isolated worker failed to start: {header.get('kind')}: {header.get('message')}")
        self.sandbox = SandboxReport.from_json(header.get("meta") or {})
        self._ready = True

    def start(self) -> SandboxedWorker:
        """Spawn the worker if needed and wait until it is sandboxed and ready (models loaded)."""
        if self._proc is None or not self._proc.is_alive():
            self._kill()
            self._spawn()
        if not self._ready:
            self._await_ready()
        return self

    def _kill(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()  # our own child, by PID
            self._proc.join(5)
            self._proc.close()
        self._proc, self._conn, self._ready = None, None, False

    def _restart(self) -> None:
        """Kill and spawn a fresh worker now, without waiting: it loads its models while the caller reports."""
        self._kill()
        self.restarts += 1
        with contextlib.suppress(WorkerStartError):  # the next call retries and reports it
            self._spawn()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # the worker sees EOF and exits
            self._conn = None
        if self._proc is not None:
            self._proc.join(2)
        self._kill()

    def __enter__(self) -> SandboxedWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    # requests --------------------------------------------------------------------------------------------

    def _read_header(self) -> dict[str, Any]:
        assert self._conn is not None
        try:
            raw = self._conn.recv_bytes(MAX_REPLY_BYTES)
        except OSError as exc:
            if "too long" in str(exc) or "bad message length" in str(exc):
                raise WorkerProtocolError("reply header too long") from exc
            raise
        try:
            header = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise WorkerProtocolError("reply is not JSON") from exc
        if not isinstance(header, dict):
            raise WorkerProtocolError("reply is not a JSON object")
        return header

    def call(
        self,
        op: str,
        *args: Any,
        timeout_s: float,
        payload: bytes | bytearray | None = None,
        into: bytearray | None = None,
        max_payload: int = MAX_PAYLOAD_BYTES,
    ) -> tuple[dict[str, Any], int]:
        """Run handler `op` in the worker; return its JSON `meta` and the number of payload bytes written into
        `into` (0 if none). Raises `IsolationError` subclasses; after a timeout, crash or protocol error the
        worker has been replaced by a fresh one."""
        if not math.isfinite(timeout_s) or timeout_s <= 0:
            raise ValueError("timeout_s must be a positive number")
        if payload is not None and not 0 < len(payload) <= min(max_payload, MAX_FRAMES_PAYLOAD):
            raise ValueError(f"payload must be 1..{min(max_payload, MAX_FRAMES_PAYLOAD)} bytes")
        self.start()
        assert self._conn is not None and self._proc is not None
        rid = next(self._ids)
        deadline = time.monotonic() + timeout_s
        try:
            self._conn.send((rid, op, args, 0 if payload is None else len(payload)))
            if payload is not None:
                send_buffer(self._conn, payload)
            header = self._recv_header(deadline, op, timeout_s)
            if header.get("id") != rid:
                raise WorkerProtocolError(f"reply to request {header.get('id')!r}, expected {rid}")
            status = header.get("status")
            n = 0
            if header.get("payload") is not None:
                n = self._recv_payload(header["payload"], into, deadline, op, timeout_s)
            if status == "ok":
                meta = header.get("meta")
                if not isinstance(meta, dict):
                    raise WorkerProtocolError("reply without meta")
                return meta, n
            kind, message = str(header.get("kind", "?")), str(header.get("message", ""))
            if status == "sample_error":
                raise SampleUnusable(kind, message)
            if status == "error":
                raise RequestFailed(kind, message)
            raise WorkerProtocolError(f"unknown reply status {status!r}")
        except (WorkerProtocolError, WorkerTimeout):
            self._restart()
            raise
        except (EOFError, OSError) as exc:
            exitcode = self._exitcode()
            self._restart()
            raise WorkerCrashed(f"isolated worker died during {op} (exit code {exitcode}); restarted",
                                exitcode) from exc

    def _exitcode(self) -> int | None:
        if self._proc is None:
            return None
        self._proc.join(1)
        code = self._proc.exitcode
        return None if code is None else int(code)

    def _wait(self, deadline: float, op: str, timeout_s: float) -> None:
        assert self._conn is not None
        if not self._conn.poll(max(0.0, deadline - time.monotonic())):
            raise WorkerTimeout(f"isolated worker did not answer {op} within {timeout_s:.1f} s; restarted")

    def _recv_header(self, deadline: float, op: str, timeout_s: float) -> dict[str, Any]:
        self._wait(deadline, op, timeout_s)
        return self._read_header()

    def _recv_payload(
        self, length: Any, into: bytearray | None, deadline: float, op: str, timeout_s: float
    ) -> int:
        assert self._conn is not None
        if not isinstance(length, int) or not 0 < length <= MAX_PAYLOAD_BYTES:
            raise WorkerProtocolError(f"bad payload length {length!r}")
        if into is None or len(into) != length:
            raise WorkerProtocolError(f"unexpected {length}-byte payload for {op}")
        self._wait(deadline, op, timeout_s)
        try:
            n = recv_buffer_into(self._conn, into)
        except multiprocessing.BufferTooShort as exc:
            raise WorkerProtocolError("payload longer than announced") from exc
        if n != length:
            raise WorkerProtocolError(f"payload of {n} bytes, announced {length}")
        return n


# ------------------------------------------------------------------------------------------------ face API


@dataclass
class EnrolmentReply:
    """Enrolment result: the 512-byte template in a caller-owned bytearray (wipe it after sealing)."""

    template: bytearray | None  # None when no frame passed the desk quality gate
    frames_seen: int
    frames_used: int
    quality: int  # 0..100 for the sealed header
    reasons: list[str] = field(default_factory=list)  # quality reason codes of the refused frames
    spread: float = 0.0  # largest distance between two of the samples (no descriptor leaves the worker)
    disagreeing: list[tuple[int, int]] = field(default_factory=list)  # frame numbers of samples that disagree

    def wipe(self) -> None:
        if self.template is not None:
            self.template[:] = bytes(len(self.template))


@dataclass(frozen=True)
class ProbeReply:
    """Gate result: a distance (or None with the quality reasons), the worker's decision at `threshold` (None when
    no threshold was given: the caller decides), timings."""

    distance: float | None
    matched: bool | None
    frames_seen: int
    reasons: tuple[str, ...]
    capture_ms: float
    compare_ms: float
    faces: int = 0  # faces in the compared frame (the gate policy decides what a second one means)
    frames_used: int = 0  # frames fused into the probe


def _int(meta: Mapping[str, Any], key: str, lo: int, hi: int) -> int:
    v = meta.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise WorkerProtocolError(f"bad {key} in reply")
    return v


def _float(meta: Mapping[str, Any], key: str, lo: float, hi: float) -> float:
    v = meta.get(key)
    if not isinstance(v, int | float) or isinstance(v, bool) or not lo <= float(v) <= hi:
        raise WorkerProtocolError(f"bad {key} in reply")
    return float(v)


def _reasons(meta: Mapping[str, Any]) -> list[str]:
    v = meta.get("reasons")
    if not isinstance(v, list) or not all(isinstance(r, str) and len(r) <= 64 for r in v):
        raise WorkerProtocolError("bad reasons in reply")
    return list(v)


def _pairs(meta: Mapping[str, Any]) -> list[tuple[int, int]]:
    v = meta.get("disagreeing")
    if not isinstance(v, list) or len(v) > 30 * 29 // 2 or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(i, int) and not isinstance(i, bool) and
                                                    0 < i <= 10**6 for i in p) for p in v
    ):
        raise WorkerProtocolError("bad disagreeing pairs in reply")
    return [(p[0], p[1]) for p in v]


@dataclass(frozen=True)
class FrameQuality:
    """The desk quality gate's verdict on one live frame: reason codes only (no pixels, no landmarks)."""

    ok: bool
    reasons: tuple[str, ...]
    inter_eye_px: float | None


@dataclass(frozen=True)
class PhotoComparison:
    """`FaceWorker.compare_photos`: the distance, or which photo (1 or 2) failed the quality gate and why."""

    distance: float | None
    failed_photo: int | None
    reasons: tuple[str, ...]


class FaceWorker(SandboxedWorker):
    """The biometric worker: enrolment templates and 1:1 gate probes, computed where nothing can be kept."""

    def __init__(self, *, start_timeout_s: float = 60.0, preload: bool = True, diagnostics: bool = False) -> None:
        super().__init__(FACE_REGISTRY, start_timeout_s=start_timeout_s, diagnostics=diagnostics, preload=preload)

    def __enter__(self) -> FaceWorker:
        self.start()
        return self

    def enrol_template(
        self,
        source: SampleSource,
        *,
        preset: str = "desk",
        max_samples: int = 3,
        jitter: int | None = None,
        timeout_s: float = 60.0,
    ) -> EnrolmentReply:
        """Capture from `source` inside the worker until `max_samples` frames pass the `preset` quality gate and
        return their averaged template (or None with the reasons)."""
        if not isinstance(source, SampleSource):
            raise TypeError("source must be a SampleSource (a description of the sample, never pixels)")
        if not 1 <= max_samples <= 30 or (jitter is not None and not 0 <= jitter <= 100):
            raise ValueError("max_samples must be 1..30 and jitter 0..100")
        buf = bytearray(TEMPLATE_BYTES)
        try:
            meta, n = self.call("enrol_template", source, preset, max_samples, jitter, timeout_s=timeout_s, into=buf)
            reply = EnrolmentReply(
                template=buf if n else None,
                frames_seen=_int(meta, "frames_seen", 0, 10**6),
                frames_used=_int(meta, "frames_used", 0, 10**6),
                quality=_int(meta, "quality", 0, 100),
                reasons=_reasons(meta),
                spread=_float(meta, "spread", 0.0, 2.0),
                disagreeing=_pairs(meta),
            )
        except BaseException:
            buf[:] = bytes(TEMPLATE_BYTES)
            raise
        if reply.template is None and (reply.frames_used or reply.quality) and not reply.disagreeing:
            raise WorkerProtocolError("frames used but no template")
        if reply.template is not None and reply.disagreeing:
            raise WorkerProtocolError("a template although samples disagree")
        return reply

    def frame_quality(
        self, encoded: bytes | bytearray, *, preset: str = "desk", timeout_s: float = 10.0
    ) -> FrameQuality:
        """Run the `preset` quality gate on one encoded frame (JPEG/PNG/WebP from a browser) inside the worker.
        The caller wipes `encoded`; the worker wipes its copy and the decoded pixels."""
        if not 0 < len(encoded) <= MAX_FRAME_BYTES:
            raise ValueError(f"an encoded frame must be 1..{MAX_FRAME_BYTES} bytes")
        meta, _ = self.call("frame_quality", preset, timeout_s=timeout_s, payload=encoded,
                            max_payload=MAX_FRAME_BYTES)
        ok = meta.get("ok")
        reasons = _reasons(meta)
        if not isinstance(ok, bool) or ok == bool(reasons):
            raise WorkerProtocolError("inconsistent frame_quality reply")
        eye = meta.get("inter_eye_px")
        return FrameQuality(ok, tuple(reasons), None if eye is None else _float(meta, "inter_eye_px", 0.0, 1e5))

    def enrol_template_from_frames(
        self, frames: Sequence[bytes | bytearray], *, preset: str = "desk", max_samples: int = 3,
        timeout_s: float = 60.0,
    ) -> EnrolmentReply:
        """Like `enrol_template`, from encoded frames held in memory (the desk's browser capture). The frames are
        packed into one buffer that is wiped once sent; the caller wipes its own."""
        if not 1 <= len(frames) <= MAX_FRAMES_PER_REQUEST or not 1 <= max_samples <= MAX_FRAMES_PER_REQUEST:
            raise ValueError(f"1..{MAX_FRAMES_PER_REQUEST} frames and samples")
        lengths = [len(f) for f in frames]
        if not all(0 < n <= MAX_FRAME_BYTES for n in lengths):
            raise ValueError(f"an encoded frame must be 1..{MAX_FRAME_BYTES} bytes")
        packed = bytearray(sum(lengths))
        offset = 0
        for f in frames:
            packed[offset : offset + len(f)] = f
            offset += len(f)
        buf = bytearray(TEMPLATE_BYTES)
        try:
            meta, n = self.call("enrol_frames", lengths, preset, max_samples, timeout_s=timeout_s, payload=packed,
                                into=buf, max_payload=MAX_FRAMES_PAYLOAD)
            reply = EnrolmentReply(
                template=buf if n else None,
                frames_seen=_int(meta, "frames_seen", 0, 10**6),
                frames_used=_int(meta, "frames_used", 0, 10**6),
                quality=_int(meta, "quality", 0, 100),
                reasons=_reasons(meta),
                spread=_float(meta, "spread", 0.0, 2.0),
                disagreeing=_pairs(meta),
            )
        except BaseException:
            buf[:] = bytes(TEMPLATE_BYTES)
            raise
        finally:
            packed[:] = bytes(len(packed))
        if reply.template is None and (reply.frames_used or reply.quality) and not reply.disagreeing:
            raise WorkerProtocolError("frames used but no template")
        if reply.template is not None and reply.disagreeing:
            raise WorkerProtocolError("a template although samples disagree")
        return reply

    def verify_probe(
        self,
        reference: bytes | bytearray,
        source: SampleSource,
        *,
        threshold: float | None = None,
        budget_s: float = 2.0,
        preset: str = "gate",
        allow_several: bool = True,
        timeout_s: float | None = None,
        fuse: int = 1,
    ) -> ProbeReply:
        """Send the 512-byte `reference` (read from the card) to the worker, which captures a live probe from
        `source` within `budget_s` (fusing up to `fuse` frames that pass the quality check), compares 1:1 and
        wipes both. The deadline defaults to the budget + 5 s."""
        if not isinstance(source, SampleSource):
            raise TypeError("source must be a SampleSource (a description of the sample, never pixels)")
        if len(reference) != TEMPLATE_BYTES:
            raise ValueError(f"reference template must be {TEMPLATE_BYTES} bytes")
        if (threshold is not None and not 0.0 < threshold < 2.0) or not 0.0 < budget_s <= 60.0:
            raise ValueError("threshold must be in (0, 2) and budget_s in (0, 60]")
        if not 1 <= fuse <= 30:
            raise ValueError("fuse must be 1..30")
        meta, _ = self.call("verify_probe", source, threshold, budget_s, preset, allow_several, fuse,
                            timeout_s=timeout_s if timeout_s is not None else budget_s + 5.0, payload=reference)
        return _probe_reply(meta, threshold)

    def compare_photos(
        self, source: SampleSource, *, preset: str = "gate", allow_several: bool = False, timeout_s: float = 60.0
    ) -> PhotoComparison:
        """1:1 distance between the two photos of `source` (first: the enrolment sample, second: the probe),
        computed in the worker (`cardbound biometric compare`); nothing but the distance or the quality reasons
        comes back."""
        if not isinstance(source, SampleSource) or source.kind != "photo" or len(source.paths) != 2:
            raise TypeError("source must be SampleSource.photos(first, second)")
        meta, _ = self.call("compare_photos", source, preset, allow_several, timeout_s=timeout_s)
        distance, photo, reasons = meta.get("distance"), meta.get("photo"), _reasons(meta)
        if distance is None:
            if photo not in (1, 2) or not reasons:
                raise WorkerProtocolError("inconsistent compare_photos reply")
            return PhotoComparison(None, photo, tuple(reasons))
        if photo is not None or reasons:
            raise WorkerProtocolError("inconsistent compare_photos reply")
        return PhotoComparison(_float(meta, "distance", 0.0, 2.0), None, ())

    def begin_probe(
        self,
        source: SampleSource,
        *,
        budget_s: float = 2.0,
        preset: str = "gate",
        allow_several: bool = True,
        fuse: int = 1,
    ) -> PendingProbe:
        """Start capturing the live probe now, in the worker, while the caller reads the card; finish with
        `PendingProbe.compare(reference, threshold)` or `.discard()` (one of them, always)."""
        if not isinstance(source, SampleSource):
            raise TypeError("source must be a SampleSource (a description of the sample, never pixels)")
        if not 0.0 < budget_s <= 60.0 or not 1 <= fuse <= 30:
            raise ValueError("budget_s must be in (0, 60] and fuse 1..30")
        return PendingProbe(self, source, budget_s, preset, allow_several, fuse)


class PendingProbe:
    """A live capture running in the worker (driven from a parent thread) while the card transaction runs here.

    The worker keeps the fused probe; only its quality reasons and timings come back. `compare` sends the
    reference and returns the `ProbeReply`; `discard` makes the worker wipe the probe unused. The worker serves one
    request at a time: nothing else may use it until `compare` or `discard` has returned."""

    def __init__(self, worker: FaceWorker, source: SampleSource, budget_s: float, preset: str,
                 allow_several: bool, fuse: int) -> None:
        import threading

        self._worker = worker
        self._meta: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._done = False
        self.started = time.perf_counter()
        self.waited_ms = 0.0  # how long `compare`/`discard` waited for the capture to finish

        def run() -> None:
            try:
                self._meta, _ = worker.call("probe_capture", source, budget_s, preset, allow_several, fuse,
                                            timeout_s=budget_s + 5.0)
            except BaseException as exc:  # re-raised in the caller's thread
                self._error = exc

        self._thread = threading.Thread(target=run, name="probe-capture", daemon=True)
        self._thread.start()

    def _join(self) -> None:
        t = time.perf_counter()
        self._thread.join()
        self.waited_ms = (time.perf_counter() - t) * 1000
        if self._error is not None:
            raise self._error

    def faces(self) -> int:
        """Most faces seen in a fused frame (waits for the capture; 0 when nothing was acquired)."""
        self._join()
        assert self._meta is not None
        return _int(self._meta, "faces", 0, 1000)

    def compare(self, reference: bytes | bytearray, threshold: float | None) -> ProbeReply:
        if self._done:
            raise RuntimeError("probe already finished")
        self._done = True
        if len(reference) != TEMPLATE_BYTES:
            self._join()
            self._worker.call("probe_discard", timeout_s=5.0)
            raise ValueError(f"reference template must be {TEMPLATE_BYTES} bytes")
        if threshold is not None and not 0.0 < threshold < 2.0:
            self._join()
            self._worker.call("probe_discard", timeout_s=5.0)
            raise ValueError("threshold must be in (0, 2)")
        self._join()
        assert self._meta is not None
        if not self._meta.get("acquired"):
            self._worker.call("probe_discard", timeout_s=5.0)
            return ProbeReply(None, None if threshold is None else False, _int(self._meta, "frames_seen", 0, 10**6),
                              tuple(_reasons(self._meta)), _float(self._meta, "capture_ms", 0.0, 1e7), 0.0)
        meta, _ = self._worker.call("probe_compare", threshold, timeout_s=5.0, payload=reference)
        return _probe_reply(meta, threshold)

    def discard(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._join()
        finally:
            self._worker.call("probe_discard", timeout_s=5.0)


def _probe_reply(meta: Mapping[str, Any], threshold: float | None) -> ProbeReply:
    distance = meta.get("distance")
    if distance is not None:
        distance = _float(meta, "distance", 0.0, 2.0)
    matched = meta.get("matched")
    if threshold is None:
        if matched is not None:
            raise WorkerProtocolError("match flag without a threshold")
    elif not isinstance(matched, bool) or matched != (distance is not None and distance <= threshold):
        raise WorkerProtocolError("inconsistent match flag in reply")
    return ProbeReply(
        distance=distance,
        matched=matched,
        frames_seen=_int(meta, "frames_seen", 0, 10**6),
        reasons=tuple(_reasons(meta)),
        capture_ms=_float(meta, "capture_ms", 0.0, 1e7),
        compare_ms=_float(meta, "compare_ms", 0.0, 1e7),
        faces=_int(meta, "faces", 0, 1000),
        frames_used=_int(meta, "frames_used", 0, 30),
    )




__all__ = [
    "FACE_REGISTRY",
    "NO_HANDLERS",
    "TEMPLATE_BYTES",
    "WRITE_METHODS",
    "EnrolmentReply",
    "FaceWorker",
    "FrameQuality",
    "IsolationError",
    "PendingProbe",
    "PhotoComparison",
    "ProbeReply",
    "RequestFailed",
    "SampleUnusable",
    "SandboxReport",
    "SandboxedWorker",
    "WorkerCrashed",
    "WorkerProtocolError",
    "WorkerStartError",
    "WorkerTimeout",
    "apply_sandbox",
    "face_handlers",
    "no_handlers",
]
