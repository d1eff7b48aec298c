"""Every string the desk shows, in French, Dutch and English (a plain catalogue: the desk has a few dozen strings;
a test walks every key in all three languages). Quality hints come from `biometric.quality.MESSAGES`."""

from __future__ import annotations

from biometric.quality import MESSAGES as QUALITY_MESSAGES
from biometric.quality import QualityReason
from enrol.desk.store import LANGS, Lang

T: dict[str, dict[Lang, str]] = {
    # chrome
    "app_title": {"fr": "Guichet d'enrôlement", "nl": "Inschrijvingsbalie", "en": "Enrolment desk"},
    "language": {"fr": "Langue", "nl": "Taal", "en": "Language"},
    "logout": {"fr": "Se déconnecter", "nl": "Afmelden", "en": "Log out"},
    "logged_in_as": {"fr": "Connecté : {who} ({role})", "nl": "Aangemeld: {who} ({role})",
                     "en": "Logged in: {who} ({role})"},
    "role_operator": {"fr": "opérateur", "nl": "operator", "en": "operator"},
    "role_admin": {"fr": "administrateur", "nl": "beheerder", "en": "admin"},
    "role_auditor": {"fr": "auditeur", "nl": "auditor", "en": "auditor"},
    "role_disabled": {"fr": "désactivé", "nl": "uitgeschakeld", "en": "disabled"},
    "nojs": {"fr": "Cette page a besoin de JavaScript (servi par le guichet lui-même).",
             "nl": "Deze pagina heeft JavaScript nodig (door de balie zelf geleverd).",
             "en": "This page needs JavaScript (served by the desk itself)."},
    # login / registration
    "login_title": {"fr": "Connexion avec votre clé de sécurité", "nl": "Aanmelden met uw beveiligingssleutel",
                    "en": "Log in with your security key"},
    "operator_id": {"fr": "Identifiant", "nl": "Gebruikersnaam", "en": "Operator id"},
    "login_button": {"fr": "Se connecter", "nl": "Aanmelden", "en": "Log in"},
    "touch_key": {"fr": "Touchez votre clé de sécurité…", "nl": "Raak uw beveiligingssleutel aan…",
                  "en": "Touch your security key…"},
    "login_failed": {"fr": "Connexion refusée.", "nl": "Aanmelding geweigerd.", "en": "Login refused."},
    "session_expired": {"fr": "Session expirée, reconnectez-vous.", "nl": "Sessie verlopen, meld u opnieuw aan.",
                        "en": "Session expired, please log in again."},
    "logged_out": {"fr": "Vous êtes déconnecté.", "nl": "U bent afgemeld.", "en": "You are logged out."},
    "register_title": {"fr": "Enregistrer une clé de sécurité", "nl": "Beveiligingssleutel registreren",
                       "en": "Register a security key"},
    "register_for": {"fr": "Compte : {who}, rôle : {role}", "nl": "Account: {who}, rol: {role}",
                     "en": "Account: {who}, role: {role}"},
    "register_button": {"fr": "Enregistrer ma clé", "nl": "Mijn sleutel registreren", "en": "Register my key"},
    "registered": {"fr": "Clé enregistrée. Vous pouvez vous connecter.",
                   "nl": "Sleutel geregistreerd. U kunt zich aanmelden.",
                   "en": "Key registered. You can log in now."},
    "register_failed": {"fr": "Enregistrement refusé.", "nl": "Registratie geweigerd.", "en": "Registration refused."},
    "invalid_link": {"fr": "Ce lien d'enregistrement est invalide, déjà utilisé ou expiré.",
                     "nl": "Deze registratielink is ongeldig, al gebruikt of verlopen.",
                     "en": "This registration link is invalid, used or expired."},
    # errors
    "forbidden": {"fr": "Accès refusé pour votre rôle.", "nl": "Geen toegang met uw rol.",
                  "en": "Access refused for your role."},
    "not_logged_in": {"fr": "Connectez-vous d'abord.", "nl": "Meld u eerst aan.", "en": "Please log in first."},
    "csrf": {"fr": "Requête refusée (jeton de sécurité manquant ou invalide).",
             "nl": "Verzoek geweigerd (beveiligingstoken ontbreekt of is ongeldig).",
             "en": "Request refused (security token missing or invalid)."},
    "bad_request": {"fr": "Requête invalide.", "nl": "Ongeldig verzoek.", "en": "Invalid request."},
    "too_large": {"fr": "Image trop volumineuse.", "nl": "Beeld te groot.", "en": "Image too large."},
    "not_found": {"fr": "Page introuvable.", "nl": "Pagina niet gevonden.", "en": "Page not found."},
    "internal": {"fr": "Erreur interne ; l'opération n'a pas eu lieu.", "nl": "Interne fout; de bewerking is niet "
                 "uitgevoerd.", "en": "Internal error; nothing was done."},
    # capture
    "capture_title": {"fr": "Photo", "nl": "Foto", "en": "Photo"},
    "camera_starting": {"fr": "Démarrage de la caméra…", "nl": "Camera wordt gestart…", "en": "Starting the camera…"},
    "no_camera": {"fr": "Aucune caméra disponible.", "nl": "Geen camera beschikbaar.", "en": "No camera available."},
    "hint_ok": {"fr": "Bonne image. Restez immobile et cliquez sur « Prendre ».",
                "nl": "Goed beeld. Blijf stil en klik op ‘Nemen’.", "en": "Good picture. Hold still and press Take."},
    "hint_bad_image": {"fr": "Image illisible, nouvel essai…", "nl": "Onleesbaar beeld, nieuwe poging…",
                       "en": "Unreadable picture, retrying…"},
    "take_button": {"fr": "Prendre", "nl": "Nemen", "en": "Take"},
    "retake_button": {"fr": "Recommencer", "nl": "Opnieuw", "en": "Start again"},
    "taken": {"fr": "{n} sur {need} images prises", "nl": "{n} van {need} beelden genomen",
              "en": "{n} of {need} pictures taken"},
    "capture_done": {"fr": "Photos prêtes.", "nl": "Foto's klaar.", "en": "Pictures ready."},
    # card panel
    "card_title": {"fr": "Carte", "nl": "Kaart", "en": "Card"},
    "reader": {"fr": "Lecteur", "nl": "Lezer", "en": "Reader"},
    "no_reader": {"fr": "Aucun lecteur de cartes.", "nl": "Geen kaartlezer.", "en": "No card reader."},
    "card_absent": {"fr": "pas de carte", "nl": "geen kaart", "en": "no card"},
    "card_blank": {"fr": "carte vierge", "nl": "blanco kaart", "en": "blank card"},
    "card_enrolled": {"fr": "carte déjà enrôlée", "nl": "kaart al ingeschreven", "en": "card already enrolled"},
    "card_ready": {"fr": "carte prête (personnalisée, sans gabarit)", "nl": "kaart klaar (gepersonaliseerd, zonder "
                   "sjabloon)", "en": "card ready (personalised, no template)"},
    "card_unknown": {"fr": "carte illisible ou étrangère", "nl": "kaart onleesbaar of vreemd",
                     "en": "card unreadable or not ours"},
    "pcsc_down": {"fr": "Service de cartes à puce indisponible.", "nl": "Chipkaartdienst niet beschikbaar.",
                  "en": "Smart-card service unavailable."},
    # enrolment form
    "nrn": {"fr": "Numéro de registre national", "nl": "Rijksregisternummer", "en": "National register number"},
    "nrn_help": {"fr": "Transformé en pseudonyme immédiatement ; jamais conservé.",
                 "nl": "Meteen gepseudonimiseerd; nooit bewaard.", "en": "Pseudonymised at once; never kept."},
    "category": {"fr": "Catégorie", "nl": "Categorie", "en": "Category"},
    "valid_until": {"fr": "Valable jusqu'au", "nl": "Geldig tot", "en": "Valid until"},
    "replace": {"fr": "Remplacer un gabarit existant", "nl": "Bestaand sjabloon vervangen",
                "en": "Replace an existing template"},
    "enrol_button": {"fr": "Enrôler", "nl": "Inschrijven", "en": "Enrol"},
    "enrolling": {"fr": "Enrôlement en cours : carte, gabarit, écriture, relecture…",
                  "nl": "Inschrijving bezig: kaart, sjabloon, schrijven, teruglezen…",
                  "en": "Enrolling: card, template, write, read back…"},
    "result_title": {"fr": "Résultat", "nl": "Resultaat", "en": "Result"},
    "enrolled": {"fr": "Enrôlement réussi. Carte {card} écrite et vérifiée.",
                 "nl": "Inschrijving geslaagd. Kaart {card} geschreven en gecontroleerd.",
                 "en": "Enrolled. Card {card} written and checked."},
    "enrolled_detail": {"fr": "{used} images utilisées, qualité {quality}, valable jusqu'au {until}. Aucune image "
                        "ni gabarit n'est conservé.",
                        "nl": "{used} beelden gebruikt, kwaliteit {quality}, geldig tot {until}. Er wordt geen "
                        "beeld of sjabloon bewaard.",
                        "en": "{used} pictures used, quality {quality}, valid until {until}. No picture or template "
                        "is kept."},
    "refused": {"fr": "Enrôlement refusé : {why}", "nl": "Inschrijving geweigerd: {why}",
                "en": "Enrolment refused: {why}"},
    "next_person": {"fr": "Personne suivante", "nl": "Volgende persoon", "en": "Next person"},
    "bad_nrn": {"fr": "Numéro de registre national invalide.", "nl": "Ongeldig rijksregisternummer.",
                "en": "Invalid national register number."},
    "bad_category": {"fr": "Catégorie inconnue de la politique des portiques.",
                     "nl": "Categorie onbekend in het toegangsbeleid.", "en": "Category unknown to the gate policy."},
    "bad_date": {"fr": "Date de validité invalide (au plus tard le {max}).",
                 "nl": "Ongeldige geldigheidsdatum (uiterlijk {max}).", "en": "Invalid validity date (at most {max})."},
    "no_frames": {"fr": "Prenez d'abord les photos.", "nl": "Neem eerst de foto's.", "en": "Take the pictures first."},
    # enrolment failures (enrol.flow.EnrolFailure)
    "fail_NO_READER": {"fr": "aucun lecteur de cartes.", "nl": "geen kaartlezer.", "en": "no card reader."},
    "fail_NO_CARD": {"fr": "aucune carte dans le lecteur.", "nl": "geen kaart in de lezer.",
                     "en": "no card in the reader."},
    "fail_CARD_REMOVED": {"fr": "carte retirée pendant l'opération ; rien n'a été accepté.",
                          "nl": "kaart verwijderd tijdens de bewerking; niets is aanvaard.",
                          "en": "card removed during the operation; nothing was accepted."},
    "fail_CARD_ERROR": {"fr": "la carte a répondu par une erreur.", "nl": "de kaart antwoordde met een fout.",
                        "en": "the card answered with an error."},
    "fail_ALREADY_ENROLLED": {"fr": "la carte contient déjà un gabarit (cochez « Remplacer »).",
                              "nl": "de kaart bevat al een sjabloon (vink ‘Vervangen’ aan).",
                              "en": "the card already holds a template (tick Replace)."},
    "fail_QUALITY": {"fr": "aucune image n'a passé le contrôle de qualité : {hint}",
                     "nl": "geen beeld doorstond de kwaliteitscontrole: {hint}",
                     "en": "no picture passed the quality check: {hint}"},
    "fail_NO_CAMERA": {"fr": "pas de caméra.", "nl": "geen camera.", "en": "no camera."},
    "fail_BAD_INPUT": {"fr": "image inutilisable.", "nl": "onbruikbaar beeld.", "en": "unusable picture."},
    "fail_READ_BACK_MISMATCH": {"fr": "la relecture diffère ; le gabarit a été effacé de la carte.",
                                "nl": "teruglezen verschilt; het sjabloon is van de kaart gewist.",
                                "en": "read-back differs; the template was erased from the card."},
    "fail_KEYS": {"fr": "clés de la station inutilisables.", "nl": "sleutels van het station onbruikbaar.",
                  "en": "station keys unusable."},
    "fail_CARD_REVOKED": {"fr": "carte révoquée (perdue ou retirée) ; délivrez une nouvelle carte.",
                          "nl": "kaart ingetrokken (verloren of ingetrokken); geef een nieuwe kaart uit.",
                          "en": "card revoked (lost or withdrawn); issue a new card."},
    "fail_SAMPLES_DISAGREE": {"fr": "les images ne sont pas de la même personne : une carte, une personne.",
                              "nl": "de beelden zijn niet van dezelfde persoon: één kaart, één persoon.",
                              "en": "the pictures are not of the same person: one card, one person."},
    "fail_CATEGORY_UNKNOWN": {"fr": "catégorie inconnue de la politique des portiques.",
                              "nl": "categorie onbekend in het toegangsbeleid.",
                              "en": "category unknown to the gate policy."},
    "fail_VALIDITY": {"fr": "date de validité hors des limites de la politique.",
                      "nl": "geldigheidsdatum buiten de grenzen van het beleid.",
                      "en": "validity date outside the policy's limits."},
    "fail_SOURCE_UNSAFE": {"fr": "fichier source non sûr à détruire.", "nl": "bronbestand niet veilig te vernietigen.",
                           "en": "source file not safe to destroy."},
    "fail_WORKER_FAILED": {"fr": "le module biométrique s'est arrêté ; rien n'a été écrit.",
                           "nl": "de biometrische module is gestopt; er werd niets geschreven.",
                           "en": "the biometric module stopped; nothing was written."},
    "fail_AUDIT": {"fr": "le journal d'audit n'a pas pu être écrit ; enrôlement arrêté.",
                   "nl": "het auditlogboek kon niet geschreven worden; inschrijving gestopt.",
                   "en": "the audit log could not be written; enrolment stopped."},
    "fail_POLICY": {"fr": "refusé par la politique.", "nl": "geweigerd door het beleid.",
                    "en": "refused by the policy."},
    "fail_OTHER": {"fr": "erreur inattendue.", "nl": "onverwachte fout.", "en": "unexpected error."},
    # admin
    "admin_title": {"fr": "Administration des opérateurs", "nl": "Beheer van operatoren",
                    "en": "Operator administration"},
    "operators": {"fr": "Opérateurs", "nl": "Operatoren", "en": "Operators"},
    "keys": {"fr": "Clés", "nl": "Sleutels", "en": "Keys"},
    "last_used": {"fr": "Dernière utilisation", "nl": "Laatst gebruikt", "en": "Last used"},
    "role": {"fr": "Rôle", "nl": "Rol", "en": "Role"},
    "change_role": {"fr": "Changer le rôle", "nl": "Rol wijzigen", "en": "Change role"},
    "invite_title": {"fr": "Nouveau compte (lien d'enregistrement à usage unique)",
                     "nl": "Nieuw account (eenmalige registratielink)",
                     "en": "New account (one-time registration link)"},
    "invite_button": {"fr": "Créer le lien", "nl": "Link aanmaken", "en": "Create link"},
    "invite_link": {"fr": "Lien pour {who} (valable 24 h, une seule fois) :",
                    "nl": "Link voor {who} (24 u geldig, één keer):", "en": "Link for {who} (valid 24 h, once):"},
    "role_changed": {"fr": "Rôle de {who} : {old} → {new}.", "nl": "Rol van {who}: {old} → {new}.",
                     "en": "Role of {who}: {old} → {new}."},
    "operator_exists": {"fr": "Ce compte existe avec un autre rôle.", "nl": "Dit account bestaat met een andere rol.",
                        "en": "This account exists with another role."},
    "bad_operator_id": {"fr": "Identifiant : 2 à 32 lettres minuscules, chiffres, « . », « _ » ou « - ».",
                        "nl": "Gebruikersnaam: 2 tot 32 kleine letters, cijfers, ‘.’, ‘_’ of ‘-’.",
                        "en": "Operator id: 2 to 32 lower-case letters, digits, '.', '_' or '-'."},
    "last_admin": {"fr": "Le dernier administrateur ne peut pas perdre son rôle.",
                   "nl": "De laatste beheerder kan zijn rol niet verliezen.",
                   "en": "The last admin cannot lose the admin role."},
    "unknown_operator": {"fr": "Opérateur inconnu.", "nl": "Onbekende operator.", "en": "Unknown operator."},
    "credential_exists": {"fr": "Cette clé est déjà enregistrée.", "nl": "Deze sleutel is al geregistreerd.",
                          "en": "This key is already registered."},
    "store_unreadable": {"fr": "Registre des opérateurs illisible.", "nl": "Operatorregister onleesbaar.",
                         "en": "Operator register unreadable."},
    # auditor
    "audit_title": {"fr": "Journal d'audit", "nl": "Auditlogboek", "en": "Audit log"},
    "audit_ok": {"fr": "Journal vérifié : intact.", "nl": "Logboek gecontroleerd: intact.",
                 "en": "Log verified: intact."},
    "audit_bad": {"fr": "Journal vérifié : ANOMALIES.", "nl": "Logboek gecontroleerd: AFWIJKINGEN.",
                  "en": "Log verified: FINDINGS."},
    "evidence_none": {"fr": "Le dossier de preuves se construit en ligne de commande : `cardbound evidence build` "
                            "(voir le guide de l'auditeur).",
                      "nl": "Het bewijsdossier wordt op de opdrachtregel gebouwd: `cardbound evidence build` "
                            "(zie de auditorgids).",
                      "en": "The evidence pack is built on the command line: `cardbound evidence build` "
                            "(see the auditor guide)."},
}


def t(key: str, lang: Lang, **kw: object) -> str:
    """The string `key` in `lang` (format fields filled in). An unknown key is a bug: KeyError, caught by tests."""
    text = T[key][lang]
    return text.format(**kw) if kw else text


def hint(reason: str, lang: Lang) -> str:
    """Plain-language hint for a quality reason code (unknown codes get the generic retry message)."""
    try:
        return QUALITY_MESSAGES[QualityReason(reason)][lang]
    except ValueError:
        return T["hint_bad_image"][lang]


def lang_or_default(value: str | None, default: Lang = "en") -> Lang:
    for lang in LANGS:
        if value == lang:
            return lang
    return default
