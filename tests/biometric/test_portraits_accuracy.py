"""Every genuine and impostor pair of the labelled portrait sets is classified correctly at DEFAULT_THRESHOLD.

Identities are the folders of portraits/face_recognition and portraits/dlib whose name does not start with `_`
(`_derived_duplicates` and `_multi_person` are not identities). The pairs are those the system actually makes:
every image once as the enrolment sample (reference template, jittered, as at the desk) against every other image
as the live probe (probe template, as at the gate) — 70 × 69 ordered pairs.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from biometric import (
    DEFAULT_THRESHOLD,
    FaceEngine,
    QualityFailure,
    QualityReason,
    Template,
    compare,
    decide,
    load_path,
    sensitive,
)

SETS = ("face_recognition", "dlib")


def _identities(portraits: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for s in SETS:
        for d in sorted((portraits / s).iterdir()):
            if d.is_dir() and not d.name.startswith("_"):
                out[f"{s}/{d.name}"] = sorted(p for p in d.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    return out


Item = tuple[str, str, Template, Template]  # identity, file name, reference, probe


@pytest.fixture(scope="module")
def items(gate_engine: FaceEngine, portraits: Path) -> list[Item]:
    out: list[Item] = []
    for ident, photos in _identities(portraits).items():
        for p in photos:
            with sensitive(load_path(p)) as frame, sensitive(gate_engine.analyse(frame, allow_several=True)) as s:
                out.append((ident, p.name, gate_engine.reference_template([s]), gate_engine.probe_template(s)))
    return out


def test_sets_are_what_we_expect(portraits: Path) -> None:
    ids = _identities(portraits)
    assert len(ids) >= 10 and sum(len(v) for v in ids.values()) >= 60
    assert all(k.split("/")[1][0] != "_" for k in ids)


def test_every_enrolment_probe_pair_is_classified_correctly(items: list[Item]) -> None:
    errors = []
    n_gen = n_imp = 0
    for (ia, na, ref, _), (ib, nb, _, probe) in itertools.permutations(items, 2):
        d = compare(ref, probe)
        same = ia == ib
        n_gen += same
        n_imp += not same
        if decide(d) != same:
            errors.append(f"ref {ia}/{na} vs probe {ib}/{nb}: {d:.4f} ({'genuine' if same else 'impostor'})")
    assert n_gen > 400 and n_imp > 4000
    assert errors == [], f"{len(errors)} errors at threshold {DEFAULT_THRESHOLD}"


@pytest.fixture(scope="module")
def references(items: list[Item]) -> dict[str, Template]:
    return {ident: ref for ident, _, ref, _ in reversed(items)}  # the first image of each identity


def test_derived_duplicates_match_their_original(gate_engine: FaceEngine, portraits: Path,
                                                 references: dict[str, Template]) -> None:
    """Re-encoded and rescaled copies (240p … 1080p) of an Obama photo still verify against his reference."""
    ref = references["face_recognition/obama"]
    folder = portraits / "face_recognition" / "_derived_duplicates" / "obama"
    checked = 0
    for p in sorted(folder.glob("obama-*p.jpg")):
        with sensitive(load_path(p)) as frame:
            try:
                sample = gate_engine.analyse(frame)
            except QualityFailure as exc:  # 240p: the face is below the gate's minimum size, and says so
                assert exc.reasons == (QualityReason.FACE_TOO_SMALL,), p.name
                continue
        with sensitive(sample), sensitive(gate_engine.probe_template(sample)) as probe:
            assert decide(compare(ref, probe)), p.name
            checked += 1
    assert checked >= 3
