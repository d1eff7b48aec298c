"""What a gate decides, and why. One `Decision` per card presentation; it becomes one JSON line and one audit event.

Reason codes are stable strings (scripts, the door relay hook and auditors rely on them). A decision never carries
pixels, descriptors, the template or any hash of them: only the reason, timings, the gate id and a pseudonymous
card id.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from card.values import CardId


class Reason(StrEnum):
    ACCEPTED = "ACCEPTED"  # biometric 1:1 match (or not required by policy) and every card check passed
    ACCEPTED_NO_BIOMETRIC = "ACCEPTED_NO_BIOMETRIC"  # policy does not require the face check for this category
    NO_CARD = "NO_CARD"
    CARD_REMOVED = "CARD_REMOVED"  # card left the field / transaction failed mid-flow
    CARD_ERROR = "CARD_ERROR"  # card answered garbage or an unexpected status word
    CARD_AUTH_FAILED = "CARD_AUTH_FAILED"  # card did not prove possession of its 9E key (clone, replay)
    CARD_CERT_INVALID = "CARD_CERT_INVALID"  # 9E certificate not from our CA, revoked, expired
    CARD_REVOKED = "CARD_REVOKED"  # GUID on the revoked-card list (lost, withdrawn)
    NOT_ENROLLED = "NOT_ENROLLED"  # no sealed template on the card
    TEMPLATE_INVALID = "TEMPLATE_INVALID"  # malformed, tampered, bad signature, untrusted/revoked station
    TEMPLATE_EXPIRED = "TEMPLATE_EXPIRED"
    NOT_SEALED_FOR_SITE = "NOT_SEALED_FOR_SITE"  # sealed for other sites only, or to a verifier key past its overlap
    WRONG_CARD = "WRONG_CARD"  # template bound to another card (copied container)
    BANNED = "BANNED"  # holder on the port-ban list (art. 2.5.2.81)
    CATEGORY_NOT_ADMITTED = "CATEGORY_NOT_ADMITTED"  # policy refuses this category at the current level
    NO_LIVE_FACE = "NO_LIVE_FACE"  # no live frame passed the quality gate within the time budget
    LISTS_STALE = "LISTS_STALE"  # CRL, ban list or revoked-card list too old for the ISPS level (verify.freshness)
    SEVERAL_FACES = "SEVERAL_FACES"  # a second face in the capture, refused by the policy at this level
    CAMERA_ERROR = "CAMERA_ERROR"
    FACE_MISMATCH = "FACE_MISMATCH"  # 1:1 distance above the policy's threshold
    INTERNAL_ERROR = "INTERNAL_ERROR"

    @property
    def accepted(self) -> bool:
        return self in (Reason.ACCEPTED, Reason.ACCEPTED_NO_BIOMETRIC)


MESSAGES: dict[Reason, dict[str, str]] = {
    Reason.ACCEPTED: {"fr": "Accès autorisé", "nl": "Toegang toegestaan", "en": "Access granted"},
    Reason.ACCEPTED_NO_BIOMETRIC: {
        "fr": "Accès autorisé (contrôle biométrique non requis)",
        "nl": "Toegang toegestaan (biometrische controle niet vereist)",
        "en": "Access granted (biometric check not required)",
    },
    Reason.NO_CARD: {"fr": "Aucune carte présentée", "nl": "Geen kaart aangeboden", "en": "No card presented"},
    Reason.CARD_REMOVED: {
        "fr": "Carte retirée trop tôt, représentez-la",
        "nl": "Kaart te vroeg weggenomen, bied ze opnieuw aan",
        "en": "Card removed too early, present it again",
    },
    Reason.CARD_ERROR: {"fr": "Carte illisible", "nl": "Kaart onleesbaar", "en": "Card unreadable"},
    Reason.CARD_AUTH_FAILED: {
        "fr": "Carte non authentique", "nl": "Kaart niet authentiek", "en": "Card is not authentic",
    },
    Reason.CARD_CERT_INVALID: {
        "fr": "Certificat de carte non valable",
        "nl": "Kaartcertificaat ongeldig",
        "en": "Card certificate not valid",
    },
    Reason.CARD_REVOKED: {"fr": "Carte révoquée", "nl": "Kaart ingetrokken", "en": "Card revoked"},
    Reason.NOT_ENROLLED: {
        "fr": "Carte sans gabarit biométrique", "nl": "Kaart zonder biometrisch sjabloon",
        "en": "Card holds no biometric template",
    },
    Reason.TEMPLATE_INVALID: {
        "fr": "Gabarit de la carte non valable", "nl": "Sjabloon op de kaart ongeldig",
        "en": "Template on the card is not valid",
    },
    Reason.TEMPLATE_EXPIRED: {
        "fr": "Gabarit expiré, passez au guichet d'enrôlement",
        "nl": "Sjabloon verlopen, ga naar de registratiebalie",
        "en": "Template expired, go to the enrolment desk",
    },
    Reason.NOT_SEALED_FOR_SITE: {
        "fr": "Carte non valable pour ce site, passez au guichet d'enrôlement",
        "nl": "Kaart niet geldig voor deze site, ga naar de registratiebalie",
        "en": "Card not valid for this site, go to the enrolment desk",
    },
    Reason.WRONG_CARD: {
        "fr": "Le gabarit n'appartient pas à cette carte", "nl": "Het sjabloon hoort niet bij deze kaart",
        "en": "The template does not belong to this card",
    },
    Reason.BANNED: {
        "fr": "Accès refusé (interdiction portuaire)", "nl": "Toegang geweigerd (havenverbod)",
        "en": "Access refused (port ban)",
    },
    Reason.CATEGORY_NOT_ADMITTED: {
        "fr": "Catégorie non admise au niveau de sûreté actuel",
        "nl": "Categorie niet toegelaten op het huidige beveiligingsniveau",
        "en": "Category not admitted at the current security level",
    },
    Reason.NO_LIVE_FACE: {
        "fr": "Visage non capté, regardez la caméra", "nl": "Gezicht niet vastgelegd, kijk naar de camera",
        "en": "Face not captured, look at the camera",
    },
    Reason.LISTS_STALE: {
        "fr": "Listes de la barrière périmées, accès refusé; prévenez la sûreté",
        "nl": "Lijsten van de poort verouderd, toegang geweigerd; verwittig de beveiliging",
        "en": "Gate lists out of date, access refused; call security",
    },
    Reason.SEVERAL_FACES: {
        "fr": "Plusieurs visages devant la caméra, une seule personne à la fois",
        "nl": "Meerdere gezichten voor de camera, één persoon tegelijk",
        "en": "Several faces in front of the camera, one person at a time",
    },
    Reason.CAMERA_ERROR: {"fr": "Caméra indisponible", "nl": "Camera niet beschikbaar", "en": "Camera unavailable"},
    Reason.FACE_MISMATCH: {
        "fr": "Le visage ne correspond pas à la carte", "nl": "Het gezicht komt niet overeen met de kaart",
        "en": "Face does not match the card",
    },
    Reason.INTERNAL_ERROR: {"fr": "Erreur interne", "nl": "Interne fout", "en": "Internal error"},
}


# A GUID (or any long identifier, key or hash) in an exception text must not reach stdout or the audit log: card
# GUIDs are personal data; the pseudonymous card id is what operators see.
_LONG_HEX = re.compile(r"(?i)(?:[0-9a-f]{2}[-:\s]?){12,}[0-9a-f]{2}|\{?[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\}?")


def scrub(text: str) -> str:
    """`text` with every long hexadecimal run (a GUID, a key, a hash) replaced by `<id>`, cut to 200 characters."""
    return _LONG_HEX.sub("<id>", text)[:200]


def pseudonymous_card_id(guid: bytes) -> CardId:
    """A stable, non-reversible card id for logs: the GUID itself stays on the card and in the CHUID. One
    definition: `card.values.CardId.of` (raises `InvalidValue` for a GUID that is not 16 bytes)."""
    return CardId.of(guid)


@dataclass
class Decision:
    reason: Reason
    gate_id: str
    card_id: str | None = None
    security_level: int | None = None
    category: str | None = None
    distance: float | None = None
    threshold: float | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    detail: str = ""  # technical detail for operators (exception text), never biometric, never a GUID
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    reader_id: str | None = None  # which of the gate's readers ("reader-0", ...)
    lane_id: str | None = None  # the lane / door the configuration maps that reader to
    flags: tuple[str, ...] = ()  # e.g. ("SEVERAL_FACES",) when the policy accepted with a flag
    audited: bool = False  # set by `Gate.record` once the audit event is appended

    def __post_init__(self) -> None:
        self.detail = scrub(self.detail)

    @property
    def accepted(self) -> bool:
        return self.reason.accepted

    def message(self, lang: str = "en") -> str:
        return MESSAGES[self.reason].get(lang, MESSAGES[self.reason]["en"])

    def to_json(self) -> str:
        out: dict[str, object] = {
            "decision": "accept" if self.accepted else "reject",
            "reason": self.reason.value,
            "message": self.message("en"),
            "gate_id": self.gate_id,
            "card_id": self.card_id,
            "security_level": self.security_level,
            "category": self.category,
            "distance": None if self.distance is None else round(self.distance, 4),
            "threshold": self.threshold,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "at": self.at.isoformat(timespec="milliseconds"),
        }
        if self.reader_id is not None:
            out["reader_id"] = self.reader_id
            out["lane_id"] = self.lane_id
        if self.flags:
            out["flags"] = list(self.flags)
        if self.detail:
            out["detail"] = scrub(self.detail)
        return json.dumps(out, sort_keys=False)
