"""The pack's human-readable report: `index.html` (French), `index.nl.html`, `index.en.html`, and `rapport.pdf`
rendered from the French page with WeasyPrint. Plain HTML built with escaping (no template engine), one CSS.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from iso27001_evidence.probes import FAIL, NOT_RUN, PASS, ProbeRun
from iso27001_evidence.soa import Control
from iso27001_evidence.sources import NOT_CONFIGURED, AuditFacts

LANGS = ("fr", "nl", "en")
FILES = {"fr": "index.html", "nl": "index.nl.html", "en": "index.en.html"}

T: dict[str, dict[str, str]] = {
    "title": {"fr": "Dossier de preuves pour la reconnaissance du sous-traitant "
                    "(art. 2.5.2.85, § 2, du Code belge de la Navigation)",
              "nl": "Bewijsdossier voor de erkenning van de verwerker "
                    "(art. 2.5.2.85, § 2, Belgisch Scheepvaartwetboek)",
              "en": "Evidence pack for the recognition of the processor (art. 2.5.2.85 §2, Belgian Navigation Code)"},
    "conform": {"fr": "CONFORME", "nl": "CONFORM", "en": "CONFORMING"},
    "nonconform": {"fr": "NON CONFORME", "nl": "NIET CONFORM", "en": "NOT CONFORMING"},
    "incomplete": {"fr": "INCOMPLET — sondes non exécutées", "nl": "ONVOLLEDIG — probes niet uitgevoerd",
                   "en": "INCOMPLETE — probes not run"},
    "verdict_note": {
        "fr": "Verdict des sondes de conformité exécutées sur le système installé lors de la construction de ce "
              "dossier. «\u00a0CONFORME\u00a0» signifie que toutes les sondes ont été exécutées et réussies ; "
              "une sonde non "
              "exécutée n'est jamais comptée comme réussie.",
        "nl": "Oordeel van de conformiteitsprobes die bij het opstellen van dit dossier op het geïnstalleerde systeem "
              "zijn uitgevoerd. Een niet uitgevoerde probe telt nooit als geslaagd.",
        "en": "Verdict of the conformance probes run on the installed system when this pack was built. A probe "
              "that did not run never counts as a pass."},
    "period": {"fr": "Période", "nl": "Periode", "en": "Period"},
    "node": {"fr": "Nœud (station)", "nl": "Knooppunt (station)", "en": "Node (station)"},
    "version": {"fr": "Version du logiciel", "nl": "Softwareversie", "en": "Software version"},
    "run": {"fr": "Exécution des sondes", "nl": "Uitvoering van de probes", "en": "Probe run"},
    "built": {"fr": "Construit le", "nl": "Opgesteld op", "en": "Built on"},
    "keyfp": {"fr": "Empreinte SHA-256 de la clé de preuve du sous-traitant",
              "nl": "SHA-256-vingerafdruk van de bewijssleutel van de verwerker",
              "en": "SHA-256 fingerprint of the processor's evidence key"},
    "summary": {"fr": "Résumé des sondes", "nl": "Samenvatting van de probes", "en": "Probe summary"},
    "probe": {"fr": "Sonde", "nl": "Probe", "en": "Probe"},
    "conditions": {"fr": "Conditions du § 3", "nl": "Voorwaarden van § 3", "en": "§3 conditions"},
    "result": {"fr": "Résultat", "nl": "Resultaat", "en": "Result"},
    "findings": {"fr": "Constats", "nl": "Bevindingen", "en": "Findings"},
    "method": {"fr": "Méthode", "nl": "Methode", "en": "Method"},
    "inputs": {"fr": "Entrées (jamais de données biométriques)", "nl": "Invoer (nooit biometrische gegevens)",
               "en": "Inputs (never biometric data)"},
    "time": {"fr": "Heure, durée", "nl": "Tijd, duur", "en": "Time, duration"},
    "s3": {"fr": "1. Article 2.5.2.85, § 3 : les quatre conditions",
           "nl": "1. Artikel 2.5.2.85, § 3: de vier voorwaarden",
           "en": "1. Art. 2.5.2.85 §3: the four conditions"},
    "mechanism": {"fr": "Mécanisme", "nl": "Mechanisme", "en": "Mechanism"},
    "s2": {"fr": "2. Article 2.5.2.85, § 2, 2°, et article 2.5.2.89 : accès aux données biométriques",
           "nl": "2. Artikel 2.5.2.85, § 2, 2°, en artikel 2.5.2.89: toegang tot biometrische gegevens",
           "en": "2. Art. 2.5.2.85 §2 2° and art. 2.5.2.89: access to biometric data"},
    "operators": {"fr": "Opérateurs, rôles et clés de sécurité", "nl": "Operatoren, rollen en beveiligingssleutels",
                  "en": "Operators, roles and security keys"},
    "logins": {"fr": "Historique des connexions et des échecs (journal d'audit)",
               "nl": "Aanmeldingen en mislukte pogingen (auditlog)", "en": "Logins and failures (audit log)"},
    "holders": {"fr": "Détenteurs des clés", "nl": "Houders van de sleutels", "en": "Key holders"},
    "s824": {"fr": "3. ISO/IEC 27001 A.8.24 : cryptographie", "nl": "3. ISO/IEC 27001 A.8.24: cryptografie",
             "en": "3. ISO/IEC 27001 A.8.24: cryptography"},
    "s815": {"fr": "4. ISO/IEC 27001 A.8.15 : journalisation", "nl": "4. ISO/IEC 27001 A.8.15: logging",
             "en": "4. ISO/IEC 27001 A.8.15: logging"},
    "s90": {"fr": "5. Article 2.5.2.90 : conservation ; inventaire des données (art. 2.5.2.88)",
            "nl": "5. Artikel 2.5.2.90: bewaring; gegevensinventaris (art. 2.5.2.88)",
            "en": "5. Art. 2.5.2.90: retention; data inventory (art. 2.5.2.88)"},
    "soa": {"fr": "6. Déclaration d'applicabilité (ISO/IEC 27001:2022 annexe A ; ISO/IEC 27701)",
            "nl": "6. Verklaring van toepasselijkheid (ISO/IEC 27001:2022 bijlage A; ISO/IEC 27701)",
            "en": "6. Statement of Applicability (ISO/IEC 27001:2022 Annex A; ISO/IEC 27701)"},
    "files": {"fr": "7. Contenu du dossier et vérification", "nl": "7. Inhoud van het dossier en controle",
              "en": "7. Pack contents and how to check it"},
    "none": {"fr": "aucun", "nl": "geen", "en": "none"},
    "yes": {"fr": "oui", "nl": "ja", "en": "yes"},
    "no": {"fr": "non", "nl": "nee", "en": "no"},
}
PROBE_TITLE: dict[str, dict[str, str]] = {
    "write-watch": {"fr": "Surveillance des écritures (enrôlement et vérification réels)",
                    "nl": "Bewaking van schrijfbewerkingen (echte inschrijving en verificatie)",
                    "en": "Write monitor (real enrolment and verification)"},
    "delete-source": {"fr": "Destruction de la photo source (--delete-source)",
                      "nl": "Vernietiging van de bronfoto (--delete-source)", "en": "Source photo destroyed"},
    "storage-scan": {"fr": "Analyse du stockage au repos", "nl": "Scan van de opslag", "en": "Storage scan"},
    "no-one-to-many": {"fr": "Absence de comparaison 1:N dans le code installé",
                       "nl": "Geen 1:N-vergelijking in de geïnstalleerde code", "en": "No 1:N comparison in the code"},
    "worker-cannot-write": {"fr": "Le processus isolé ne peut pas écrire de fichier",
                            "nl": "Het geïsoleerde proces kan geen bestand schrijven",
                            "en": "The isolated worker cannot write files"},
    "audit-schema": {"fr": "Le journal d'audit refuse tout contenu biométrique",
                     "nl": "De auditlog weigert biometrische inhoud", "en": "The audit log refuses biometric content"},
}
METHOD_FR: dict[str, str] = {
    "write-watch": "Enrôlement réel (commande installée « cardbound enrol --photo --delete-source ») puis "
                   "vérification au portique (« cardbound verify --once ») sur une carte PIV virtuelle, dans un "
                   "répertoire de station temporaire, chaque processus étant tracé par strace (ouverture en "
                   "écriture, création, renommage, lien, troncature, suppression). Chaque fichier écrit doit être "
                   "le journal d'audit, le magasin de clés ou la configuration de la station ; aucun fichier écrit "
                   "ne peut contenir d'octets d'image ou de vecteurs de type descripteur.",
    "delete-source": "Après l'enrôlement tracé avec --delete-source, la photo source doit avoir disparu et le "
                     "processus d'enrôlement lui-même doit l'avoir supprimée.",
    "storage-scan": "Analyse (audit.atrest : signatures d'images n'importe où dans un fichier ; 128 valeurs "
                    "float32/float64 consécutives de norme de descripteur) du répertoire de la station (clés, base "
                    "d'audit, configuration), des répertoires temporaires de la sonde, de chaque fichier écrit par "
                    "les processus tracés et, s'il est configuré, du magasin central.",
    "no-one-to-many": "Analyse statique (arbre syntaxique Python) des paquets installés biometric, verify, enrol et "
                      "card : aucune fonction d'identification ou de recherche, aucun paramètre recevant une "
                      "collection de modèles, aucun appel aux fonctions 1:N de face_recognition, aucune comparaison "
                      "dans une boucle sur des modèles.",
    "worker-cannot-write": "Démarrage du processus isolé installé, qui tente d'écrire, d'ajouter, d'écraser, de "
                           "tronquer, de supprimer, de renommer, d'écrire par mmap et par la libc ; les fichiers "
                           "sont ensuite contrôlés sur le disque.",
    "audit-schema": "Tentative d'inscrire au journal un modèle, son encodage hexadécimal, des signatures d'image, "
                    "un JPEG en base64, une URI data: et un descripteur en texte, par le constructeur et en le "
                    "contournant ; chaque écriture doit être refusée et le journal d'essai rester vide.",
}
METHOD_NL: dict[str, str] = {
    "write-watch": "Echte inschrijving (geïnstalleerde opdracht « cardbound enrol --photo --delete-source ») en "
                   "verificatie aan de poort (« cardbound verify --once ») "
                   "op een virtuele PIV-kaart, in een tijdelijke "
                   "stationsmap, elk proces gevolgd met strace. Elk geschreven bestand moet de auditlog, de "
                   "sleutelopslag of de configuratie van het station zijn; geen geschreven bestand mag beeldbytes of "
                   "descriptorachtige vectoren bevatten.",
    "delete-source": "Na de gevolgde inschrijving met --delete-source moet de bronfoto verdwenen zijn en moet het "
                     "inschrijvingsproces haar zelf hebben gewist.",
    "storage-scan": "Scan (audit.atrest: beeldhandtekeningen overal in een bestand; 128 opeenvolgende "
                    "float32/float64-waarden met de norm van een descriptor) van de stationsmap, de tijdelijke mappen "
                    "van de probe, elk bestand dat de gevolgde processen schreven en, indien geconfigureerd, de "
                    "centrale opslag.",
    "no-one-to-many": "Statische analyse van de geïnstalleerde pakketten biometric, verify, enrol en card: geen "
                      "identificatie- of zoekfunctie, geen parameter met een verzameling templates, geen 1:N-functies "
                      "van face_recognition, geen vergelijking in een lus over templates.",
    "worker-cannot-write": "Het geïnstalleerde geïsoleerde proces probeert op elf manieren te schrijven; het "
                           "resultaat wordt op de schijf vastgesteld.",
    "audit-schema": "Poging om een template, hex, beeldhandtekeningen, een base64-JPEG, een data:-URI en een "
                    "descriptor als tekst in de auditlog te schrijven, via de constructor en eromheen; elke "
                    "schrijfpoging moet geweigerd worden.",
}
CONDITION_TEXT = {
    1: "lors de la première phase de collecte des données biométriques, les caractéristiques uniques et "
       "individuelles de l'individu sont codées et enregistrées en tant que modèle, et ensuite les données "
       "biométriques brutes sont immédiatement supprimées ;",
    2: "lors de la vérification de l'identité de l'individu, il est seulement vérifié si les informations "
       "collectées au moment où l'individu souhaite s'authentifier correspondent au modèle qui a été enregistré "
       "lors de la première phase de collecte ;",
    3: "le modèle est exclusivement conservé sur un support de stockage durable en possession de l'individu, "
       "aucun stockage n'étant autorisé dans les bases de données du sous-traitant ;",
    4: "les données biométriques collectées lors de la deuxième phase de collecte aux fins de vérification de "
       "l'identité ne sont pas conservées plus longtemps que nécessaire aux fins de comparaison de ces données "
       "collectées avec le modèle.",
}
MECHANISM = {
    1: {"fr": "Les pixels n'existent que dans un processus isolé (biometric/isolation.py : RLIMIT_FSIZE=0, "
              "RLIMIT_CORE=0, non « dumpable », mémoire verrouillée si possible), en mémoire ; le modèle biométrique "
              "(vecteur de 128 valeurs, 512 octets) en sort seul, est scellé aussitôt (card/sealed.py) et écrit sur "
              "la carte ; les tampons sont effacés ; --delete-source écrase puis supprime la photo source "
              "(enrol/).",
        "nl": "Pixels bestaan alleen in een geïsoleerd proces (RLIMIT_FSIZE=0), in het geheugen; alleen het "
              "template (512 bytes) komt eruit, wordt meteen verzegeld en op de kaart geschreven; --delete-source "
              "overschrijft en wist de bronfoto.",
        "en": "Pixels exist only inside the isolated worker (RLIMIT_FSIZE=0, no core, not dumpable), in memory; "
              "only the 512-byte template leaves it, is sealed at once and written to the card; buffers are "
              "wiped; --delete-source overwrites and unlinks the source photo."},
    2: {"fr": "La seule fonction de comparaison (biometric.compare) prend un modèle de référence et un échantillon ; "
              "le portique lit le modèle scellé de la carte présentée (après authentification de la carte, clé "
              "9E), l'ouvre et compare une fois. Aucune interface n'accepte une liste de modèles.",
        "nl": "De enige vergelijkingsfunctie neemt één referentie en één monster; de poort leest het template van "
              "de aangeboden kaart en vergelijkt één keer. Geen interface aanvaardt een lijst van templates.",
        "en": "The only comparison (biometric.compare) takes one reference and one probe; the gate reads the sealed "
              "template of the card presented (after card authentication, key 9E), opens it and compares once. No "
              "interface accepts a list of templates."},
    3: {"fr": "Le modèle est chiffré (AES-256-GCM, clé enveloppée ECDH-ES vers les vérificateurs), signé par la "
              "station (ECDSA P-256) et lié à la carte (GUID et empreinte de la clé 9E) ; il n'existe aucun "
              "magasin de modèles ; les événements d'audit ne peuvent porter que des scalaires bornés.",
        "nl": "Het template is versleuteld, ondertekend en aan de kaart gebonden; er bestaat geen opslag van "
              "templates; auditgebeurtenissen bevatten alleen begrensde scalaire waarden.",
        "en": "The template is encrypted (AES-256-GCM, key wrapped with ECDH-ES to the verifiers), signed by the "
              "station (ECDSA P-256) and bound to the card (GUID and 9E key hash); no template store exists; audit "
              "events carry bounded scalars only."},
    4: {"fr": "L'échantillon du portique est capturé, comparé et effacé dans une seule requête au processus isolé, "
              "qui ne peut écrire aucun fichier ; seule la décision (avec la distance) est journalisée.",
        "nl": "Het poortmonster wordt in één verzoek aan het geïsoleerde proces vastgelegd, vergeleken en gewist; "
              "alleen de beslissing wordt gelogd.",
        "en": "The gate's sample is captured, compared and wiped within one request to the isolated worker, which "
              "cannot write files; only the decision (with the distance) is logged."},
}
CRYPTO = [
    ("modèle scellé / sealed template", "COSE Sign1 ECDSA P-256 (ES256) + COSE Encrypt AES-256-GCM, ECDH-ES+HKDF-256",
     "card/sealed.py"),
    ("AC émettrice, stations, cartes", "X.509, ECDSA P-256 / SHA-256, CRL", "card/pki.py, card/keystore.py"),
    ("authentification de la carte (9E)", "ECDSA P-256, défi-réponse PIV GENERAL AUTHENTICATE", "card/piv.py"),
    ("clé de gestion de carte (9B)", "AES-128, dérivée par carte (HKDF-SHA256)", "card/keystore.py"),
    ("journal d'audit", "SHA-256 (RFC 9162), points de contrôle Ed25519 (C2SP signed note)", "audit/"),
    ("référence du titulaire", "HMAC-SHA256 du numéro de registre national", "verify/banlist.py"),
    ("manifeste du dossier", "SHA-256, signature ECDSA P-256 (DER), clé de preuve", "iso27001_evidence/manifest.py"),
]


def _e(v: object) -> str:
    return html.escape(str(v), quote=True)


def _table(head: Sequence[str], rows: Iterable[Sequence[object]], cls: str = "", raw: bool = False) -> str:
    h = "".join(f"<th>{_e(x)}</th>" for x in head)
    thead = f"<thead><tr>{h}</tr></thead>" if head else ""
    body = "".join("<tr>" + "".join(f"<td>{x if raw else _e(x)}</td>" for x in r) + "</tr>" for r in rows)
    return f'<table class="{cls}">{thead}<tbody>{body}</tbody></table>'


INPUT_LABELS_FR = {
    "enrol photo": "photo d'enrôlement (nom du fichier de test)", "live photo": "photo au portique (nom du fichier)",
    "card": "carte", "holder": "titulaire", "gate decision": "décision du portique", "files written": "fichiers écrits",
    "source file": "fichier source", "station home": "répertoire de la station", "audit database": "base d'audit",
    "temporary directories": "répertoires temporaires", "extra paths": "autres emplacements",
    "central store": "magasin central", "files scanned": "fichiers analysés", "code read": "code lu",
    "locations": "emplacements", "write attempts": "tentatives d'écriture", "sandbox": "confinement",
    "known limit": "limite connue", "payloads tried": "contenus essayés",
}


def _label(key: str, lang: str) -> str:
    return INPUT_LABELS_FR.get(key, key) if lang == "fr" else key


def _badge(result: str) -> str:
    cls = {PASS: "pass", FAIL: "fail", NOT_RUN: "notrun"}.get(result, "info")
    return f'<span class="badge {cls}">{_e(result)}</span>'


def verdict(run: ProbeRun) -> str:
    if any(r.result == FAIL for r in run.results):
        return "nonconform"
    return "conform" if run.conform else "incomplete"


CSS = """
@page { size: A4; margin: 16mm 14mm 16mm 14mm;
        @bottom-right { content: counter(page) " / " counter(pages); font-size: 8pt; color: #555; } }
body { font-family: "DejaVu Sans", sans-serif; font-size: 9pt; line-height: 1.35; color: #111; }
h1 { font-size: 15pt; margin: 0 0 6pt 0; } h2 { font-size: 12pt; margin-top: 14pt; border-bottom: 1px solid #999; }
h3 { font-size: 10pt; margin-bottom: 3pt; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; margin: 4pt 0 8pt 0; }
th, td { border: 1px solid #bbb; padding: 2pt 4pt; vertical-align: top; text-align: left;
         overflow-wrap: anywhere; word-break: break-word; }
th { background: #eee; } tr { page-break-inside: avoid; }
.verdict { font-size: 22pt; font-weight: bold; padding: 8pt; text-align: center; margin: 8pt 0; border: 3px solid; }
.verdict.conform { color: #064; border-color: #064; } .verdict.nonconform { color: #a00; border-color: #a00; }
.verdict.incomplete { color: #a60; border-color: #a60; }
.badge { font-weight: bold; } .badge.pass { color: #064; } .badge.fail { color: #a00; } .badge.notrun { color: #a60; }
.soa th:nth-child(1), .soa td:nth-child(1) { width: 7%; } .soa { font-size: 7.5pt; }
.kv th:first-child, .kv td:first-child { width: 24%; font-weight: bold; }
.days th:nth-child(1), .days td:nth-child(1) { width: 14%; }
.days th:nth-child(2), .days td:nth-child(2) { width: 8%; } .days { font-size: 7.5pt; }
.soa th:nth-child(2), .soa td:nth-child(2) { width: 18%; } .soa th:nth-child(3), .soa td:nth-child(3) { width: 6%; }
.soa th:nth-child(5), .soa td:nth-child(5) { width: 9%; }
.soa th:nth-child(6), .soa td:nth-child(6) { width: 16%; }
h4 { font-size: 9.5pt; margin: 6pt 0 2pt 0; }
pre { font-family: "DejaVu Sans Mono", monospace; font-size: 7.5pt; white-space: pre-wrap; overflow-wrap: anywhere;
      background: #f6f6f6; padding: 4pt; }
.cover { page-break-after: always; }
.lang { font-size: 8pt; }
"""


def page(lang: str, run: ProbeRun, facts: AuditFacts | None, audit_error: str | None, ctx: Mapping[str, Any],
         controls: list[Control]) -> str:
    def t(k: str) -> str:
        return T[k][lang]

    v = verdict(run)
    out: list[str] = []
    langs = " · ".join(f'<a href="{FILES[x]}">{x.upper()}</a>' for x in LANGS)
    out.append(f'<section class="cover"><p class="lang">{langs}</p><h1>{_e(t("title"))}</h1>')
    out.append(f'<div class="verdict {v}">{_e(t(v))}</div><p>{_e(t("verdict_note"))}</p>')
    out.append(_table([], [
        (t("period"), ctx["period"]), (t("node"), run.node_id), (t("version"), run.software_version),
        (t("run"), f"{run.run_id} — {run.started}"), (t("built"), ctx["built"]), (t("keyfp"), ctx["fingerprint"]),
    ], "kv"))
    out.append(f"<h3>{_e(t('summary'))}</h3>")
    out.append(_table([t("probe"), t("conditions"), t("result"), t("findings")], [
        (_e(PROBE_TITLE[r.probe][lang]) + f" <code>{_e(r.probe)}</code>",
         _e(", ".join(f"{c}°" for c in r.conditions)), _badge(r.result),
         _e(r.findings[0] if r.findings else "—") + (f" (+{len(r.findings) - 1})" if len(r.findings) > 1 else ""))
        for r in run.results], raw=True))
    out.append("</section>")

    # §3
    out.append(f"<h2>{_e(t('s3'))}</h2>")
    for n in (1, 2, 3, 4):
        out.append(f"<h3>{n}° «\u00a0{_e(CONDITION_TEXT[n])}\u00a0»</h3>")
        out.append(f"<p><b>{_e(t('mechanism'))}.</b> {_e(MECHANISM[n][lang])}</p>")
        rows = [r for r in run.results if n in r.conditions]
        if not rows:
            out.append(f"<p>{_e(t('none'))}</p>")
        for r in rows:
            out.append(f"<h4>{_e(PROBE_TITLE[r.probe][lang])} <code>{_e(r.probe)}</code> — {_badge(r.result)}</h4>")
            out.append(_table([], [
                (_e(t("method")), _e({"fr": METHOD_FR, "nl": METHOD_NL}.get(lang, {}).get(r.probe, r.method))),
                (_e(t("inputs")), "<br>".join(f"{_e(_label(k, lang))} : {_e(val)}" for k, val in r.inputs.items())
                 or "—"),
                (_e(t("findings")), "<br>".join(_e(f) for f in r.findings) or _e(t("none"))),
                (_e(t("time")), _e(f"{r.started}, {r.duration_s:.1f} s, {r.software_version}")),
            ], "kv", raw=True))

    # §2 2° / 2.5.2.89
    out.append(f"<h2>{_e(t('s2'))}</h2>")
    out.append("<p>" + _e({
        "fr": "Art. 2.5.2.89, alinéa 2 : seuls le responsable du traitement et le sous-traitant ont accès aux données "
              "biométriques. Le modèle biométrique n'est lisible qu'avec la clé privée des vérificateurs ; les "
              "données biométriques brutes ne sont jamais conservées.",
        "nl": "Art. 2.5.2.89, tweede lid: alleen de verwerkingsverantwoordelijke en de verwerker hebben toegang tot "
              "biometrische gegevens.",
        "en": "Art. 2.5.2.89 para. 2: only the controller and the processor may access biometric data.",
    }[lang]) + "</p>")
    ops = ctx["operators"]
    out.append(f"<h3>{_e(t('operators'))}</h3>")
    if not isinstance(ops.get("operators"), list):
        out.append(f"<p><b>{_e(NOT_CONFIGURED)}</b> — {_e(ops.get('detail', ''))}</p>")
    else:
        out.append(f"<p>source : {_e(ops.get('source'))}</p>")
        if not ops["operators"]:
            out.append(f"<p>{_e(t('none'))} (aucun opérateur enregistré au guichet / no desk operator)</p>")
        out.append(_table(["operator", "role", "created", "credentials (id, created, last used, counter)"], [
            (o.get("operator_id"), o.get("role"), o.get("created"),
             "; ".join(f"{c.get('id')} {c.get('created')} → {c.get('last_used') or '—'} ({c.get('sign_count')})"
                       for c in o.get("credentials", [])) or "—") for o in ops["operators"]]))
    out.append(f"<h3>{_e(t('logins'))}</h3>")
    if facts is None:
        out.append(f"<p>{_e(audit_error)}</p>")
    elif facts.logins:
        out.append(_table(["time", "type", "operator", "station", "reason"], [
            (x.get("time"), x.get("type"), x.get("operator_id") or "—", x.get("station_id"),
             x.get("reason_code") or x.get("method") or "—") for x in facts.logins[:500]]))
    else:
        out.append(f"<p>{_e(t('none'))} (operator.login / operator.login_failed)</p>")
    keys = ctx["keys"]
    out.append(f"<h3>{_e(t('holders'))}</h3><p>{_e(keys.get('holders'))} — source : {_e(keys.get('source'))}</p>")

    # A.8.24
    out.append(f"<h2>{_e(t('s824'))}</h2>")
    out.append(_table(["usage", "algorithme / algorithm", "code"], CRYPTO))
    if "inventory" in keys:
        out.append(f"<pre>{_e(keys['inventory'])}</pre>")
    elif "text" in keys:
        out.append(f"<pre>{_e(keys['text'])}</pre>")
    else:
        out.append(f"<p><b>{_e(NOT_CONFIGURED)}</b> {_e(keys.get('detail', ''))}</p>")
    if facts is not None:
        out.append("<p>key.issued / key.revoked :</p>")
        out.append(_table(["time", "type", "key", "kind", "subject / reason"], [
            (x["time"], x["type"], x.get("key_id"), x.get("key_kind"), x.get("subject") or x.get("reason_code"))
            for x in facts.key_events]) if facts.key_events else f"<p>{_e(t('none'))}</p>")

    # A.8.15
    out.append(f"<h2>{_e(t('s815'))}</h2>")
    if facts is None:
        out.append(f"<p><b>{_e(audit_error)}</b></p>")
    else:
        ver = facts.verification
        out.append(_table([], [
            ("vérification / verification", ("OK" if ver["ok"] else "ÉCHEC / FAILED") + " — " + ver["summary"]),
            (t("findings"), "; ".join(ver["findings"]) or t("none")),
            ("points de contrôle signés dans le dossier", str(len(facts.checkpoints))),
            ("export de la période (preuves d'inclusion)",
             f"{facts.export_rows} entries, SHA-256 {facts.export_sha256}"),
            ("lacunes / gaps", "; ".join(facts.gaps) or t("none")),
            ("nœuds ayant cessé d'expédier / nodes that stopped shipping",
             ctx.get("shipping", NOT_CONFIGURED)),
        ], "kv"))
        out.append(_table(["type", "n"], sorted(facts.counts_by_type.items())))
        out.append(_table(["node", "n"], sorted(facts.counts_by_node.items())))
        out.append(_table(["jour / day", "total", "types"], [
            (d, sum(c.values()), "; ".join(f"{k}: {v}" for k, v in sorted(c.items())))
            for d, c in facts.counts_by_day.items()], "days"))

    # 2.5.2.90 / 2.5.2.88
    out.append(f"<h2>{_e(t('s90'))}</h2>")
    ret = ctx["retention"]
    out.append(_table([], [
        ("configuration", f"{ret['config_file']}: retention_days = {ret['retention_days']}"),
        ("≤ 10 ans / years", {True: t("yes"), False: t("no"), None: NOT_CONFIGURED}[ret["within_10_years"]]),
        ("purges", "; ".join(f"{p['time']}: {p.get('purged_entries')} entries, cutoff {p.get('cutoff')}"
                             for p in ret["purges_in_period"]) or t("none")),
    ], "kv"))
    out.append(_table(["art. 2.5.2.88, § 1", "cardbound", "où / where"],
                      [(x["item"], x["cardbound"], x["where"]) for x in ctx["inventory"]]))

    # SoA
    out.append(f"<h2>{_e(t('soa'))}</h2><p>{_e(ctx['soa_note'])}</p>")
    head = ["id", "title", "appl.", "justification — implementation", "mesuré / measured", "evidence"]
    out.append(_table(head, [
        (_e(c.id), _e(c.title), _e(t("yes") if c.applicable else t("no")),
         _e(c.justification) + "<br><i>" + _e(c.implementation) + "</i>",
         _badge(c.measured) if c.measured in (PASS, FAIL, NOT_RUN) else _e(c.measured or "—"),
         "<br>".join(f'<a href="{_e(f)}">{_e(f)}</a>' for f in c.evidence) or "—") for c in controls], "soa",
        raw=True))

    # files
    out.append(f"<h2>{_e(t('files'))}</h2>")
    out.append(_table(["file", ""], [(f, d) for f, d in ctx["file_list"]]))
    out.append(f"<pre>{_e(ctx['commands'])}</pre>")
    body = "\n".join(out)
    return (f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8"><title>{_e(t("title"))}</title>'
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")


def pdf(html_text: str, base_url: str) -> bytes:
    from weasyprint import HTML

    data: bytes = HTML(string=html_text, base_url=base_url).write_pdf()
    return data
