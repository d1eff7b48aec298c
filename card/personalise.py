"""Personalisation of a blank PIV card for cardbound, and the sealed-template object's write/read/erase.

Order (each step only after the previous one succeeded), chosen so an interrupted run is recognisable and
recoverable:
  1. authenticate with the factory management key (a card that refuses it is not blank: refused);
  2. draw the GUID and obtain the per-card key for it (fails before anything is written);
  3. delete a sealed template / 9E certificate left by an earlier interrupted run;
  4. write the CHUID (5FC102) with the GUID;
  5. generate the 9E key on the card;
  6. have the CA issue the 9E certificate for (GUID, public key), check it carries that key, write it to
  5FC101;
  7. write the CCC;
  8. replace the factory management key with the per-card AES-128 key (one atomic command, the last step).
Interrupted before 8, the card still accepts the factory key: `personalisation_state()` reports INCOMPLETE (or
BLANK before 4) and `personalise()` simply starts again. It cannot be enrolled meanwhile, because writing the
sealed template needs the per-card key. Interrupted before 6 it also fails card authentication at any gate
(no certificate). Only after 8 is it PERSONALISED; the sealed template, written at enrolment, is the
last object.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from types import ModuleType

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from card.apdu import SecurityError, WrongDataError
from card.piv import (
    DEFAULT_MANAGEMENT_KEY,
    BadResponseError,
    Chuid,
    KeyType,
    ManagementKeyType,
    ObjectId,
    PivFormatError,
    PivSession,
    Slot,
)

IssueCertificate = Callable[[bytes, ec.EllipticCurvePublicKey], x509.Certificate]
ManagementKeyFor = Callable[[bytes], bytes]
PER_CARD_KEY_TYPE = ManagementKeyType.AES128
MAX_SEALED_TEMPLATE = 8 * 1024


class PersonalisationError(Exception):
    """The card cannot be personalised (not blank, wrong key, CA refused ...)."""


class CardState(Enum):
    BLANK = "blank"  # no CHUID
    INCOMPLETE = "incomplete"  # CHUID but factory management key: interrupted personalisation
    PERSONALISED = "personalised"  # CHUID, certificate, per-card management key


@dataclass(frozen=True)
class PersonalisedCard:
    guid: bytes
    certificate: x509.Certificate
    public_key: ec.EllipticCurvePublicKey


def _factory_key_works(session: PivSession) -> bool:
    try:
        session.authenticate(ManagementKeyType.TDES, DEFAULT_MANAGEMENT_KEY)
        return True
    except (SecurityError, BadResponseError):
        return False
    except WrongDataError as exc:
        if exc.sw == 0x6A86:  # the card's 9B key is of another algorithm, so not the factory key
            return False
        raise


def personalisation_state(session: PivSession) -> CardState:
    """Classify a card. Authenticates with the factory key to tell INCOMPLETE from PERSONALISED (no write)."""
    if session.get_data_or_none(ObjectId.CHUID) is None:
        return CardState.BLANK
    return CardState.INCOMPLETE if _factory_key_works(session) else CardState.PERSONALISED


def personalise(
    session: PivSession,
    issue_certificate: IssueCertificate,
    management_key_for: ManagementKeyFor,
    *,
    expiry: dt.date | None = None,
    rng: ModuleType = secrets,
) -> PersonalisedCard:
    """Personalise a blank (or INCOMPLETE) card; see the module docstring for the order of steps."""
    if not _factory_key_works(session):
        raise PersonalisationError("card is not blank: the factory management key is refused")
    guid = rng.token_bytes(16)
    new_key = management_key_for(guid)
    if len(new_key) != PER_CARD_KEY_TYPE.key_len:
        raise PersonalisationError("per-card management key must be 16 bytes (AES-128)")
    for leftover in (ObjectId.SEALED_TEMPLATE, ObjectId.CARD_AUTH):
        if session.get_data_or_none(leftover) is not None:
            session.put_data(leftover, b"")
    chuid_expiry = expiry or (dt.datetime.now(dt.UTC) + dt.timedelta(days=5 * 365)).date()
    session.put_chuid(Chuid(guid=guid, expiry=chuid_expiry))
    public_key = session.generate_key(Slot.CARD_AUTH, KeyType.ECCP256)
    certificate = issue_certificate(guid, public_key)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(serialization.Encoding.DER, spki) != public_key.public_bytes(
        serialization.Encoding.DER, spki
    ):
        raise PersonalisationError("issued certificate does not carry the card's public key")
    session.put_certificate(certificate, ObjectId.CARD_AUTH)
    session.put_ccc(rng.token_bytes(14))
    session.set_management_key(PER_CARD_KEY_TYPE, new_key)
    return PersonalisedCard(guid, certificate, public_key)


def read_guid(session: PivSession) -> bytes | None:
    """The card's GUID from its CHUID, None on a blank card."""
    raw = session.get_data_or_none(ObjectId.CHUID)
    return None if raw is None else Chuid.decode(raw).guid


def _authenticate(session: PivSession, mgmt_key: bytes, key_type: ManagementKeyType) -> None:
    session.authenticate(key_type, mgmt_key)


def write_sealed_template(
    session: PivSession, mgmt_key: bytes, data: bytes, key_type: ManagementKeyType = PER_CARD_KEY_TYPE
) -> None:
    """Write the sealed template object (5FFF10). The card commits it atomically on the last APDU: an
    interruption leaves the previous value or nothing. Callers read back and compare before declaring
    success."""
    if not data:
        raise ValueError("empty sealed template: use erase_sealed_template")
    if len(data) > MAX_SEALED_TEMPLATE:
        raise ValueError(f"sealed template too large ({len(data)} > {MAX_SEALED_TEMPLATE} bytes)")
    _authenticate(session, mgmt_key, key_type)
    session.put_data(ObjectId.SEALED_TEMPLATE, data)


def read_sealed_template(session: PivSession) -> bytes | None:
    """The sealed template, None when the card holds none. Needs no PIN or key (the content is encrypted)."""
    return session.get_data_or_none(ObjectId.SEALED_TEMPLATE)


def erase_sealed_template(
    session: PivSession, mgmt_key: bytes, key_type: ManagementKeyType = PER_CARD_KEY_TYPE
) -> None:
    """Delete the sealed template object (PUT DATA with empty content)."""
    _authenticate(session, mgmt_key, key_type)
    session.put_data(ObjectId.SEALED_TEMPLATE, b"")


__all__ = [
    "CardState",
    "PersonalisationError",
    "PersonalisedCard",
    "PivFormatError",
    "erase_sealed_template",
    "personalisation_state",
    "personalise",
    "read_guid",
    "read_sealed_template",
    "write_sealed_template",
]
