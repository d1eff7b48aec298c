"""The wipeable CBOR helpers the sealed template uses so that its plaintext never sits in an immutable `bytes`:
`dumps_spliced` (encode with a random stand-in, copy the secret in), `bstr_span` (find a byte string without
copying) and `loads_masked` (strict decoding with the secret zeroed)."""

from __future__ import annotations

import os

import cbor2
import pytest

from card import cose
from card.cose import CborError


def test_dumps_spliced_equals_the_plain_encoding_and_is_a_bytearray() -> None:
    secret = bytearray(os.urandom(512))
    def obj(s: bytes) -> dict[int, object]:
        return {1: "x", 12: s, 13: 3}

    out = cose.dumps_spliced(obj, secret)
    assert isinstance(out, bytearray) and bytes(out) == cose.dumps(obj(bytes(secret)))
    nested = cose.dumps_spliced(lambda p: cbor2.CBORTag(18, [b"\xa0", {}, p, b"s" * 64]), out)
    assert bytes(nested) == cose.dumps(cbor2.CBORTag(18, [b"\xa0", {}, bytes(out), b"s" * 64]))


def test_dumps_spliced_refuses_what_it_cannot_place_safely_and_passes_short_strings() -> None:
    assert cose.dumps_spliced(lambda s: [s], b"short") == cose.dumps([b"short"])  # too short to be a template
    with pytest.raises(ValueError, match="exactly once"):
        cose.dumps_spliced(lambda s: [s, s], bytes(32))
    with pytest.raises(ValueError, match="exactly once"):
        cose.dumps_spliced(lambda s: [b"nothing"], bytes(32))


def test_bstr_span_finds_the_byte_string_without_copying() -> None:
    secret = os.urandom(300)
    payload = cose.dumps({1: 7, 9: b"ref", 12: secret, 14: 5})
    s0, s1 = cose.bstr_span(bytearray(payload), [12])
    assert payload[s0:s1] == secret
    sign1 = cose.dumps(cbor2.CBORTag(18, [b"\xa1\x01\x26", {}, payload, b"z" * 64]))
    p0, p1 = cose.bstr_span(memoryview(sign1), [2])
    assert sign1[p0:p1] == payload
    for data, path, msg in ((payload, [11], "no key"), (payload, [1], "byte string"), (sign1, [4], "no item"),
                            (payload, [12, 0], "neither"), (payload + b"\x00", [12], "trailing"),
                            (payload[:-3], [12], "runs past|truncated")):
        with pytest.raises(CborError, match=msg):
            cose.bstr_span(data, path)


def test_loads_masked_is_as_strict_as_loads_strict_and_hides_the_secret() -> None:
    secret = os.urandom(64)
    payload = bytearray(cose.dumps({1: 7, 12: secret}))
    span = cose.bstr_span(payload, [12])
    assert cose.loads_masked(payload, span) == {1: 7, 12: bytes(64)}
    assert payload[span[0]:span[1]] == secret  # the caller's buffer is untouched
    non_minimal = bytearray(b"\xa2\x18\x01\x07" + bytes(payload[2:]))  # key 1 encoded in two bytes
    with pytest.raises(CborError):
        cose.loads_masked(non_minimal, cose.bstr_span(non_minimal, [12]))
    unsorted = bytearray(cose.dumps({12: secret})[:-64] + secret)
    unsorted = bytearray(b"\xa2" + bytes(unsorted[1:]) + b"\x01\x07")
    with pytest.raises(CborError, match="deterministic"):
        cose.loads_masked(unsorted, cose.bstr_span(unsorted, [12]))
