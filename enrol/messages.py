"""What the desk says to the operator, for every outcome, in French, Dutch and English.

One entry per outcome code (every `EnrolFailure`, success, and the command line's own input errors), each a
template with named fields that are the same in the three languages. The operator sees the whole message in the
chosen language; the English technical detail goes to `--json` ("detail") and the audit log only.
`tests/flows/test_enrol_messages.py` walks the catalogue.
"""

from __future__ import annotations

import string
from typing import Literal

Lang = Literal["fr", "nl", "en"]
LANGS: tuple[Lang, ...] = ("fr", "nl", "en")

CATALOGUE: dict[str, dict[Lang, str]] = {
    # -- success and prompts
    "ENROLLED": {
        "fr": "Carte {card_id} enrôlée : {samples} échantillon(s), qualité {quality}. Remettez la carte au titulaire.",
        "nl": "Kaart {card_id} ingeschreven: {samples} staal/stalen, kwaliteit {quality}. Geef de kaart aan de houder.",
        "en": "Card {card_id} enrolled: {samples} sample(s), quality {quality}. Hand the card to its holder.",
    },
    "PRESENT_CARD": {
        "fr": "Présentez la carte sur le lecteur {reader}…",
        "nl": "Leg de kaart op de lezer {reader}…",
        "en": "Present the card on reader {reader}…",
    },
    "NRN_PROMPT": {
        "fr": "Numéro de registre national (non affiché) : ",
        "nl": "Rijksregisternummer (wordt niet getoond): ",
        "en": "National register number (not shown): ",
    },
    "SOURCE_NOT_DESTROYED": {
        "fr": "Carte {card_id} enrôlée, mais {failed} fichier(s) photo n'ont pas pu être détruits : "
              "détruisez-les à la main.",
        "nl": "Kaart {card_id} ingeschreven, maar {failed} fotobestand(en) konden niet vernietigd worden: "
              "vernietig ze met de hand.",
        "en": "Card {card_id} enrolled, but {failed} photo file(s) could not be destroyed: destroy them by hand.",
    },
    # -- refusals and failures (EnrolFailure)
    "NO_READER": {
        "fr": "Lecteur de cartes introuvable. Vérifiez qu'il est branché.",
        "nl": "Kaartlezer niet gevonden. Controleer of hij aangesloten is.",
        "en": "Card reader not found. Check that it is plugged in.",
    },
    "NO_CARD": {
        "fr": "Aucune carte présentée à temps. Posez la carte sur le lecteur et recommencez.",
        "nl": "Geen kaart op tijd aangeboden. Leg de kaart op de lezer en begin opnieuw.",
        "en": "No card was presented in time. Put the card on the reader and start again.",
    },
    "CARD_REMOVED": {
        "fr": "La carte a été retirée pendant l'opération. Reposez-la et recommencez.",
        "nl": "De kaart werd tijdens de bewerking weggenomen. Leg ze terug en begin opnieuw.",
        "en": "The card was removed during the operation. Put it back and start again.",
    },
    "CARD_ERROR": {
        "fr": "La carte a répondu par une erreur. Essayez une autre carte.",
        "nl": "De kaart antwoordde met een fout. Probeer een andere kaart.",
        "en": "The card answered with an error. Try another card.",
    },
    "CARD_REVOKED": {
        "fr": "La carte {card_id} est révoquée (perdue ou retirée). Délivrez une nouvelle carte.",
        "nl": "Kaart {card_id} is ingetrokken (verloren of ingetrokken). Geef een nieuwe kaart uit.",
        "en": "Card {card_id} is revoked (lost or withdrawn). Issue a new card.",
    },
    "ALREADY_ENROLLED": {
        "fr": "Cette carte porte déjà un gabarit. Pour ré-enrôler, recommencez avec --replace (journalisé).",
        "nl": "Deze kaart draagt al een sjabloon. Om opnieuw in te schrijven, begin opnieuw met --replace "
              "(gelogd).",
        "en": "This card already holds a template. To re-enrol, start again with --replace (audited).",
    },
    "QUALITY": {
        "fr": "Aucune image n'a passé le contrôle de qualité ({codes}). {advice}",
        "nl": "Geen enkel beeld doorstond de kwaliteitscontrole ({codes}). {advice}",
        "en": "No image passed the quality check ({codes}). {advice}",
    },
    "SAMPLES_DISAGREE": {
        "fr": "Les échantillons {pairs} ne sont pas de la même personne : une carte, une personne. "
              "Recommencez avec des photos du seul titulaire.",
        "nl": "De stalen {pairs} zijn niet van dezelfde persoon: één kaart, één persoon. "
              "Begin opnieuw met foto's van alleen de houder.",
        "en": "Samples {pairs} are not of the same person: one card, one person. "
              "Start again with photos of the holder only.",
    },
    "NO_CAMERA": {
        "fr": "Caméra introuvable ou inutilisable. Vérifiez qu'elle est branchée.",
        "nl": "Camera niet gevonden of onbruikbaar. Controleer of ze aangesloten is.",
        "en": "Camera not found or not usable. Check that it is plugged in.",
    },
    "BAD_INPUT": {
        "fr": "Le fichier photo {path} est absent ou n'est pas une image lisible.",
        "nl": "Het fotobestand {path} ontbreekt of is geen leesbaar beeld.",
        "en": "The photo file {path} is missing or not a readable image.",
    },
    "CATEGORY_UNKNOWN": {
        "fr": "Catégorie « {category} » inconnue de la politique des portiques ({known}).{hint}",
        "nl": "Categorie '{category}' is onbekend in het poortbeleid ({known}).{hint}",
        "en": "Category '{category}' is not in the gate policy ({known}).{hint}",
    },
    "CATEGORY_HINT": {
        "fr": " Vouliez-vous dire « {suggestion} » ?",
        "nl": " Bedoelde u '{suggestion}'?",
        "en": " Did you mean '{suggestion}'?",
    },
    "VALIDITY": {
        "fr": "Date de validité {valid_until} refusée : elle doit être future et au plus tard le {latest} "
              "({max_days} jours).",
        "nl": "Geldigheidsdatum {valid_until} geweigerd: ze moet in de toekomst liggen en uiterlijk {latest} "
              "({max_days} dagen).",
        "en": "Validity date {valid_until} refused: it must be in the future and no later than {latest} "
              "({max_days} days).",
    },
    "SOURCE_UNSAFE": {
        "fr": "La photo {path} est un lien symbolique : ajoutez --delete-link-target pour détruire le fichier "
              "visé, ou retirez --delete-source.",
        "nl": "De foto {path} is een symbolische koppeling: voeg --delete-link-target toe om het doelbestand te "
              "vernietigen, of laat --delete-source weg.",
        "en": "The photo {path} is a symbolic link: add --delete-link-target to destroy the file it points to, "
              "or drop --delete-source.",
    },
    "WORKER_FAILED": {
        "fr": "Le module biométrique s'est arrêté. Rien n'a été écrit sur la carte ; recommencez.",
        "nl": "De biometrische module is gestopt. Er werd niets op de kaart geschreven; begin opnieuw.",
        "en": "The biometric module stopped. Nothing was written to the card; start again.",
    },
    "READ_BACK_MISMATCH": {
        "fr": "La relecture de la carte ne correspond pas à l'écriture : le gabarit a été effacé. Essayez une "
              "autre carte.",
        "nl": "Het teruglezen van de kaart komt niet overeen met wat geschreven werd: het sjabloon werd gewist. "
              "Probeer een andere kaart.",
        "en": "Reading the card back did not match what was written: the template was erased. Try another card.",
    },
    "KEYS": {
        "fr": "Clés du poste absentes ou invalides. Contactez l'administrateur des clés.",
        "nl": "Sleutels van het station ontbreken of zijn ongeldig. Neem contact op met de sleutelbeheerder.",
        "en": "The station's keys are missing or invalid. Contact the key administrator.",
    },
    "CONFIG": {
        "fr": "La configuration des portiques est illisible ou invalide : aucun enrôlement sans les règles des "
              "portiques.",
        "nl": "De poortconfiguratie is onleesbaar of ongeldig: geen inschrijving zonder de regels van de poorten.",
        "en": "The gate configuration is unreadable or invalid: no enrolment without the gates' rules.",
    },
    "AUDIT": {
        "fr": "Le journal d'audit n'a pas pu être écrit : l'enrôlement est arrêté. Contactez l'administrateur.",
        "nl": "Het auditlogboek kon niet geschreven worden: de inschrijving is gestopt. Neem contact op met de "
              "beheerder.",
        "en": "The audit log could not be written: enrolment stopped. Contact the administrator.",
    },
    # -- the command line's own input errors (enrol.errors.EnrolCommandFailure)
    "USAGE": {
        "fr": "Commande invalide : vérifiez les options.",
        "nl": "Ongeldige opdracht: controleer de opties.",
        "en": "Invalid command: check the options.",
    },
    "WORKER": {
        "fr": "Le module biométrique n'a pas pu démarrer. Rien n'a été écrit sur la carte.",
        "nl": "De biometrische module kon niet starten. Er werd niets op de kaart geschreven.",
        "en": "The biometric module could not start. Nothing was written to the card.",
    },
    "BAD_HOLDER_REF": {
        "fr": "Référence du titulaire invalide : 64 caractères hexadécimaux (ou --nrn-stdin).",
        "nl": "Ongeldige houdersreferentie: 64 hexadecimale tekens (of --nrn-stdin).",
        "en": "Invalid holder reference: 64 hexadecimal characters (or --nrn-stdin).",
    },
    "BAD_NRN": {
        "fr": "Numéro de registre national invalide.",
        "nl": "Ongeldig rijksregisternummer.",
        "en": "Invalid national register number.",
    },
    "BAD_DATE": {
        "fr": "Date {valid_until} invalide : format AAAA-MM-JJ.",
        "nl": "Ongeldige datum {valid_until}: formaat JJJJ-MM-DD.",
        "en": "Invalid date {valid_until}: format YYYY-MM-DD.",
    },
    # -- what the card holds after a failure
    "CARD_STATE_unchanged": {
        "fr": "La carte est inchangée.",
        "nl": "De kaart is ongewijzigd.",
        "en": "The card is unchanged.",
    },
    "CARD_STATE_not_enrolled": {
        "fr": "La carte n'est pas enrôlée.",
        "nl": "De kaart is niet ingeschreven.",
        "en": "The card is not enrolled.",
    },
    "CARD_STATE_unverified": {
        "fr": "L'écriture n'a pas pu être vérifiée : représentez la carte et ré-enrôlez avec --replace.",
        "nl": "Het schrijven kon niet gecontroleerd worden: bied de kaart opnieuw aan en schrijf opnieuw in met "
              "--replace.",
        "en": "The write could not be checked: present the card again and re-enrol with --replace.",
    },
    "CARD_STATE_enrolled": {
        "fr": "La carte est enrôlée (écriture journalisée).",
        "nl": "De kaart is ingeschreven (schrijven gelogd).",
        "en": "The card is enrolled (write logged).",
    },
}


def fields(code: str) -> set[str]:
    """The named fields of an entry (the same in every language; the catalogue test checks it)."""
    return {name for _, name, _, _ in string.Formatter().parse(CATALOGUE[code]["en"]) if name}


def render(code: str, lang: Lang = "en", /, **params: object) -> str:
    """The operator's message for `code`; a field without a value is left empty rather than failing."""
    entry = CATALOGUE.get(code) or CATALOGUE["CARD_ERROR"]
    template = entry.get(lang, entry["en"])
    values = {name: params.get(name, "") for name in fields(code if code in CATALOGUE else "CARD_ERROR")}
    return template.format(**values)


__all__ = ["CATALOGUE", "LANGS", "Lang", "fields", "render"]
