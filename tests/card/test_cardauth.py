"""Card authentication (9E internal authenticate) through the real chain: genuine, replayed, cloned."""

from __future__ import annotations

import secrets

import pytest
from pcsc_fixtures import PersonalisedVirtualCard, Recorder

from card import transport
from card.apdu import NotFoundError
from card.cardauth import CardAuthError, authenticate_card
from card.piv import DEFAULT_MANAGEMENT_KEY, ManagementKeyType, ObjectId, PivSession, Slot

GA_9E = bytes([0x00, 0x87, 0x11, 0x9E])


def test_genuine_card_authenticates(personalised_card: PersonalisedVirtualCard) -> None:
    with transport.connect(personalised_card.reader_name, timeout=5) as conn:
        result = authenticate_card(PivSession(conn))
    assert result.guid == personalised_card.guid
    assert result.certificate == personalised_card.personalised.certificate
    assert result.public_key.public_numbers() == personalised_card.personalised.public_key.public_numbers()


def test_each_authentication_uses_a_fresh_challenge(personalised_card: PersonalisedVirtualCard) -> None:
    with transport.connect(personalised_card.reader_name, timeout=5) as conn:
        rec = Recorder(conn)
        session = PivSession(conn)
        authenticate_card(session)
        authenticate_card(session)
    challenges = [apdu for apdu in rec.sent if apdu.startswith(GA_9E)]
    assert len(challenges) == 2 and challenges[0] != challenges[1]


def test_replayed_response_is_rejected(personalised_card: PersonalisedVirtualCard) -> None:
    """An attacker relays an old card answer (valid signature over an old challenge): it must not pass."""
    with transport.connect(personalised_card.reader_name, timeout=5) as conn:
        rec = Recorder(conn)
        session = PivSession(conn)
        authenticate_card(session)
        old_answer = next(r for a, r in zip(rec.sent, rec.received, strict=True) if a.startswith(GA_9E))
        rec.rewrite[GA_9E] = old_answer
        with pytest.raises(CardAuthError):
            authenticate_card(session)


def test_cloned_data_without_the_key_is_rejected(
    personalised_card: PersonalisedVirtualCard, virtual_card_factory
) -> None:  # type: ignore[no-untyped-def]
    """Copy CHUID and certificate to another card (which has its own, different 9E key)."""
    with transport.connect(personalised_card.reader_name, timeout=5) as conn:
        genuine = PivSession(conn)
        chuid = genuine.get_data(ObjectId.CHUID)
        cert = genuine.get_data(ObjectId.CARD_AUTH)
    clone = virtual_card_factory(reader=1)
    with transport.connect(clone.reader_name, timeout=5) as conn:
        session = PivSession(conn)
        session.authenticate(ManagementKeyType.TDES, DEFAULT_MANAGEMENT_KEY)
        session.put_data(ObjectId.CHUID, chuid)
        session.put_data(ObjectId.CARD_AUTH, cert)
        with pytest.raises(NotFoundError):  # no 9E key at all
            authenticate_card(session)
        session.generate_key(Slot.CARD_AUTH)
        with pytest.raises(CardAuthError):  # a 9E key, but not the certified one
            authenticate_card(session)


def test_signature_over_other_challenge_fails_offline() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    from card.cardauth import verify_card_signature

    key = ec.generate_private_key(ec.SECP256R1())
    challenge = secrets.token_bytes(32)
    signature = key.sign(challenge, ec.ECDSA(Prehashed(hashes.SHA256())))
    verify_card_signature(key.public_key(), challenge, signature)
    with pytest.raises(CardAuthError):
        verify_card_signature(key.public_key(), secrets.token_bytes(32), signature)
