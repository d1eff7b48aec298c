"""Face-engine fixtures: one engine per preset for the whole session (the dlib models load once, ~1 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from biometric import DESK, GATE, FaceEngine


@pytest.fixture(scope="session")
def gate_engine() -> FaceEngine:
    engine = FaceEngine(quality=GATE)
    engine.warm_up()
    return engine


@pytest.fixture(scope="session")
def desk_engine() -> FaceEngine:
    engine = FaceEngine(quality=DESK)
    engine.warm_up()
    return engine


@pytest.fixture(scope="session")
def portraits(faces_dir: Path) -> Path:
    return faces_dir / "portraits"


@pytest.fixture(scope="session")
def obama_jpg(portraits: Path) -> Path:
    return portraits / "face_recognition" / "obama" / "obama.jpg"
