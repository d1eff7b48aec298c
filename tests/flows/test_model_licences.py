"""Only commercially usable models on the shipped paths: a real enrolment and a real gate decision (`cardbound enrol`
and `cardbound verify --once` through pcscd, a virtual card and the sandboxed worker) never open dlib's 68-point
landmark model, whose training data (iBUG 300-W) exclude commercial use.

dlib opens its model files from C++ (`std::ifstream`), out of sight of Python's audit hooks, so the proof is a
system-call trace of the whole process tree (`strace -f`, the worker included): every `open*` of a `.dat` model is
listed. The positive control is in the same trace: the 5-point model and the ResNet descriptor model *are* opened,
so a trace that saw nothing cannot pass.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CARDBOUND = str(Path(sys.executable).with_name("cardbound"))
HOLDER = "b2" * 32
FORBIDDEN = "shape_predictor_68_face_landmarks.dat"
REQUIRED = ("shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat")


def traced(home: Path, trace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    strace = shutil.which("strace")
    assert strace, "strace is needed (scripts/setup.sh installs it)"
    return subprocess.run(
        [strace, "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", str(trace), CARDBOUND, "--home", str(home),
         *args],
        capture_output=True, text=True, timeout=240,
    )


def opened_models(trace: Path) -> set[str]:
    """Basenames of the .dat files the traced processes opened successfully (return value >= 0)."""
    out = set()
    for line in trace.read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.search(r'open(?:at2?)?\(.*?"([^"]+\.dat)".*\)\s*=\s*(\d+)', line)
        if m:
            out.add(Path(m.group(1)).name)
    return out


def cb(home: Path, *args: str) -> None:
    res = subprocess.run([CARDBOUND, "--home", str(home), *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cardbound.home import Home

    h = tmp_path_factory.mktemp("licence-station")
    cb(h, "keys", "init")
    cb(h, "keys", "issue-station", "desk-1")
    cb(h, "keys", "export-desk", "desk-1", str(h / "desk-keys"))
    cb(h, "keys", "export-gate", "gate-1", str(Home(h).gate_bundle))
    cb(h, "gate", "level", "1", "--site", "BEANR-TEST")  # a new gate is at level 3
    return h


def test_enrolment_and_gate_decision_never_open_the_68_point_model(  # type: ignore[no-untyped-def]
    home: Path, virtual_card, faces_dir: Path, tmp_path: Path
) -> None:
    obama = faces_dir / "portraits/face_recognition/obama"
    enrol_trace, gate_trace = tmp_path / "enrol.trace", tmp_path / "gate.trace"
    cb(home, "keys", "personalise-card", "--reader", "0")  # card issuance at the key officer

    res = traced(home, enrol_trace, "enrol", "--reader", "0", "--holder-ref", HOLDER, "--category", "regular",
                 "--valid-until", "2029-06-30", "--json", "--photo", str(obama / "obama.jpg"))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["result"] == "enrolled"

    res = traced(home, gate_trace, "verify", "--once", "--reader", "0", "--photo", str(obama / "obama2.jpg"))
    assert res.returncode == 0, res.stderr
    assert '"ACCEPTED"' in res.stdout

    for trace in (enrol_trace, gate_trace):
        models = opened_models(trace)
        assert set(REQUIRED) <= models, (trace.name, models)  # the trace does see dlib loading its models
        assert FORBIDDEN not in models, trace.name
        assert FORBIDDEN not in trace.read_text(encoding="utf-8", errors="replace")  # not even a failed attempt


def test_the_parser_sees_a_68_point_open(tmp_path: Path) -> None:
    """Control for the parser: a trace line opening the forbidden model is reported."""
    trace = tmp_path / "t"
    trace.write_text(f'4242  openat(AT_FDCWD, "/x/models/{FORBIDDEN}", O_RDONLY) = 7\n'
                     '4242  openat(AT_FDCWD, "/x/missing.dat", O_RDONLY) = -1 ENOENT (No such file or directory)\n',
                     encoding="utf-8")
    assert opened_models(trace) == {FORBIDDEN}
