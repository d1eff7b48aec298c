"""Enrolment template from several frames, and the gate's probe within a time budget, on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biometric import DESK, GATE, FaceEngine, load_path
from biometric.capture import enrolment_template, probe_distance
from biometric.template import DEFAULT_THRESHOLD


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    return FaceEngine(quality=DESK)


def test_enrolment_uses_passing_frames_and_reports_refusals(engine: FaceEngine, faces_dir: Path) -> None:
    root = faces_dir / "portraits/face_recognition"
    frames = [load_path(root / p) for p in ("_multi_person/two_people.jpg", "obama/obama.jpg", "obama/obama3.jpg")]
    got = enrolment_template(engine, frames, num_jitters=0)
    assert got.template is not None
    assert (got.frames_seen, got.frames_used) == (3, 2)
    assert got.reasons == ["MULTIPLE_FACES"]
    assert 1 <= got.quality <= 100
    assert all(not f.any() for f in frames), "every frame must be wiped after analysis"
    got.wipe()
    assert not got.template.vector.any()


def test_enrolment_with_no_usable_frame(engine: FaceEngine, faces_dir: Path) -> None:
    blank = np.full((480, 640, 3), 128, dtype=np.uint8)
    got = enrolment_template(engine, [blank])
    assert got.template is None and got.frames_used == 0 and got.reasons == ["NO_FACE"]


def test_probe_genuine_and_impostor(engine: FaceEngine, faces_dir: Path) -> None:
    root = faces_dir / "portraits/face_recognition"
    ref = enrolment_template(engine, [load_path(root / "obama/obama.jpg")], num_jitters=0).template
    assert ref is not None
    genuine = probe_distance(engine, ref, [load_path(root / "obama/obama2.jpg")], quality=GATE)
    impostor = probe_distance(engine, ref, [load_path(root / "biden/biden2.jpg")], quality=GATE)
    assert genuine.distance is not None and genuine.distance <= DEFAULT_THRESHOLD
    assert impostor.distance is not None and impostor.distance > DEFAULT_THRESHOLD


def test_probe_skips_bad_frames_then_gives_up_without_a_face(engine: FaceEngine, faces_dir: Path) -> None:
    root = faces_dir / "portraits/face_recognition"
    ref = enrolment_template(engine, [load_path(root / "obama/obama.jpg")], num_jitters=0).template
    assert ref is not None
    blank = np.zeros((480, 640, 3), dtype=np.uint8)
    res = probe_distance(engine, ref, [blank.copy(), load_path(root / "obama/obama3.jpg")])
    assert res.distance is not None and res.frames_seen == 2 and res.reasons == ["NO_FACE"]
    none = probe_distance(engine, ref, [blank.copy(), blank.copy()])
    assert none.distance is None and none.reasons == ["NO_FACE", "NO_FACE"]
    empty = probe_distance(engine, ref, [])
    assert empty.distance is None and empty.frames_seen == 0
