"""Every user-facing string of the desk exists in French, Dutch and English, with the same placeholders."""

from __future__ import annotations

import re
import string
from pathlib import Path

from biometric.quality import QualityReason
from enrol.desk import i18n
from enrol.desk.store import LANGS, Role
from enrol.flow import EnrolFailure

DESK = Path(i18n.__file__).parent


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_every_key_in_every_language_with_the_same_placeholders() -> None:
    for key, texts in i18n.T.items():
        assert set(texts) == set(LANGS), key
        assert all(texts[lang].strip() for lang in LANGS), key
        assert _fields(texts["fr"]) == _fields(texts["nl"]) == _fields(texts["en"]), key
    # French, Dutch and English really differ (not one language copied three times) for most strings
    differing = sum(len({texts[lang] for lang in LANGS}) == 3 for texts in i18n.T.values())
    assert differing > 0.8 * len(i18n.T)


def test_every_key_used_exists() -> None:
    used: set[str] = set()
    for path in [*DESK.glob("*.py"), *(DESK / "templates").glob("*.html")]:
        used |= set(re.findall(r"""\bt\(\s*['"]([a-z_A-Z]+)['"]\s*[,)]""", path.read_text()))
    # keys built at run time
    used |= {f"fail_{f.value}" for f in EnrolFailure}
    used |= {f"role_{r.value}" for r in Role}
    used |= {f"card_{s}" for s in ("absent", "blank", "ready", "enrolled", "unknown")}
    used |= {"bad_operator_id", "operator_exists", "last_admin", "unknown_operator", "credential_exists",
             "store_unreadable", "invalid_link"}  # StoreError codes
    missing = sorted(k for k in used if k not in i18n.T)
    assert missing == []
    assert len(used) > 50


def test_quality_hints_in_the_operators_language() -> None:
    for reason in QualityReason:
        texts = {lang: i18n.hint(reason.value, lang) for lang in LANGS}
        assert len(set(texts.values())) == 3, reason
    assert i18n.hint("SOMETHING_NEW", "nl") == i18n.T["hint_bad_image"]["nl"]


def test_login_page_in_the_chosen_language(desk) -> None:  # type: ignore[no-untyped-def]
    c = desk.client()
    assert "Aanmelden met uw beveiligingssleutel" in c.get("/login?lang=nl").get_data(as_text=True)
    assert "Connexion avec votre clé de sécurité" in c.get("/login?lang=fr").get_data(as_text=True)
    fr = desk.client().get("/login", headers={"Accept-Language": "fr-BE,fr;q=0.9"}).get_data(as_text=True)
    assert "Connexion avec votre clé de sécurité" in fr
