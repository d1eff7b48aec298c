"""Fixtures for the desk tests. This folder is put on sys.path so the helper modules (`desk_helpers`, `softkey`,
`browser`; unique names) import."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from desk_helpers import Desk, make_desk  # noqa: E402


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    d = make_desk(tmp_path / "home")
    yield d
    d.log.close()
