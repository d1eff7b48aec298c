"""`cardbound biometric compare|evaluate`: one clear line and a distinct exit code for every user error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cardbound.cli import main
from cardbound.errors import ExitCode


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["biometric", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_compare_same_person(capsys: pytest.CaptureFixture[str], portraits: Path) -> None:
    d = portraits / "face_recognition" / "obama"
    rc, out, _ = _run(capsys, "compare", str(d / "obama.jpg"), str(d / "obama3.jpg"), "--json")
    result = json.loads(out)
    assert rc == ExitCode.OK and result["match"] is True and result["distance"] < result["threshold"]


def test_compare_different_people(capsys: pytest.CaptureFixture[str], portraits: Path) -> None:
    fr = portraits / "face_recognition"
    rc, out, _ = _run(capsys, "compare", str(fr / "obama" / "obama.jpg"), str(fr / "biden" / "biden2.jpg"))
    assert rc == ExitCode.OK and out.strip().endswith("NO MATCH") and out.startswith("distance ")


def test_compare_user_errors(capsys: pytest.CaptureFixture[str], portraits: Path, tmp_path: Path) -> None:
    good = str(portraits / "face_recognition" / "obama" / "obama.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    group = str(portraits / "face_recognition" / "_multi_person" / "two_people.jpg")
    cases = [
        ((good, str(tmp_path / "missing.jpg")), ExitCode.INPUT),
        ((str(tmp_path / "bad.jpg"), good), ExitCode.INPUT),
        ((good, group), ExitCode.QUALITY),
    ]
    for (a, b), code in cases:
        rc, out, err = _run(capsys, "compare", a, b)
        assert rc == code, err
        assert out == "" and err.count("\n") == 1 and err.startswith("cardbound: error: ")
    rc, _, err = _run(capsys, "compare", good, group, "--lang", "fr")
    assert rc == ExitCode.QUALITY and "MULTIPLE_FACES" in err and "Plusieurs visages" in err


def test_compare_decodes_and_describes_only_in_the_sandboxed_worker(portraits: Path) -> None:
    """The command's own process never decodes a photo nor runs the face engine (it does not even load dlib or
    OpenCV): both photos are read, decoded, described and compared in the worker; only the distance comes back."""
    import subprocess
    import sys

    d = portraits / "face_recognition" / "obama"
    code = f"""
import json, sys
import biometric, biometric.engine, biometric.sources
calls = []
def spy(name, fn):
    def wrapper(*a, **k):
        calls.append(name)
        return fn(*a, **k)
    return wrapper
biometric.engine.FaceEngine.__init__ = spy("FaceEngine", biometric.engine.FaceEngine.__init__)
biometric.sources.load_path = biometric.load_path = spy("load_path", biometric.sources.load_path)
from cardbound.cli import main
rc = main(["biometric", "compare", {str(d / "obama.jpg")!r}, {str(d / "obama3.jpg")!r}, "--json"])
loaded = sorted(m for m in ("dlib", "cv2", "face_recognition_models") if m in sys.modules)
print(json.dumps({{"rc": rc, "calls": calls, "loaded": loaded}}))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    result, report = (json.loads(line) for line in res.stdout.strip().splitlines()[-2:])
    assert result["match"] is True and report == {"rc": 0, "calls": [], "loaded": []}


def test_evaluate_small_pairs_file(capsys: pytest.CaptureFixture[str], faces_dir: Path, tmp_path: Path) -> None:
    lfw = faces_dir / "lfw-view1"
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("2\nAaron_Peirsol\t1\t2\nAaron_Peirsol\t3\t4\nAJ_Cook\t1\tMarsha_Thomason\t1\n"
                     "Aaron_Sorkin\t2\tFrank_Solich\t5\n")
    out_dir = tmp_path / "reports"
    rc, out, err = _run(capsys, "evaluate", "--pairs", str(pairs), "--images", str(lfw), "--out", str(out_dir),
                        "--jitters", "1", "--workers", "1")
    assert rc == ExitCode.OK, err
    report = json.loads(out.strip().splitlines()[-1])
    for key in ("pairs", "fta", "threshold", "accuracy", "fnmr_at_fmr", "seconds", "stock"):
        assert key in report
    assert report["pairs"] == 4 and set(report["fnmr_at_fmr"]) == {"0.01", "0.001", "0.0001"}
    assert report["stock"]["threshold"] == 0.6
    assert (out_dir / "det_pairs.png").stat().st_size > 1000
    assert json.loads((out_dir / "report_pairs.json").read_text())["accuracy"] == report["accuracy"]
    assert "describing" in err  # tqdm progress on stderr, stdout stays machine-readable


def test_evaluate_bad_inputs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _, err = _run(capsys, "evaluate", "--pairs", str(tmp_path / "none.txt"), "--images", str(tmp_path))
    assert rc == ExitCode.INPUT and err.count("\n") == 1
    bad = tmp_path / "pairs.txt"
    bad.write_text("1\nonly two\n")
    rc, _, err = _run(capsys, "evaluate", "--pairs", str(bad), "--images", str(tmp_path))
    assert rc == ExitCode.INPUT and err.count("\n") == 1


def test_evaluate_without_the_extra_says_how_to_get_it(capsys: pytest.CaptureFixture[str], faces_dir: Path,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\nAaron_Peirsol\t1\t2\nAJ_Cook\t1\tMarsha_Thomason\t1\n")
    rc, out, err = _run(capsys, "evaluate", "--pairs", str(pairs), "--images", str(faces_dir / "lfw-view1"),
                        "--out", str(tmp_path / "r"))
    assert rc == ExitCode.FAILURE and out == "" and err.count("\n") == 1
    assert "matplotlib" in err and "cardbound[evaluate]" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # refused before any image was read


def test_plotting_and_progress_bars_are_an_extra_not_a_runtime_dependency() -> None:
    """A gate or desk install (`pip install cardbound`) carries neither matplotlib nor tqdm, and the gate and desk
    code paths do not import them."""
    import subprocess
    import sys
    from importlib.metadata import requires

    for req in requires("cardbound") or []:
        if req.split()[0].lower().startswith(("matplotlib", "tqdm")):
            assert 'extra == "evaluate"' in req, req
    assert any("matplotlib" in r for r in requires("cardbound") or [])  # the extra itself is declared
    code = ("import sys, verify.cli, enrol.cli, biometric, biometric.isolation, biometric.capture, cardbound.cli; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'tqdm', 'face_recognition')); "
            "sys.exit(', '.join(bad) or None)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_stock_pipeline_is_face_recognitions_own(gate_engine, faces_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """The report's stock figures come from `stock_descriptor`, which reproduces face_recognition's defaults
    without importing it (the import loads the 68-point model); here, in a test only, against the real package."""
    import warnings

    import numpy as np

    from biometric.evaluate import stock_descriptor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition

    lfw = faces_dir / "lfw-view1"
    for p in (lfw / "Aaron_Peirsol/Aaron_Peirsol_0001.jpg", faces_dir / "portraits/face_recognition/obama/obama.jpg"):
        ours = stock_descriptor(gate_engine, p)
        theirs = face_recognition.face_encodings(face_recognition.load_image_file(str(p)))
        assert ours is not None and theirs
        assert float(np.max(np.abs(ours - theirs[0]))) < 1e-6
