"""The sandboxed worker: nothing it does can reach a disk, it cannot dump core, a crash or hang is a typed error
within the deadline and the next request works, and only templates / distances come back."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from biometric.capture import SampleSource
from biometric.isolation import (
    TEMPLATE_BYTES,
    FaceWorker,
    RequestFailed,
    SampleUnusable,
    SandboxedWorker,
    WorkerCrashed,
    WorkerProtocolError,
    WorkerTimeout,
    apply_sandbox,
)

# methods that create a new file vs. methods that change an existing one
CREATE = ("open_w", "open_x", "os_open_creat", "numpy_tofile", "libc")
CHANGE = ("append", "overwrite", "mmap", "truncate", "rename", "remove")
CONTENT = b"untouched"


@pytest.fixture(scope="module")
def worker() -> Iterator[SandboxedWorker]:
    with SandboxedWorker(diagnostics=True) as w:
        yield w


@pytest.fixture(scope="module")
def rlimit_only_worker() -> Iterator[SandboxedWorker]:
    """The kernel layer alone (no audit hook), to show what RLIMIT_FSIZE does and does not stop."""
    with SandboxedWorker(diagnostics=True, audit_hook=False) as w:
        yield w


def _existing(tmp_path: Path) -> Path:
    p = tmp_path / "existing.bin"
    p.write_bytes(CONTENT)
    return p


def test_limits_read_back_from_inside(worker: SandboxedWorker) -> None:
    meta, _ = worker.call("diag.sandbox", timeout_s=10)
    assert meta["pid"] == worker.pid != os.getpid()
    assert meta["fsize_limit"] == [0, 0]
    assert meta["core_limit"] == [0, 0]
    assert meta["dumpable"] == 0
    assert meta["audit_hook"] is True and meta["stdio_null"] is True
    # mlockall is best effort; as root it must take, and then the kernel counts locked pages
    if os.geteuid() == 0:
        assert meta["memory_locked"] is True and meta["vm_locked_kb"] > 0
    else:
        assert meta["memory_locked"] or meta["mlock_detail"]


@pytest.mark.parametrize("method", CREATE)
def test_cannot_create_a_file(worker: SandboxedWorker, tmp_path: Path, method: str) -> None:
    target = tmp_path / method
    meta, _ = worker.call("diag.try_write", method, str(target), timeout_s=10)
    assert meta["outcome"] == "refused", meta
    if method == "libc":
        # bypasses the audit hook like a C extension would: the kernel refuses the write (EFBIG) but the
        # O_CREAT already made an empty file — the documented gap of RLIMIT_FSIZE
        assert meta["errno"] == 27
        assert target.stat().st_size == 0
    else:
        assert meta["exc"] == "PermissionError"
        assert not target.exists()


@pytest.mark.parametrize("method", CHANGE)
def test_cannot_change_an_existing_file(worker: SandboxedWorker, tmp_path: Path, method: str) -> None:
    existing = _existing(tmp_path)
    meta, _ = worker.call("diag.try_write", method, str(existing), timeout_s=10)
    assert meta["outcome"] == "refused", meta
    assert existing.read_bytes() == CONTENT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.bin"]


@pytest.mark.parametrize("method", ("open_w", "open_x", "os_open_creat", "numpy_tofile"))
def test_kernel_limit_alone_keeps_new_files_empty(
    rlimit_only_worker: SandboxedWorker, tmp_path: Path, method: str
) -> None:
    target = tmp_path / method
    meta, _ = rlimit_only_worker.call("diag.try_write", method, str(target), timeout_s=10)
    # numpy's tofile ignores the failed buffered write and reports success: the file exists but holds no byte
    assert meta["outcome"] == "refused" or method == "numpy_tofile"
    if meta["outcome"] == "refused":
        assert meta["errno"] == 27  # EFBIG, not a SIGXFSZ death
    assert not target.exists() or target.stat().st_size == 0


@pytest.mark.parametrize("method", ("append", "overwrite"))
def test_kernel_limit_alone_refuses_writes_into_existing_files(
    rlimit_only_worker: SandboxedWorker, tmp_path: Path, method: str
) -> None:
    existing = _existing(tmp_path)
    meta, _ = rlimit_only_worker.call("diag.try_write", method, str(existing), timeout_s=10)
    assert meta["outcome"] == "refused" and meta["errno"] == 27
    assert existing.read_bytes() == CONTENT


def test_kernel_limit_alone_does_not_stop_mmap_or_truncate(
    rlimit_only_worker: SandboxedWorker, tmp_path: Path
) -> None:
    """Why the audit hook exists: a shared mapping changes a file in place, and truncation to 0 shrinks it."""
    existing = _existing(tmp_path)
    meta, _ = rlimit_only_worker.call("diag.try_write", "mmap", str(existing), timeout_s=10)
    assert meta["outcome"] == "done" and existing.read_bytes() == b"x" + CONTENT[1:]
    meta, _ = rlimit_only_worker.call("diag.try_write", "truncate", str(existing), timeout_s=10)
    assert meta["outcome"] == "done" and existing.read_bytes() == b""


def test_hang_is_a_timeout_within_the_deadline_and_next_request_works(worker: SandboxedWorker) -> None:
    old_pid = worker.pid
    t0 = time.monotonic()
    with pytest.raises(WorkerTimeout):
        worker.call("diag.sleep", 30, timeout_s=0.5)
    assert time.monotonic() - t0 < 3.0
    assert old_pid is not None and not _alive(old_pid)
    meta, _ = worker.call("diag.echo", "after", timeout_s=30)
    assert meta == {"value": "after"}
    assert worker.pid != old_pid


@pytest.mark.parametrize("how,exitcode", [("segv", -11), ("abort", -6), ("exit", 3)])
def test_crash_is_typed_and_next_request_works(worker: SandboxedWorker, how: str, exitcode: int) -> None:
    with pytest.raises(WorkerCrashed) as err:
        worker.call("diag.crash", how, timeout_s=10)
    assert err.value.exitcode == exitcode
    meta, _ = worker.call("diag.echo", how, timeout_s=30)
    assert meta == {"value": how}
    # the replacement is sandboxed too
    meta, _ = worker.call("diag.sandbox", timeout_s=10)
    assert meta["fsize_limit"] == [0, 0] and meta["core_limit"] == [0, 0]


def test_no_core_file_after_a_crash(worker: SandboxedWorker, tmp_path: Path) -> None:
    # the worker's cwd is ours; a core would land here or in the core_pattern target (also blocked: limit 0)
    before = set(Path.cwd().iterdir())
    with pytest.raises(WorkerCrashed):
        worker.call("diag.crash", "segv", timeout_s=10)
    assert not [p for p in set(Path.cwd().iterdir()) - before if p.name.startswith("core")]


def test_handler_error_keeps_the_worker(worker: SandboxedWorker) -> None:
    pid = worker.pid
    with pytest.raises(RequestFailed) as err:
        worker.call("no.such.op", timeout_s=10)
    assert err.value.kind == "LookupError"
    assert worker.pid == pid


def test_oversized_reply_is_a_protocol_error_and_restarts(worker: SandboxedWorker) -> None:
    pid = worker.pid
    with pytest.raises(WorkerProtocolError):
        worker.call("diag.bad_reply", 200_000, timeout_s=10)
    assert worker.call("diag.echo", 1, timeout_s=30)[0] == {"value": 1}
    assert worker.pid != pid


def test_unexpected_payload_is_a_protocol_error(worker: SandboxedWorker) -> None:
    with pytest.raises(WorkerProtocolError):
        worker.call("diag.echo", 1, timeout_s=10, payload=b"\x01" * 16)  # echoes a payload nobody asked for
    buf = bytearray(16)
    meta, n = worker.call("diag.echo", 2, timeout_s=30, payload=b"\x01" * 16, into=buf)
    assert (meta, n, bytes(buf)) == ({"value": 2}, 16, b"\x01" * 16)


def test_sandbox_is_not_applied_in_the_parent() -> None:
    import resource

    assert resource.getrlimit(resource.RLIMIT_FSIZE)[0] != 0
    assert callable(apply_sandbox)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


# ------------------------------------------------------------------------------------------- the face worker


@pytest.fixture(scope="module")
def face_worker() -> Iterator[FaceWorker]:
    with FaceWorker(diagnostics=True) as w:
        yield w


@pytest.fixture(scope="module")
def fr(faces_dir: Path) -> Path:
    return faces_dir / "portraits" / "face_recognition"


def test_enrol_returns_only_a_template_and_probe_only_a_distance(face_worker: FaceWorker, fr: Path) -> None:
    enrolled = face_worker.enrol_template(SampleSource.photos(str(fr / "biden" / "biden2.jpg")), jitter=1)
    assert enrolled.template is not None and len(enrolled.template) == TEMPLATE_BYTES
    assert enrolled.frames_used == 1 and 0 < enrolled.quality <= 100
    try:
        same = face_worker.verify_probe(enrolled.template, SampleSource.photos(str(fr / "biden" / "biden.jpg")),
                                        threshold=0.42)
        other = face_worker.verify_probe(enrolled.template, SampleSource.photos(str(fr / "obama" / "obama.jpg")),
                                         threshold=0.42)
    finally:
        enrolled.wipe()
    assert enrolled.template == bytearray(TEMPLATE_BYTES)  # wiped in place
    assert same.matched and same.distance is not None and same.distance <= 0.42
    assert not other.matched and other.distance is not None and other.distance > same.distance
    assert same.frames_seen == 1 and same.capture_ms > 0


def test_face_worker_is_sandboxed(face_worker: FaceWorker) -> None:
    assert face_worker.sandbox is not None
    assert face_worker.sandbox.fsize_limit == (0, 0) and face_worker.sandbox.dumpable == 0


def test_probe_without_face_gives_reasons_not_a_distance(face_worker: FaceWorker, fr: Path) -> None:
    ref = face_worker.enrol_template(SampleSource.photos(str(fr / "obama" / "obama.jpg")), jitter=1)
    assert ref.template is not None
    multi = str(fr / "_multi_person" / "obama_and_biden.jpg")
    try:
        r = face_worker.verify_probe(ref.template, SampleSource.photos(multi), threshold=0.42, preset="desk",
                                     allow_several=False)
    finally:
        ref.wipe()
    assert r.distance is None and not r.matched and "MULTIPLE_FACES" in r.reasons


def test_unusable_sample_is_typed(face_worker: FaceWorker, tmp_path: Path) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    with pytest.raises(SampleUnusable) as err:
        face_worker.enrol_template(SampleSource.photos(str(junk)))
    assert err.value.kind == "NotAnImageError"
    with pytest.raises(SampleUnusable) as err:
        face_worker.enrol_template(SampleSource.photos(str(tmp_path / "missing.jpg")))
    assert err.value.kind == "ImageNotFoundError"


def test_bad_reference_is_refused(face_worker: FaceWorker, fr: Path) -> None:
    src = SampleSource.photos(str(fr / "obama" / "obama.jpg"))
    with pytest.raises(ValueError):
        face_worker.verify_probe(bytes(100), src, threshold=0.42)
    with pytest.raises(RequestFailed) as err:  # 512 zero bytes: not a unit vector
        face_worker.verify_probe(bytes(TEMPLATE_BYTES), src, threshold=0.42)
    assert err.value.kind == "TemplateError"
    with pytest.raises(TypeError):
        face_worker.enrol_template(b"\xff\xd8 pixels are not accepted")  # type: ignore[arg-type]


def test_face_worker_survives_a_crash(face_worker: FaceWorker, fr: Path) -> None:
    with pytest.raises(WorkerCrashed):
        face_worker.call("diag.crash", "segv", timeout_s=10)
    got = face_worker.enrol_template(SampleSource.photos(str(fr / "obama" / "obama.jpg")), jitter=1)
    assert got.template is not None
    got.wipe()


def test_frames_directory_source_read_in_place(face_worker: FaceWorker, fr: Path) -> None:
    got = face_worker.enrol_template(SampleSource("frames", (str(fr / "biden"),), max_frames=2), max_samples=2,
                                     jitter=1)
    try:
        assert got.template is not None and got.frames_seen >= 1
    finally:
        got.wipe()


def test_worker_holds_no_file_open_for_writing(face_worker: FaceWorker, fr: Path) -> None:
    """After real work, every descriptor the worker holds on a regular file is read-only."""
    ref = face_worker.enrol_template(SampleSource.photos(str(fr / "biden" / "biden2.jpg")), jitter=1)
    assert ref.template is not None
    face_worker.verify_probe(ref.template, SampleSource.photos(str(fr / "biden" / "biden.jpg")), threshold=0.42)
    ref.wipe()
    pid = face_worker.pid
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = list(fd_dir.iterdir())
    except PermissionError:
        pytest.skip("cannot inspect a non-dumpable process without CAP_SYS_PTRACE")
    writable_files = []
    for fd in fds:
        try:
            target = os.readlink(fd)
            flags = int(Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text().split("flags:")[1].split()[0], 8)
        except (FileNotFoundError, IndexError):
            continue
        if target.startswith("/") and not target.startswith("/dev/") and flags & (os.O_WRONLY | os.O_RDWR):
            writable_files.append(target)
    assert writable_files == []


def test_probe_without_threshold_leaves_the_decision_to_the_caller(face_worker: FaceWorker, fr: Path) -> None:
    ref = face_worker.enrol_template(SampleSource.photos(str(fr / "biden" / "biden2.jpg")), jitter=1)
    assert ref.template is not None
    try:
        r = face_worker.verify_probe(ref.template, SampleSource.photos(str(fr / "obama" / "obama.jpg")))
    finally:
        ref.wipe()
    assert r.matched is None and r.distance is not None and r.distance > 0.42


def test_probe_captured_before_the_reference_then_compared_or_discarded(face_worker: FaceWorker, fr: Path) -> None:
    """Card and face in parallel: the worker captures the live probe before the reference arrives, keeps it to
    itself, and compares it once (same distance as the one-shot request) or wipes it on `discard`."""
    ref = face_worker.enrol_template(SampleSource.photos(str(fr / "obama" / "obama.jpg")))
    assert ref.template is not None
    live = SampleSource.photos(str(fr / "obama" / "obama3.jpg"))
    try:
        one_shot = face_worker.verify_probe(ref.template, live, threshold=0.42)
        pending = face_worker.begin_probe(live)
        parallel = pending.compare(ref.template, 0.42)
        with pytest.raises(RuntimeError):
            pending.compare(ref.template, 0.42)  # one comparison per capture
        assert parallel.matched and parallel.distance == one_shot.distance and parallel.frames_used == 1

        face_worker.begin_probe(live).discard()
        with pytest.raises(RequestFailed) as info:  # nothing left to compare: the discarded probe is gone
            face_worker.call("probe_compare", 0.42, timeout_s=5.0, payload=ref.template)
        assert info.value.kind == "LookupError"

        multi = SampleSource.photos(str(fr / "_multi_person" / "obama_and_biden.jpg"))
        none = face_worker.begin_probe(multi, preset="desk", allow_several=False).compare(ref.template, 0.42)
        assert none.distance is None and none.matched is False and "MULTIPLE_FACES" in none.reasons
    finally:
        ref.wipe()


def test_fused_probe_uses_several_frames(face_worker: FaceWorker, fr: Path) -> None:
    ref = face_worker.enrol_template(SampleSource.photos(str(fr / "obama" / "obama.jpg")))
    assert ref.template is not None
    frames = SampleSource.photos(*(str(fr / "obama" / n) for n in ("obama2.jpg", "obama3.jpg", "obama1.jpg")))
    try:
        fused = face_worker.verify_probe(ref.template, frames, threshold=0.42, fuse=3)
        single = face_worker.verify_probe(ref.template, frames, threshold=0.42)
    finally:
        ref.wipe()
    assert fused.frames_used == 3 and fused.frames_seen == 3 and fused.matched
    assert single.frames_used == 1 and single.frames_seen == 1
    assert fused.distance is not None and single.distance is not None and fused.distance != single.distance
