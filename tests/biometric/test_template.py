"""Template wire format (exactly 512 bytes, validated) and the 1:1 comparison."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biometric import DEFAULT_THRESHOLD, TEMPLATE_BYTES, Template, TemplateError, compare, decide


def _unit(seed: int) -> Template:
    v = np.random.default_rng(seed).normal(scale=0.12, size=128)  # dlib-like norm ~1.4
    return Template.from_descriptor(v)


def test_wire_form_is_exactly_512_bytes_little_endian() -> None:
    t = _unit(1)
    b = t.to_bytes()
    assert TEMPLATE_BYTES == 512 and len(b) == 512
    assert struct.unpack("<f", b[:4])[0] == pytest.approx(float(t.vector[0]))
    assert Template.from_bytes(b) == t


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_round_trip_any_descriptor(seed: int) -> None:
    t = _unit(seed)
    back = Template.from_bytes(t.to_bytes())
    assert compare(t, back) == 0.0
    assert abs(float(np.linalg.norm(back.vector)) - 1.0) < 1e-5


@pytest.mark.parametrize("n", [0, 1, 511, 513, 1024])
def test_wrong_length_rejected(n: int) -> None:
    with pytest.raises(TemplateError):
        Template.from_bytes(b"\x00" * n)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_rejected(bad: float) -> None:
    raw = bytearray(_unit(2).to_bytes())
    raw[40:44] = struct.pack("<f", bad)
    with pytest.raises(TemplateError):
        Template.from_bytes(bytes(raw))


def test_zero_and_unnormalised_rejected() -> None:
    with pytest.raises(TemplateError):
        Template.from_bytes(b"\x00" * 512)
    scaled = (_unit(3).vector * 1.4).astype("<f4").tobytes()  # a raw dlib descriptor is ~1.4 long
    with pytest.raises(TemplateError):
        Template.from_bytes(scaled)
    with pytest.raises(TemplateError):
        Template(np.ones(127, dtype=np.float32))
    with pytest.raises(TemplateError):
        Template.from_descriptor(np.zeros(128))


def test_compare_is_a_metric_on_unit_vectors() -> None:
    a, b = _unit(4), _unit(5)
    assert compare(a, a) == 0.0
    assert compare(a, b) == pytest.approx(compare(b, a))
    cos = float(np.dot(a.vector, b.vector))
    assert compare(a, b) == pytest.approx(math.sqrt(2 - 2 * cos), abs=1e-6)
    assert 0.0 <= compare(a, b) <= 2.0


def test_compare_takes_exactly_two_templates() -> None:
    a = _unit(6)
    with pytest.raises(TypeError):
        compare([a, a], a)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        compare(a, a.vector)  # type: ignore[arg-type]


def test_decide_boundary_and_validation() -> None:
    assert decide(DEFAULT_THRESHOLD) is True
    assert decide(np.nextafter(DEFAULT_THRESHOLD, 2.0)) is False
    assert decide(0.3, threshold=0.25) is False
    for bad in (float("nan"), -0.1, float("inf")):
        with pytest.raises(ValueError):
            decide(bad)
    with pytest.raises(ValueError):
        decide(0.1, threshold=0.0)


def test_templates_are_not_hashable_and_repr_is_redacted() -> None:
    t = _unit(7)
    with pytest.raises(TypeError):
        hash(t)
    assert "redacted" in repr(t) and str(float(t.vector[0]))[:6] not in repr(t)


def test_vector_view_is_read_only_and_wiped_with_the_template() -> None:
    t = _unit(8)
    v = t.vector
    with pytest.raises(ValueError):
        v[0] = 1.0
    t.wipe()
    assert not v.any()
