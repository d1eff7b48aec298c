"""Personalisation of a blank card and the sealed-template object, through the real chain."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from pcsc_fixtures import PersonalisedVirtualCard, Recorder, ThrowawayCa

from card import transport
from card.apdu import SecurityError
from card.cardauth import authenticate_card
from card.personalise import (
    CardState,
    PersonalisationError,
    erase_sealed_template,
    personalisation_state,
    personalise,
    read_guid,
    read_sealed_template,
    write_sealed_template,
)
from card.piv import DEFAULT_MANAGEMENT_KEY, ManagementKeyType, ObjectId, PivSession
from card.virtual.vpcd import Faults


def test_personalised_card_state(personalised_card: PersonalisedVirtualCard) -> None:
    with transport.connect(personalised_card.reader_name, timeout=5) as conn:
        session = PivSession(conn)
        assert personalisation_state(session) is CardState.PERSONALISED
        assert read_guid(session) == personalised_card.guid
        with pytest.raises(Exception) as err:  # factory key gone (9B is now AES-128)
            session.authenticate(ManagementKeyType.TDES, DEFAULT_MANAGEMENT_KEY)
        assert getattr(err.value, "sw", None) == 0x6A86
        session.authenticate(ManagementKeyType.AES128, personalised_card.management_key)
        assert session.get_data_or_none(ObjectId.CAPABILITY) is not None
        assert authenticate_card(session).guid == personalised_card.guid


def test_personalise_refuses_a_personalised_card(
    personalised_card: PersonalisedVirtualCard, throwaway_ca: ThrowawayCa
) -> None:
    with transport.connect(personalised_card.reader_name, timeout=5) as conn, pytest.raises(PersonalisationError):
        personalise(PivSession(conn), throwaway_ca.issue_certificate, lambda guid: secrets.token_bytes(16))


def test_sealed_template_write_read_erase(personalised_card: PersonalisedVirtualCard) -> None:
    key = personalised_card.management_key
    blob = secrets.token_bytes(1500)
    with transport.connect(personalised_card.reader_name, timeout=5) as conn:
        session = PivSession(conn)
        assert read_sealed_template(session) is None
        with pytest.raises(SecurityError):
            write_sealed_template(session, secrets.token_bytes(16), blob)
        write_sealed_template(session, key, blob)
    with transport.connect(personalised_card.reader_name, timeout=5) as conn:
        session = PivSession(conn)  # a gate: no key, no PIN
        assert read_sealed_template(session) == blob
        erase_sealed_template(session, key)
        assert read_sealed_template(session) is None
    with pytest.raises(ValueError):
        write_sealed_template(session, key, b"")


def test_interrupted_personalisation_is_recognisable_and_restartable(
    virtual_card_factory, throwaway_ca: ThrowawayCa, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Pull the card at every APDU boundary of personalisation: never PERSONALISED, always restartable."""
    image = tmp_path / "card.json"
    probe = virtual_card_factory(image=tmp_path / "probe.json")
    with transport.connect(probe.reader_name, timeout=5) as conn:
        rec = Recorder(conn)
        personalise(PivSession(conn), throwaway_ca.issue_certificate, lambda g: secrets.token_bytes(16))
    probe.remove()
    k = len(rec.sent)
    for n in range(k):
        pulled = virtual_card_factory(image=image, faults=Faults(drop_after=n))
        with transport.connect(pulled.reader_name, timeout=5) as conn, pytest.raises(transport.ConnectionLostError):
            personalise(PivSession(conn), throwaway_ca.issue_certificate, lambda g: secrets.token_bytes(16))
        pulled.remove()
        with_card = virtual_card_factory(image=image)
        with transport.connect(with_card.reader_name, timeout=5) as conn:
            session = PivSession(conn)
            assert personalisation_state(session) in (CardState.BLANK, CardState.INCOMPLETE), n
        with_card.remove()
    final = virtual_card_factory(image=image)
    with transport.connect(final.reader_name, timeout=5) as conn:
        session = PivSession(conn)
        result = personalise(session, throwaway_ca.issue_certificate, lambda g: secrets.token_bytes(16))
        assert personalisation_state(PivSession(conn)) is CardState.PERSONALISED
        assert authenticate_card(PivSession(conn)).guid == result.guid
