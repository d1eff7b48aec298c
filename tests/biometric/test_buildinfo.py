"""The dlib build the engine runs on: setup's record of its patches is read back, and matches the repository."""

from __future__ import annotations

import os
from pathlib import Path

from biometric.buildinfo import BUILD_RECORD, _patches, build_info

ROOT = Path(__file__).resolve().parents[2]


def test_patches_are_read_from_the_build_record(tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    assert _patches(record) == "none recorded"
    record.write_text("Found OpenBLAS\nCXXFLAGS=-mavx2 -mfma\n", encoding="utf-8")
    assert _patches(record) == "none"
    record.write_text("CXXFLAGS=\npatch=0001-a.patch 0123456789ab\npatch=0002-b.patch ba9876543210\n", encoding="utf-8")
    assert _patches(record) == "0001-a.patch, 0002-b.patch"


def test_the_installed_dlib_was_built_with_the_repository_patches() -> None:
    """A venv still holding an older or unpatched dlib (a stale wheel) shows here, not as a slow gate."""
    assert BUILD_RECORD.is_file(), f"{BUILD_RECORD} missing: dlib was not installed by scripts/setup.sh"
    if os.environ.get("CARDBOUND_DLIB_PATCHES") == "none":
        expected = "none"
    else:
        expected = ", ".join(sorted(p.name for p in (ROOT / "scripts" / "dlib-patches").glob("*.patch")))
    info = build_info()
    assert info["patches"] == expected
    assert info["DLIB_USE_BLAS"] is True
