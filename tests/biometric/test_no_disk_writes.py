"""No byte of a sample reaches a disk while the engine loads, analyses and templates it.

An audit hook (PEP 578) records every Python-level file open for writing and every file-creating `os`/`shutil`/
`tempfile` event while the engine runs. dlib and OpenCV write nothing by themselves (they are not watched by the hook;
the audit module's strace probe covers native code on the installed system).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from biometric import FaceEngine, load_bytes, load_path, sensitive

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_CREATING_EVENTS = {
    "os.mkdir", "os.rename", "os.replace", "os.link", "os.symlink", "os.truncate", "os.chmod", "os.remove",
    "shutil.copyfile", "shutil.copytree", "shutil.move", "tempfile.mkstemp", "tempfile.mkdtemp",
    "os.system", "subprocess.Popen", "os.posix_spawn", "os.fork", "os.exec",
}


class _Recorder:
    def __init__(self) -> None:
        self.active = False
        self.events: list[tuple[str, str]] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if writes:
                self.events.append((event, str(path)))
        elif event in _CREATING_EVENTS:
            self.events.append((event, str(args[0]) if args else ""))


_recorder = _Recorder()
sys.addaudithook(_recorder)  # hooks can't be removed: it stays inert unless `active`


def _run_engine(engine: FaceEngine, photo: Path) -> None:
    with sensitive(load_path(photo)) as frame, sensitive(engine.analyse(frame)) as sample, sensitive(
        engine.reference_template([sample], num_jitters=2)
    ) as ref, sensitive(engine.probe_template(sample)) as probe:
        assert ref.to_bytes() and probe.to_bytes()
    with sensitive(load_bytes(photo.read_bytes())) as frame, sensitive(engine.analyse(frame)) as sample:
        engine.probe_template(sample).wipe()


def test_no_file_written_while_processing(obama_jpg: Path) -> None:
    from biometric.engine import _Models

    _Models._inst = None  # the dlib models load again, inside the watched region
    engine = FaceEngine()
    _recorder.events.clear()
    _recorder.active = True
    try:
        _run_engine(engine, obama_jpg)
    finally:
        _recorder.active = False
    assert _recorder.events == []


def test_the_hook_sees_writes(tmp_path: Path) -> None:
    """Control: the same recorder does catch a file write, so the test above can fail."""
    _recorder.events.clear()
    _recorder.active = True
    try:
        (tmp_path / "x.bin").write_bytes(b"x")
        fd = os.open(tmp_path / "y.bin", os.O_CREAT | os.O_WRONLY)
        os.close(fd)
    finally:
        _recorder.active = False
    assert [e for e, _ in _recorder.events] == ["open", "open"]
