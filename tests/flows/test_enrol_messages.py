"""Every outcome of `cardbound enrol` has its whole message in French, Dutch and English (issue 9, point 5)."""

from __future__ import annotations

import string

from cardbound import exits
from enrol import messages
from enrol.errors import EnrolCommandFailure
from enrol.flow import EnrolFailure


def test_every_outcome_is_in_the_catalogue() -> None:
    codes = {f.name for f in EnrolFailure} | {f.name for f in EnrolCommandFailure}
    codes |= {"ENROLLED", "PRESENT_CARD", "NRN_PROMPT", "CATEGORY_HINT"}
    codes |= {f"CARD_STATE_{s}" for s in ("unchanged", "not_enrolled", "unverified", "enrolled")}
    assert codes <= set(messages.CATALOGUE), sorted(codes - set(messages.CATALOGUE))
    for outcome in [*EnrolFailure, *EnrolCommandFailure]:  # and each has an exit code that is not success
        assert exits.exit_code(outcome) != 0, outcome


def test_catalogue_walk_three_languages_same_fields() -> None:
    for code, entry in messages.CATALOGUE.items():
        assert set(entry) == set(messages.LANGS), code
        names = [{n for _, n, _, _ in string.Formatter().parse(entry[lang]) if n} for lang in messages.LANGS]
        assert names[0] == names[1] == names[2], code
        texts = [entry[lang] for lang in messages.LANGS]
        assert len(set(texts)) == 3, f"{code}: a language is a copy of another"
        for lang in messages.LANGS:
            rendered = messages.render(code, lang, **{n: "X" for n in names[0]})
            assert rendered.strip() and "{" not in rendered, (code, lang)


def test_render_fills_fields_and_never_fails_on_a_missing_one() -> None:
    assert "kaart 0123456789abcdef".lower() in messages.render("CARD_REVOKED", "nl", card_id="0123456789abcdef").lower()
    assert messages.render("SAMPLES_DISAGREE", "fr", pairs="1/2").startswith("Les échantillons 1/2")
    assert messages.render("CARD_REVOKED", "en")  # missing field: empty, not a KeyError
