"""Buffers that held pixels or descriptors are overwritten before release."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biometric import FaceEngine, load_path, sensitive, wipe


def test_wipe_arrays_bytearrays_and_views() -> None:
    a = np.arange(1, 101, dtype=np.uint8).reshape(10, 10)
    b = bytearray(b"secret")
    m = memoryview(bytearray(b"abc"))
    wipe(a, b, m, None, "ignored")
    assert not a.any() and b == bytearray(6) and m.tobytes() == b"\x00\x00\x00"


def test_wipe_read_only_array_over_own_buffer() -> None:
    a = np.full(16, 9, dtype=np.float32)
    a.setflags(write=False)
    wipe(a)
    assert not a.any()


def test_sensitive_wipes_even_on_error() -> None:
    frame = np.full((40, 40, 3), 200, dtype=np.uint8)
    with pytest.raises(RuntimeError), sensitive(frame) as f:
        assert f is frame
        raise RuntimeError("boom")
    assert not frame.any()


def test_sample_and_template_wipe(gate_engine: FaceEngine, obama_jpg: Path) -> None:
    with sensitive(load_path(obama_jpg)) as frame:
        sample = gate_engine.analyse(frame)
    assert not frame.any()
    assert sample.chip.any() and sample.landmarks.any()
    with sensitive(sample):
        template = gate_engine.probe_template(sample)
    assert not sample.chip.any() and not sample.landmarks.any()
    with pytest.raises(ValueError):
        gate_engine.probe_template(sample)  # a wiped sample can't silently give a template of zeros
    with sensitive(template) as t:
        assert t.vector.any()
    assert not template.vector.any()
    assert "redacted" in repr(sample)
