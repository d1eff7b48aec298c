"""The event schema refuses anything that could carry biometric content, and accepts ordinary events."""

from __future__ import annotations

import base64
import dataclasses

import numpy as np
import pytest

from audit import events as ev


def _gate(**kw: object) -> ev.GateDecision:
    base: dict[str, object] = dict(
        gate_id="gate-07", card_id="c" * 64, decision="granted", reason_code="match", security_level=1, total_ms=410
    )
    base.update(kw)
    return ev.GateDecision(**base)  # type: ignore[arg-type]


def test_ordinary_event_accepted() -> None:
    e = _gate(capture_ms=120, compare_ms=3)
    assert e.fields()["card_id"] == "c" * 64
    ev.validate_event(e)


@pytest.mark.parametrize(
    "bad",
    [
        b"\x00" * 16,
        bytearray(b"abc"),
        memoryview(b"abc"),
        np.zeros(128, dtype=np.float32),
        [0.1] * 128,
        (0.1, 0.2),
        {"a": 1},
        "A" * 65,  # long base64-alphabet run
        base64.b64encode(np.random.default_rng(1).random(128).astype("<f4").tobytes()).decode(),
        np.random.default_rng(2).bytes(40).hex(),  # 80 hex chars
        "data:image/png;base64,AAAA",
        "/9j/4AAQSkZJRg",
        "iVBORw0KGgoAAAANSUhEUg",
        "0.12,-0.03,0.5,0.77,0.1,0.2,0.3,0.4,0.5",
    ],
    ids=lambda v: type(v).__name__ + (f"-{len(v)}" if hasattr(v, "__len__") else ""),
)
def test_biometric_like_payload_refused(bad: object) -> None:
    with pytest.raises(ev.BiometricContentError) as info:
        _gate(card_id=bad)
    assert info.value.field == "card_id"
    # Also in a free-text field, the most permissive kind.
    with pytest.raises(ev.EventValidationError):
        ev.ConfigChanged(setting="threshold", new_value=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [("security_level", 4), ("decision", "maybe"), ("total_ms", "12"), ("total_ms", True), ("total_ms", 1.5),
     ("reason_code", "Has Spaces"), ("gate_id", "")],
)
def test_schema_violations_refused(field: str, value: object) -> None:
    with pytest.raises(ev.EventValidationError) as info:
        _gate(**{field: value})
    assert info.value.field in (field, "*")


def test_non_finite_float_refused() -> None:
    with pytest.raises(ev.EventValidationError):
        ev.EnrolmentCompleted(
            station_id="s1", operator_id="op", session_id="x", card_id="c", frames_captured=3, duration_ms=10,
            quality_score=float("nan"),
        )


def test_bypassing_constructor_is_caught_on_validate() -> None:
    e = _gate()
    object.__setattr__(e, "reason_code", "Q" * 300)
    with pytest.raises(ev.BiometricContentError):
        ev.validate_event(e)


def test_every_type_has_a_schema_with_scalar_fields_only() -> None:
    assert len(ev.EVENT_TYPES) >= 16
    for name, cls in ev.EVENT_TYPES.items():
        schema = ev.event_schema(cls)
        assert schema["type"] == name
        for prop in schema["properties"].values():
            types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
            assert set(types) <= {"string", "integer", "number", "boolean", "null"}


def test_non_scalar_field_cannot_be_declared() -> None:
    with pytest.raises(TypeError):

        @ev._register
        @dataclasses.dataclass(frozen=True)
        class Bad(ev.AuditEvent):
            TYPE = "bad.blob"
            blob: bytes


def test_round_trip_from_record() -> None:
    e = _gate()
    assert ev.event_from_record(e.TYPE, e.fields()) == e
    with pytest.raises(ev.EventValidationError):
        ev.event_from_record(e.TYPE, {**e.fields(), "template": "x"})
