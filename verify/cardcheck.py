"""The gate's card transaction: select → card authentication (fresh challenge to 9E) → 9E certificate against the
CA and CRL → revoked-card list → read the sealed template → unseal bound to *this* card.

Every failure becomes a `CardRejected` carrying a gate `Reason`, so the flow never has to know the card package's
exception zoo.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric import ec

from card import sealed
from card.apdu import ApduError, ApduFormatError
from card.cardauth import CHALLENGE_LEN, CardAuthError, authenticate_card, verify_card_signature
from card.personalise import read_sealed_template
from card.piv import ObjectId, PivFormatError, PivSession, Slot
from card.sealed import GateTrust, UnsealedTemplate
from card.transport import CardRemovedError, CardTimeoutError, ConnectionLostError, TransportError
from verify.decision import Reason, pseudonymous_card_id


class CardRejected(Exception):  # noqa: N818 - reads as an outcome at the call site
    def __init__(self, reason: Reason, detail: str, card_id: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.card_id = card_id


@dataclass
class CardReading:
    guid: bytes
    card_id: str
    unsealed: UnsealedTemplate
    timings_ms: dict[str, float] = field(default_factory=dict)
    public_key: ec.EllipticCurvePublicKey | None = None  # the 9E key that answered: re-proved before the door opens

    def wipe(self) -> None:
        self.unsealed.wipe()


_TEMPLATE_REASONS: dict[type[sealed.SealedTemplateError], Reason] = {
    sealed.TemplateExpiredError: Reason.TEMPLATE_EXPIRED,
    sealed.NotSealedForThisSiteError: Reason.NOT_SEALED_FOR_SITE,
    sealed.VerifierKeyExpiredError: Reason.NOT_SEALED_FOR_SITE,
    sealed.WrongCardError: Reason.WRONG_CARD,
}


def _template_reason(exc: sealed.SealedTemplateError) -> Reason:
    for kind, reason in _TEMPLATE_REASONS.items():
        if isinstance(exc, kind):
            return reason
    return Reason.TEMPLATE_INVALID


def reprove(session: PivSession, reading: CardReading) -> None:
    """The card that was read must still be there: a fresh challenge to the same 9E key. Raises `CardRejected`
    (CARD_REMOVED) otherwise, so a door never opens for a card that has left the reader."""
    if reading.public_key is None:
        raise CardRejected(Reason.CARD_REMOVED, "card key unknown: cannot re-prove presence", reading.card_id)
    challenge = secrets.token_bytes(CHALLENGE_LEN)
    try:
        signature = session.sign_challenge(Slot.CARD_AUTH, challenge)
        verify_card_signature(reading.public_key, challenge, signature)
    except Exception as exc:  # removed, swapped, mute, garbage: in every case not the card that was read
        raise CardRejected(Reason.CARD_REMOVED, f"card not re-proved after the face check ({type(exc).__name__})",
                           reading.card_id) from None


def read_card(
    session: PivSession,
    trust: GateTrust,
    *,
    now: datetime,
    is_revoked: Callable[[bytes], bool] = lambda guid: False,
) -> CardReading:
    """Run the whole card transaction; raise `CardRejected` with the reason on any failure."""
    timings: dict[str, float] = {}
    card_id: str | None = None
    t0 = time.perf_counter()
    try:
        session.select()
        if session.get_data_or_none(ObjectId.CHUID) is None:
            # A blank card (no CHUID): not enrolled. A card *with* identity data that then cannot prove possession
            # of its 9E key (a clone) fails below as CARD_AUTH_FAILED.
            raise CardRejected(Reason.NOT_ENROLLED, "blank card: no CHUID, never personalised")
        card = authenticate_card(session)
        card_id = pseudonymous_card_id(card.guid)
        timings["card_auth"] = (time.perf_counter() - t0) * 1000
        try:
            binding = sealed.gate_binding(card.certificate, card.guid, trust=trust, now=now)
        except sealed.StaleCrlError as exc:  # the gate's list is too old to say the card is not revoked
            raise CardRejected(Reason.LISTS_STALE, str(exc), card_id) from None
        except sealed.SealedTemplateError as exc:  # CardCertificateError
            raise CardRejected(Reason.CARD_CERT_INVALID, str(exc), card_id) from None
        if is_revoked(card.guid):
            raise CardRejected(Reason.CARD_REVOKED, "card GUID is on the revoked-card list", card_id)
        t1 = time.perf_counter()
        data = read_sealed_template(session)
        timings["card_read"] = (time.perf_counter() - t1) * 1000
    except CardRejected:
        raise
    except CardAuthError as exc:
        raise CardRejected(Reason.CARD_AUTH_FAILED, str(exc), card_id) from None
    except CardTimeoutError as exc:  # a mute or frozen card: it is there, but it does not answer
        raise CardRejected(Reason.CARD_ERROR, str(exc), card_id) from None
    except CardRemovedError as exc:
        raise CardRejected(Reason.CARD_REMOVED, str(exc), card_id) from None
    except ConnectionLostError as exc:
        raise CardRejected(Reason.CARD_REMOVED, str(exc), card_id) from None
    except (ApduError, ApduFormatError, PivFormatError, TransportError, ValueError) as exc:
        # A card answering garbage or refusing to sign cannot authenticate.
        reason = Reason.CARD_AUTH_FAILED if card_id is None else Reason.CARD_ERROR
        raise CardRejected(reason, f"{type(exc).__name__}: {exc}", card_id) from None
    if not data:
        raise CardRejected(Reason.NOT_ENROLLED, "no sealed template on the card", card_id)
    t2 = time.perf_counter()
    try:
        unsealed = sealed.unseal(data, trust=trust, expected=binding, now=now)
    except sealed.SealedTemplateError as exc:
        raise CardRejected(_template_reason(exc), f"{type(exc).__name__}: {exc}", card_id) from None
    timings["unseal"] = (time.perf_counter() - t2) * 1000
    return CardReading(card.guid, card_id, unsealed, timings, card.public_key)
