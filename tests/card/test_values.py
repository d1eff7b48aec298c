"""The shared domain values: one validation, and every valid value is auditable as it stands."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.events import GateDecision
from card.values import CardGuid, CardId, Category, HolderRef, InvalidValue, StationId
from verify.decision import pseudonymous_card_id


@pytest.mark.parametrize("good", ["seafarer", "crew", "a", "x" * 32, "port_worker2"])
def test_category_accepts_policy_spellings(good: str) -> None:
    assert Category(good) == good


@pytest.mark.parametrize("bad", ["Seafarers", "_crew", "", "x" * 33, "crew-a", "1crew", " crew", 7])
def test_category_refuses_everything_else(bad: object) -> None:
    with pytest.raises(InvalidValue) as exc:
        Category(bad)  # type: ignore[arg-type]
    assert exc.value.field == "category"


def test_holder_ref_is_exactly_32_bytes() -> None:
    assert HolderRef(b"\x01" * 32).hex() == "01" * 32
    for n in (0, 8, 16, 31, 33):
        with pytest.raises(InvalidValue):
            HolderRef(b"\x01" * n)
    with pytest.raises(InvalidValue):
        HolderRef.from_hex("zz" * 32)
    assert HolderRef.from_hex(("AB" * 32) + "\n") == HolderRef(b"\xab" * 32)
    assert "ab" * 32 not in repr(HolderRef(b"\xab" * 32))


@pytest.mark.parametrize(
    "spelling",
    [
        "00112233445566778899aabbccddeeff",
        "00112233-4455-6677-8899-AABBCCDDEEFF",
        "{00112233-4455-6677-8899-aabbccddeeff}",
        "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff",
        " 0011 2233 4455 6677 8899 aabb ccdd eeff ",
    ],
)
def test_guid_parses_common_spellings(spelling: str) -> None:
    assert CardGuid.parse(spelling).value == bytes.fromhex("00112233445566778899aabbccddeeff")


@pytest.mark.parametrize("bad", ["", "0011", "g" * 32, "00112233445566778899aabbccddeeff00"])
def test_guid_refuses_malformed(bad: str) -> None:
    with pytest.raises(InvalidValue):
        CardGuid.parse(bad)


def test_card_id_matches_the_gate_pseudonym_and_hides_the_guid() -> None:
    guid = CardGuid(bytes(range(16)))
    assert guid.card_id == pseudonymous_card_id(guid.value)
    assert guid.hex() not in repr(guid)
    assert CardId(guid.card_id.upper()) == guid.card_id
    with pytest.raises(InvalidValue):
        CardId("xyz")


@given(st.from_regex(r"[a-z][a-z0-9_]{0,31}", fullmatch=True), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
                                                                              fullmatch=True))
def test_every_valid_value_is_auditable(category: str, station: str) -> None:
    guid = CardGuid(bytes(16))
    GateDecision(gate_id=StationId(station), card_id=guid.card_id, decision="granted",
                 reason_code="accepted", security_level=1, total_ms=1,
                 visitor_category=Category(category))
