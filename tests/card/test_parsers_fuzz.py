"""Parsers facing the card or the wire: TLV, APDUs, ATR, PIV objects, and the emulator's command parser.
Property: any input gives a result or a typed error, never another exception."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from card import tlv
from card.apdu import (
    ApduError,
    ApduFormatError,
    CommandApdu,
    NotFoundError,
    ResponseApdu,
    SecurityError,
    VerifyError,
    WrongDataError,
    error_for_sw,
)
from card.piv import Chuid, PivFormatError, decode_certificate_object
from card.transport import CardProtocolError, parse_atr
from card.virtual.emulator import VirtualPivCard, make_atr
from card.virtual.image import CardImage

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# -- TLV --


def test_tlv_known_encodings() -> None:
    assert tlv.encode(0x53, b"") == b"\x53\x00"
    assert tlv.encode(0x5FC102, b"\x01") == b"\x5f\xc1\x02\x01\x01"
    assert tlv.encode(0x70, bytes(200))[:3] == b"\x70\x81\xc8"
    assert tlv.encode(0x70, bytes(300))[:4] == b"\x70\x82\x01\x2c"
    assert tlv.parse(b"\x7f\x49\x03\x86\x01\x04") == [tlv.Tlv(0x7F49, b"\x86\x01\x04")]
    with pytest.raises(tlv.TlvError):
        tlv.parse(b"\x53\x05abc")
    with pytest.raises(tlv.TlvError):
        tlv.parse(b"\x53\x80")  # indefinite length
    with pytest.raises(tlv.TlvError):
        tlv.parse_dict(b"\x01\x00\x01\x00")
    with pytest.raises(tlv.TlvError):
        tlv.unpack(0x53, b"\x54\x00")


tags = st.one_of(
    st.integers(0x01, 0x1E),
    st.integers(0x20, 0xFE).filter(lambda t: t & 0x1F != 0x1F),
    st.sampled_from([0x5FC101, 0x5FC102, 0x5FFF10, 0x7F49, 0x5F2F]),
)


@FUZZ
@given(st.lists(st.tuples(tags, st.binary(max_size=600)), max_size=6))
def test_tlv_round_trip(items: list[tuple[int, bytes]]) -> None:
    assert [(t.tag, t.value) for t in tlv.parse(tlv.encode_many(items))] == items


@FUZZ
@given(st.binary(max_size=400))
def test_tlv_parse_arbitrary_bytes(data: bytes) -> None:
    try:
        items = tlv.parse(data)
    except tlv.TlvError:
        return
    assert sum(len(i.value) for i in items) <= len(data)


# -- APDUs --


@FUZZ
@given(
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=600),
    st.one_of(st.none(), st.integers(1, 65536)),
)
def test_command_apdu_round_trip(cla: int, ins: int, p1: int, p2: int, data: bytes, le: int | None) -> None:
    cmd = CommandApdu(cla, ins, p1, p2, data, le)
    assert CommandApdu.decode(cmd.encode(extended=True)) == cmd
    if not cmd.needs_extended():
        assert CommandApdu.decode(cmd.encode()) == cmd
    else:
        with pytest.raises(ApduFormatError):
            cmd.encode()


@FUZZ
@given(st.binary(max_size=300))
def test_command_apdu_decode_arbitrary(raw: bytes) -> None:
    with contextlib.suppress(ApduFormatError):
        CommandApdu.decode(raw)


@FUZZ
@given(st.binary(max_size=300))
def test_response_apdu_decode_arbitrary(raw: bytes) -> None:
    try:
        response = ResponseApdu.decode(raw)
    except ApduFormatError:
        assert len(raw) < 2
        return
    assert response.encode() == raw


@FUZZ
@given(st.integers(0, 0xFFFF))
def test_every_status_word_maps_to_a_typed_error(sw: int) -> None:
    err = error_for_sw(sw)
    assert isinstance(err, ApduError) and err.sw == sw


def test_status_word_classes() -> None:
    assert isinstance(error_for_sw(0x6982), SecurityError)
    assert isinstance(error_for_sw(0x6A82), NotFoundError)
    assert isinstance(error_for_sw(0x6A80), WrongDataError)
    assert error_for_sw(0x63C2).retries == 2  # type: ignore[attr-defined]
    assert isinstance(error_for_sw(0x63C2), VerifyError)


# -- ATR and PIV objects --


def test_atr_of_emulator_both_modes() -> None:
    t1 = parse_atr(make_atr(t0=False, extended=True))
    assert t1.protocols == frozenset({1}) and t1.extended_length and t1.chaining
    t0 = parse_atr(make_atr(t0=True, extended=False))
    assert t0.protocols == frozenset({0}) and not t0.extended_length
    yubikey = parse_atr(bytes.fromhex("3BFD1300008131FE158073C021C057597562694B657940"))
    assert yubikey.extended_length and 1 in yubikey.protocols


@FUZZ
@given(st.binary(max_size=40))
def test_parse_atr_arbitrary(atr: bytes) -> None:
    with contextlib.suppress(CardProtocolError):
        parse_atr(atr)


@FUZZ
@given(st.binary(max_size=300))
def test_piv_object_decoders_arbitrary(data: bytes) -> None:
    for decode in (Chuid.decode, decode_certificate_object):
        with contextlib.suppress(PivFormatError):
            decode(data)


# -- emulator command parser (in process: same code the card process runs) --


@pytest.fixture(scope="module")
def emulator() -> VirtualPivCard:
    path = Path(tempfile.mkdtemp()) / "fuzz.json"
    card = VirtualPivCard(CardImage.load_or_create(path))
    return card


def _is_response(raw: bytes) -> bool:
    return len(raw) >= 2


piv_commands = st.builds(
    lambda cla, ins, p1, p2, data, le, ext: (
        CommandApdu(cla, ins, p1, p2, data, le).encode(extended=ext)
        if ext or not CommandApdu(cla, ins, p1, p2, data, le).needs_extended()
        else CommandApdu(cla, ins, p1, p2, data[:255], min(le or 1, 256)).encode()
    ),
    st.sampled_from([0x00, 0x10, 0x80, 0x0C]),
    st.sampled_from([0xA4, 0xCB, 0xDB, 0x87, 0x47, 0x20, 0x24, 0x2C, 0xFF, 0xC0, 0x00, 0xB0]),
    st.sampled_from([0x00, 0x04, 0x3F, 0xFF, 0x03, 0x08, 0x11]),
    st.sampled_from([0x00, 0xFF, 0x80, 0x81, 0x9B, 0x9E, 0x9A]),
    st.one_of(
        st.binary(max_size=64),
        st.builds(lambda v: tlv.encode(0x7C, v), st.binary(max_size=40)),
        st.builds(lambda v: tlv.encode(0x5C, b"\x5f\xc1\x02") + tlv.encode(0x53, v), st.binary(max_size=300)),
        st.just(bytes.fromhex("A000000308000010000100")),
    ),
    st.one_of(st.none(), st.integers(1, 65536)),
    st.booleans(),
)


@FUZZ
@given(st.lists(st.one_of(piv_commands, st.binary(max_size=80)), min_size=1, max_size=12))
def test_emulator_never_crashes(emulator: VirtualPivCard, commands: list[bytes]) -> None:
    emulator.process(bytes.fromhex("00A4040006A00000030800"))
    for raw in commands:
        response = emulator.process(raw)
        assert _is_response(response)
        assert response[-2:] != b"\x6f\x00", f"unexpected exception for {raw.hex()}"
