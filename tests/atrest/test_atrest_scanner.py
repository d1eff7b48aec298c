"""The at-rest scanner must find what it is meant to find, or every 'nothing found' assertion is worthless."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from audit.atrest import scan, scan_bytes


def _synthetic_descriptor(rng: np.random.Generator, *, normalised: bool) -> np.ndarray:
    # Same statistics as a dlib descriptor (values ~N(0, 0.09)), but not anyone's face: nothing biometric on disk.
    v = rng.normal(0.0, 0.09, size=128)
    return v / np.linalg.norm(v) if normalised else v


@pytest.mark.parametrize("dtype", ["<f4", "<f8"])
@pytest.mark.parametrize("offset", [0, 1, 3, 4097])
@pytest.mark.parametrize("normalised", [True, False])
def test_descriptor_found_at_any_offset(dtype: str, offset: int, normalised: bool) -> None:
    rng = np.random.default_rng(offset)
    vec = _synthetic_descriptor(rng, normalised=normalised).astype(dtype)
    blob = os.urandom(offset) + vec.tobytes() + os.urandom(100)
    kinds = {f.kind for f in scan_bytes(blob, Path("x"))}
    assert f"descriptor:{'float32' if dtype == '<f4' else 'float64'}" in kinds


def test_real_descriptor_in_memory_is_recognised(faces_dir: Path) -> None:
    import face_recognition

    img = face_recognition.load_image_file(faces_dir / "portraits/face_recognition/obama/obama.jpg")
    enc = face_recognition.face_encodings(img)[0]
    blob = b"\x00" * 7 + enc.astype("<f4").tobytes()
    enc.fill(0)
    img.fill(0)
    assert any(f.kind == "descriptor:float32" for f in scan_bytes(blob, Path("mem")))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF"])
def test_images_found_even_embedded(fmt: str) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buf, fmt)
    data = buf.getvalue()
    assert scan_bytes(data, Path("img")), fmt
    if fmt in {"JPEG", "PNG", "GIF", "WEBP"}:
        assert scan_bytes(os.urandom(5000) + data, Path("emb")), fmt


def test_random_and_text_are_clean() -> None:
    assert scan_bytes(os.urandom(4_000_000), Path("rnd")) == []
    text = ("2026-11-24T10:00:00Z gate=G1 decision=accept reason=ACCEPTED card=3fa2 t_ms=123.4\n" * 5000).encode()
    assert scan_bytes(text, Path("log")) == []


def test_scan_walks_directories_and_honours_exclude(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    (tmp_path / "a" / "b" / "x.bin").write_bytes(b"header" + buf.getvalue())
    (tmp_path / "clean.txt").write_text("nothing here")
    found = scan([tmp_path])
    assert [f.path.name for f in found] == ["x.bin"]
    assert scan([tmp_path], exclude=[tmp_path / "a"]) == []
