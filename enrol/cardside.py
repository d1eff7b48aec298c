"""The card side of enrolment: inspect the card, personalise it if blank, write the sealed template and read it back.

Order (see `enrol.flow`): the card is inspected *before* the capture, so a card that cannot be enrolled is refused
before any face is taken; it is personalised and written only *after* a template exists, so a failed capture
leaves the card exactly as it was.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from card.bundles import DeskKeys
from card.cardauth import authenticate_card
from card.personalise import (
    CardState,
    erase_sealed_template,
    personalisation_state,
    personalise,
    read_sealed_template,
    write_sealed_template,
)
from card.piv import PivSession
from card.register import CardRegister
from card.values import CardGuid


class CardNotUsable(Exception):  # noqa: N818 - reads as an outcome at the call site
    """The card cannot be enrolled as it is (already enrolled without --replace, not ours, broken)."""

    def __init__(self, message: str, *, already_enrolled: bool = False) -> None:
        super().__init__(message)
        self.already_enrolled = already_enrolled


class ReadBackMismatch(Exception):  # noqa: N818
    """The bytes read back differ from the bytes written: the object was erased, enrolment failed."""


@dataclass(frozen=True)
class CardIdentity:
    guid: bytes
    public_key: ec.EllipticCurvePublicKey | None  # None until personalised
    state: CardState
    enrolled: bool
    certificate_serial: int | None = None  # of the 9E card-auth certificate, for the revocation check


def inspect_card(session: PivSession, *, replace: bool) -> CardIdentity:
    """Classify the card; refuse an enrolled card unless `replace`. Writes nothing."""
    session.select()
    state = personalisation_state(session)
    if state is not CardState.PERSONALISED:
        return CardIdentity(b"", None, state, enrolled=False)
    card = authenticate_card(session)  # also proves it is a genuine card of ours with a working 9E key
    enrolled = read_sealed_template(session) is not None
    if enrolled and not replace:
        raise CardNotUsable("card already holds a template (use --replace to re-enrol; audited)", already_enrolled=True)
    return CardIdentity(card.guid, card.public_key, state, enrolled, card.certificate.serial_number)


def ensure_personalised(
    session: PivSession, keys: DeskKeys, identity: CardIdentity, *, register: CardRegister | None = None
) -> CardIdentity:
    """Personalise a blank card; the issuing side records the card in the issued-card register as it issues its
    card-auth certificate (card id, GUID, serial, dates — never a template)."""
    if identity.state is CardState.PERSONALISED and identity.public_key is not None:
        return identity

    def issue(guid: bytes, public_key: ec.EllipticCurvePublicKey) -> x509.Certificate:
        cert = keys.issue_card_auth_certificate(guid, public_key)
        if register is not None:
            register.record_issued(CardGuid(guid), cert.serial_number, cert.not_valid_after_utc)
        return cert

    done = personalise(session, issue, keys.management_key_for)
    return CardIdentity(done.guid, done.public_key, CardState.PERSONALISED, enrolled=False,
                        certificate_serial=done.certificate.serial_number)


@dataclass
class WriteStage:
    """How far `write_and_check` got: "write" until the PUT DATA was answered, then "readback"."""

    name: str = "write"


def write_and_check(
    session: PivSession, keys: DeskKeys, guid: bytes, sealed_template: bytes, stage: WriteStage | None = None
) -> None:
    """Write, read back, compare in constant time. On mismatch erase the object so the card reads as not enrolled."""
    stage = stage or WriteStage()
    mgmt_key = keys.management_key_for(guid)
    write_sealed_template(session, mgmt_key, sealed_template)
    stage.name = "readback"
    back = read_sealed_template(session)
    if back is None or not hmac.compare_digest(back, sealed_template):
        erase_sealed_template(session, mgmt_key)
        raise ReadBackMismatch("read-back differs from what was written; the template object was erased")


def erase_template(session: PivSession, keys: DeskKeys, guid: bytes) -> None:
    """Delete the sealed template: the card then reads as clearly not enrolled."""
    erase_sealed_template(session, keys.management_key_for(guid))
