"""The sandboxed biometric worker: real templates and distances out, nothing written, no core, survives crashes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from biometric.capture import SampleSource
from biometric.template import DEFAULT_THRESHOLD, Template
from biometric.worker import BiometricWorker, SampleError, WorkerCrashed, WorkerTimeout


@pytest.fixture(scope="module")
def worker() -> Iterator[BiometricWorker]:
    os.environ["CARDBOUND_WORKER_TEST_HOOK"] = "1"  # inherited by the spawned worker: enables run_in_sandbox
    w = BiometricWorker().start()
    yield w
    w.close()
    os.environ.pop("CARDBOUND_WORKER_TEST_HOOK", None)


def test_sandbox_limits_are_in_force(worker: BiometricWorker) -> None:
    rep = worker.sandbox
    assert rep is not None
    assert rep.fsize_limit == 0 and rep.core_limit == 0 and rep.dumpable == 0
    # read back from inside, not just what the start-up claimed
    limits = worker.run_in_sandbox(
        "import resource\n"
        "result = (resource.getrlimit(resource.RLIMIT_FSIZE), resource.getrlimit(resource.RLIMIT_CORE))"
    )
    assert limits == ((0, 0), (0, 0))


@pytest.mark.parametrize(
    "attempt",
    [
        "open(TARGET, 'w').write('x')",
        "open(TARGET, 'ab').write(b'x')",
        "import os; fd = os.open(TARGET, os.O_CREAT | os.O_WRONLY); os.write(fd, b'x')",
        "import numpy as np; np.zeros(4).tofile(TARGET)",
        "import os; os.remove(EXISTING)",
        "import os; os.rename(EXISTING, TARGET)",
        "import tempfile; tempfile.mkstemp()",
        "import ctypes, ctypes.util; libc = ctypes.CDLL(ctypes.util.find_library('c')); "
        "fd = libc.open(EXISTING.encode(), 1 | 1024); assert fd >= 0; "  # O_WRONLY|O_APPEND, below the audit hook
        "n = libc.write(fd, b'xxxx', 4); result = n",
    ],
)
def test_worker_cannot_write_files(worker: BiometricWorker, tmp_path: Path, attempt: str) -> None:
    existing = tmp_path / "existing.txt"
    existing.write_text("before")
    target = tmp_path / "target.bin"
    code = f"TARGET = {str(target)!r}; EXISTING = {str(existing)!r}\nresult = None\n{attempt}"
    try:
        result = worker.run_in_sandbox(code)
    except Exception as exc:  # refused inside the worker: reported as a WorkerError
        refusals = ("forbidden", "File too large", "Errno 27", "No usable temporary directory")
        assert any(r in str(exc) for r in refusals), exc
    else:
        assert result == -1, f"write went through: {result!r}"  # libc write() fails with EFBIG
    assert not target.exists() or target.stat().st_size == 0
    assert existing.read_text() == "before"


def test_enrol_and_probe_genuine_and_impostor(worker: BiometricWorker, faces_dir: Path) -> None:
    root = faces_dir / "portraits/face_recognition"
    got = worker.enrol(SampleSource.photos(str(root / "obama/obama.jpg"), str(root / "obama/obama3.jpg")),
                       num_jitters=1)
    assert got.template is not None and len(got.template) == 512 and got.frames_used == 2
    reference = bytearray(got.template)
    Template.from_bytes(reference)  # a valid unit template
    genuine = worker.probe(bytearray(reference), SampleSource.photos(str(root / "obama/obama2.jpg")))
    impostor = worker.probe(bytearray(reference), SampleSource.photos(str(root / "biden/biden2.jpg")))
    assert genuine.distance is not None and genuine.distance <= DEFAULT_THRESHOLD
    assert impostor.distance is not None and impostor.distance > DEFAULT_THRESHOLD
    got.wipe()
    assert not any(got.template)


def test_probe_with_no_face_and_bad_input(worker: BiometricWorker, faces_dir: Path, tmp_path: Path) -> None:
    ref = bytearray(Template.from_descriptor(np.full(128, 0.1)).to_bytes())
    group = faces_dir / "portraits/face_recognition/_multi_person/obama_and_biden.jpg"
    res = worker.probe(ref, SampleSource.photos(str(group)), allow_largest=False)
    assert res.distance is None and res.reasons == ["MULTIPLE_FACES"]
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    with pytest.raises(SampleError) as exc:
        worker.probe(ref, SampleSource.photos(str(tmp_path / "junk.jpg")))
    assert exc.value.kind == "NotAnImageError"
    with pytest.raises(SampleError):
        worker.enrol(SampleSource.photos(str(tmp_path / "missing.jpg")))
    with pytest.raises(SampleError) as cam:
        worker.probe(ref, SampleSource("camera", device=57))
    assert cam.value.kind == "CameraError"


def test_crash_and_hang_are_typed_errors_and_the_worker_comes_back(worker: BiometricWorker) -> None:
    first = worker.pid
    with pytest.raises(WorkerCrashed):
        worker.crash()
    with pytest.raises(WorkerTimeout):
        worker.run_in_sandbox("import time; time.sleep(30)", timeout_s=1.0)
    assert worker.run_in_sandbox("result = 41 + 1") == 42  # restarted on demand
    assert worker.pid != first
