"""Card authentication at the gate (PIV PKI-CAK, SP 800-116 §6.1.2 style): the card proves it holds the
private
key of its card-authentication certificate by signing a fresh random challenge with key 9E. No PIN.

This module checks possession only; the caller checks the certificate chain, validity and revocation with the
processor's PKI (card.pki), and that the certificate belongs to this card's GUID.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from types import ModuleType

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from card.piv import Chuid, ObjectId, PivSession, Slot

CHALLENGE_LEN = 32


class CardAuthError(Exception):
    """The card failed to prove possession of its card-authentication key (clone, replay, wrong key)."""


@dataclass(frozen=True)
class AuthenticatedCard:
    guid: bytes
    chuid: Chuid
    certificate: x509.Certificate
    public_key: ec.EllipticCurvePublicKey


def verify_card_signature(public_key: ec.EllipticCurvePublicKey, challenge: bytes, signature: bytes) -> None:
    """Raise CardAuthError unless `signature` is the card's ECDSA signature over exactly this `challenge`."""
    try:
        public_key.verify(signature, challenge, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        raise CardAuthError("card authentication signature invalid") from None


def authenticate_card(session: PivSession, rng: ModuleType = secrets) -> AuthenticatedCard:
    """Read CHUID and the 9E certificate, challenge key 9E with a fresh random value and verify the answer.

    Raises CardAuthError (bad signature, non-EC certificate), card.apdu errors (object or key missing),
    card.piv.PivFormatError (malformed objects)."""
    chuid = session.get_chuid()
    certificate = session.get_certificate(ObjectId.CARD_AUTH)
    public_key = certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name != "secp256r1":
        raise CardAuthError("card authentication certificate does not hold an EC P-256 key")
    challenge = rng.token_bytes(CHALLENGE_LEN)  # fresh each time: an old signature never verifies
    signature = session.sign_challenge(Slot.CARD_AUTH, challenge)
    verify_card_signature(public_key, challenge, signature)
    return AuthenticatedCard(chuid.guid, chuid, certificate, public_key)
