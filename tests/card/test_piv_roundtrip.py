"""Every PIV command through the real chain: pyscard → pcscd → vpcd → virtual card."""

from __future__ import annotations

import secrets

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from card import tlv
from card.apdu import NotFoundError, SecurityError, VerifyError
from card.piv import (
    DEFAULT_MANAGEMENT_KEY,
    BadResponseError,
    KeyType,
    ManagementKeyType,
    ObjectId,
    PivSession,
    Slot,
)

TDES = ManagementKeyType.TDES


def test_select_returns_application_property_template(piv_session: PivSession) -> None:
    apt = tlv.unpack(0x61, piv_session.select())
    assert tlv.parse_dict(apt)[0x4F] == bytes.fromhex("000010000100")


def test_get_data_of_absent_object_is_not_found(piv_session: PivSession) -> None:
    with pytest.raises(NotFoundError) as err:
        piv_session.get_data(ObjectId.SEALED_TEMPLATE)
    assert err.value.sw == 0x6A82
    assert piv_session.get_data_or_none(ObjectId.SEALED_TEMPLATE) is None


def test_put_data_needs_management_key(piv_session: PivSession) -> None:
    with pytest.raises(SecurityError) as err:
        piv_session.put_data(ObjectId.SEALED_TEMPLATE, b"x" * 10)
    assert err.value.sw == 0x6982
    assert piv_session.get_data_or_none(ObjectId.SEALED_TEMPLATE) is None


def test_put_get_delete_round_trip(piv_session: PivSession) -> None:
    piv_session.authenticate(TDES, DEFAULT_MANAGEMENT_KEY)
    data = secrets.token_bytes(1500)
    piv_session.put_data(ObjectId.SEALED_TEMPLATE, data)
    assert piv_session.get_data(ObjectId.SEALED_TEMPLATE) == data
    piv_session.put_data(ObjectId.SEALED_TEMPLATE, b"")
    assert piv_session.get_data_or_none(ObjectId.SEALED_TEMPLATE) is None


def test_wrong_management_key_is_refused(piv_session: PivSession) -> None:
    with pytest.raises(SecurityError):
        piv_session.authenticate(TDES, bytes(24))
    with pytest.raises(SecurityError):
        piv_session.put_data(ObjectId.CHUID, b"x")


def test_set_management_key_to_aes128(piv_session: PivSession) -> None:
    piv_session.authenticate(TDES, DEFAULT_MANAGEMENT_KEY)
    new_key = secrets.token_bytes(16)
    piv_session.set_management_key(ManagementKeyType.AES128, new_key)
    fresh = PivSession(piv_session.connection)  # SELECT again clears the authentication
    with pytest.raises(SecurityError):
        fresh.put_data(ObjectId.SEALED_TEMPLATE, b"x")
    with pytest.raises(Exception) as err:  # old key: algorithm no longer matches (6A86)
        fresh.authenticate(TDES, DEFAULT_MANAGEMENT_KEY)
    assert getattr(err.value, "sw", None) == 0x6A86
    with pytest.raises(SecurityError):
        fresh.authenticate(ManagementKeyType.AES128, secrets.token_bytes(16))
    fresh.authenticate(ManagementKeyType.AES128, new_key)
    fresh.put_data(ObjectId.SEALED_TEMPLATE, b"x")
    assert fresh.get_data(ObjectId.SEALED_TEMPLATE) == b"x"


def test_client_detects_a_card_that_does_not_hold_the_key(piv_session: PivSession) -> None:
    """Mutual authentication: if the card's answer to our challenge is wrong we must notice."""

    class Liar:
        def __init__(self, inner: PivSession) -> None:
            self.inner = inner.connection

        def send(self, cmd, deadline=None):  # type: ignore[no-untyped-def]
            data = self.inner.send(cmd, deadline)
            if data[:1] == b"\x7c" and b"\x82" in data[:4]:
                return data[:-1] + bytes([data[-1] ^ 1])
            return data

        def send_sw(self, cmd, deadline=None):  # type: ignore[no-untyped-def]
            return self.inner.send_sw(cmd, deadline)

    with pytest.raises(BadResponseError):
        PivSession(Liar(piv_session)).authenticate(TDES, DEFAULT_MANAGEMENT_KEY)


def test_generate_key_and_internal_authenticate(piv_session: PivSession) -> None:
    with pytest.raises(SecurityError):
        piv_session.generate_key(Slot.CARD_AUTH, KeyType.ECCP256)
    with pytest.raises(NotFoundError):  # no key yet: 6A88
        piv_session.sign_challenge(Slot.CARD_AUTH, secrets.token_bytes(32))
    piv_session.authenticate(TDES, DEFAULT_MANAGEMENT_KEY)
    public_key = piv_session.generate_key(Slot.CARD_AUTH, KeyType.ECCP256)
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    challenge = secrets.token_bytes(32)
    fresh = PivSession(piv_session.connection)  # no PIN, no management key: 9E works unauthenticated
    signature = fresh.sign_challenge(Slot.CARD_AUTH, challenge)
    public_key.verify(signature, challenge, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_pin_verify_change_and_unblock(piv_session: PivSession) -> None:
    assert piv_session.get_pin_attempts() == 3
    with pytest.raises(VerifyError) as err:
        piv_session.verify_pin("654321")
    assert err.value.retries == 2
    piv_session.verify_pin("123456")
    assert piv_session.get_pin_attempts() == -1  # verified in this session
    piv_session.change_pin("123456", "24681357")
    for left in (2, 1, 0):
        with pytest.raises(VerifyError) as err:
            piv_session.verify_pin("123456")
        assert err.value.retries == left
    with pytest.raises(SecurityError) as blocked:
        piv_session.verify_pin("24681357")
    assert blocked.value.sw == 0x6983
    piv_session.unblock_pin("12345678", "11223344")
    piv_session.verify_pin("11223344")
    piv_session.change_puk("12345678", "87654321")
    with pytest.raises(VerifyError):
        piv_session.unblock_pin("12345678", "11223344")


def test_chuid_ccc_and_certificate_objects(piv_session: PivSession, throwaway_ca) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from card.piv import Chuid

    piv_session.authenticate(TDES, DEFAULT_MANAGEMENT_KEY)
    guid = secrets.token_bytes(16)
    piv_session.put_chuid(Chuid(guid=guid, expiry=dt.date(2031, 12, 31)))
    chuid = piv_session.get_chuid()
    assert (chuid.guid, chuid.expiry, chuid.signature) == (guid, dt.date(2031, 12, 31), b"")
    raw = tlv.parse_dict(piv_session.get_data(ObjectId.CHUID))
    assert len(raw[0x30]) == 25 and raw[0x35] == b"20311231" and raw[0xFE] == b""
    piv_session.put_ccc(secrets.token_bytes(14))
    assert tlv.parse_dict(piv_session.get_data(ObjectId.CAPABILITY))[0xF1] == b"\x21"
    public_key = piv_session.generate_key(Slot.CARD_AUTH)
    cert = throwaway_ca.issue_certificate(guid, public_key)
    piv_session.put_certificate(cert)
    assert piv_session.get_certificate() == cert
    fields = tlv.parse_dict(piv_session.get_data(ObjectId.CARD_AUTH))
    assert set(fields) == {0x70, 0x71, 0xFE}
