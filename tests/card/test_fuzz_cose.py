"""Hypothesis fuzzing of the COSE parser: hostile input only ever raises the typed errors."""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from card import cose, sealed
from card.keystore import KeyStore
from card.sealed import CardBinding, GateTrust, TemplateHeader, seal, unseal

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
# database=None: nothing from the fuzzing is written to disk
FUZZ = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Sample:
    def __init__(self, root: Path) -> None:
        store = KeyStore.init(root, now=NOW - timedelta(days=1))
        store.issue_station("desk1", now=NOW - timedelta(days=1))
        card_key = ec.generate_private_key(ec.SECP256R1())
        self.binding = CardBinding.for_card(os.urandom(16), card_key.public_key())
        header = TemplateHeader(
            format_owner=0x0101,
            format_type=1,
            extractor="x",
            model_version="y",
            created=NOW,
            expires=NOW + timedelta(days=30),
            quality=50,
            visitor_category="visitor",
            holder_ref=os.urandom(8),
        )
        self.trust: GateTrust = store.gate_trust()
        self.sealed = seal(
            os.urandom(512),
            header,
            self.binding,
            store.station_credentials("desk1"),
            store.verifier_public_key(),
        )


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    return Sample(tmp_path_factory.mktemp("fuzz") / "keys")


def _must_reject(sample: Sample, data: bytes) -> None:
    try:
        unseal(data, trust=sample.trust, expected=sample.binding, now=NOW)
    except sealed.SealedTemplateError:
        return
    # anything else (an untyped exception) propagates and fails the test with its traceback
    raise AssertionError(f"accepted a mutated container ({len(data)} bytes)")


@FUZZ
@given(data=st.binary(max_size=5000))
def test_random_bytes(sample: Sample, data: bytes) -> None:
    _must_reject(sample, data)


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_after_a_cose_encrypt_prefix(sample: Sample, data: bytes) -> None:
    _must_reject(sample, b"\xd8\x60\x84" + data)


@FUZZ
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.sampled_from(["set", "insert", "delete"]), st.integers(0, 255)),
        min_size=1,
        max_size=6,
    )
)
def test_mutated_container(sample: Sample, edits: list[tuple[int, str, int]]) -> None:
    data = bytearray(sample.sealed)
    for position, action, value in edits:
        at = position % (len(data) + 1)
        if action == "insert":
            data.insert(at, value)
        elif at < len(data):
            if action == "delete":
                del data[at]
            else:
                data[at] = value
    if bytes(data) == sample.sealed:
        return
    _must_reject(sample, bytes(data))


cbor_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.binary(max_size=80)
    | st.text(max_size=20)
    | st.floats(allow_nan=False),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.integers(-40, 40) | st.text(max_size=8), children, max_size=5)
        | st.builds(cbor2.CBORTag, st.sampled_from([18, 96, 0, 1, 2, 24, 258]), children)
    ),
    max_leaves=30,
)


@FUZZ
@given(value=cbor_values)
def test_structured_cbor(sample: Sample, value: Any) -> None:
    _must_reject(sample, cbor2.dumps(value))
    _must_reject(sample, cbor2.dumps(cbor2.CBORTag(96, value)))


def _outer(sample: Sample) -> list[Any]:
    return list(cbor2.loads(sample.sealed).value)


@FUZZ
@given(index=st.integers(0, 3), value=cbor_values)
def test_field_replaced_in_a_valid_container(sample: Sample, index: int, value: Any) -> None:
    fields = _outer(sample)
    fields[index] = value
    try:
        data = cose.dumps(cbor2.CBORTag(96, fields))
    except Exception:  # not encodable deterministically (e.g. mixed key types): not a container at all
        return
    if data != sample.sealed:
        _must_reject(sample, data)


@FUZZ
@given(
    value=cbor_values,
    label=st.integers(-8, 40) | st.text(max_size=8),
    where=st.sampled_from(["outer", "rcpt"]),
)
def test_header_entry_added(sample: Sample, value: Any, label: Any, where: str) -> None:
    fields = _outer(sample)
    if where == "outer":
        headers = dict(fields[1])
        headers[label] = value
        fields[1] = headers
    else:
        recipient = list(fields[3][0])
        headers = dict(recipient[1])
        headers[label] = value
        recipient[1] = headers
        fields[3] = [recipient]
    try:
        data = cose.dumps(cbor2.CBORTag(96, fields))
    except Exception:
        return
    if data != sample.sealed:
        _must_reject(sample, data)


@FUZZ
@given(data=st.binary(max_size=400))
def test_strict_decoder_raises_only_cbor_error(data: bytes) -> None:
    with contextlib.suppress(cose.CborError):
        cose.loads_strict(data)


@FUZZ
@given(value=cbor_values)
def test_strict_decoder_accepts_only_its_own_encoding(value: Any) -> None:
    try:
        encoded = cbor2.dumps(value)
    except Exception:
        return
    try:
        decoded = cose.loads_strict(encoded)
    except cose.CborError:
        return
    assert cose.dumps(decoded) == encoded
