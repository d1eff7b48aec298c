"""Every genuine and impostor pair of the labelled portrait sets is classified correctly at DEFAULT_THRESHOLD.

Identities are the folders of portraits/face_recognition and portraits/dlib whose name does not start with `_`
(`_derived_duplicates` and `_multi_person` are not identities). Each image gives one probe template (as at the
gate) and one enrolment reference (as at the desk, jittered, from the first image of each identity); pairs are all
probe×probe combinations plus each reference against every other image.
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


@pytest.fixture(scope="module")
def templates(gate_engine: FaceEngine, portraits: Path) -> dict[str, list[tuple[str, Template]]]:
    out: dict[str, list[tuple[str, Template]]] = {}
    for ident, photos in _identities(portraits).items():
        for p in photos:
            with sensitive(load_path(p)) as frame, sensitive(gate_engine.analyse(frame, allow_largest=True)) as s:
                out.setdefault(ident, []).append((p.name, gate_engine.probe_template(s)))
    return out


@pytest.fixture(scope="module")
def references(gate_engine: FaceEngine, portraits: Path) -> dict[str, tuple[str, Template]]:
    out: dict[str, tuple[str, Template]] = {}
    for ident, photos in _identities(portraits).items():
        with sensitive(load_path(photos[0])) as frame, sensitive(gate_engine.analyse(frame, allow_largest=True)) as s:
            out[ident] = (photos[0].name, gate_engine.reference_template([s]))
    return out


def test_sets_are_what_we_expect(portraits: Path) -> None:
    ids = _identities(portraits)
    assert len(ids) >= 10 and sum(len(v) for v in ids.values()) >= 60
    assert all(k.split("/")[1][0] != "_" for k in ids)


def test_every_probe_pair_is_classified_correctly(templates: dict[str, list[tuple[str, Template]]]) -> None:
    flat = [(ident, name, t) for ident, items in templates.items() for name, t in items]
    errors = []
    n_gen = n_imp = 0
    for (ia, na, ta), (ib, nb, tb) in itertools.combinations(flat, 2):
        d = compare(ta, tb)
        same = ia == ib
        n_gen += same
        n_imp += not same
        if decide(d) != same:
            errors.append(f"{ia}/{na} vs {ib}/{nb}: {d:.3f} ({'genuine' if same else 'impostor'})")
    assert n_gen > 200 and n_imp > 2000
    assert errors == [], f"{len(errors)} errors at threshold {DEFAULT_THRESHOLD}"


def test_every_reference_is_classified_correctly(
    templates: dict[str, list[tuple[str, Template]]], references: dict[str, tuple[str, Template]]
) -> None:
    errors = []
    for ref_ident, (ref_name, ref) in references.items():
        for ident, items in templates.items():
            for name, probe in items:
                if ident == ref_ident and name == ref_name:
                    continue
                d = compare(ref, probe)
                if decide(d) != (ident == ref_ident):
                    errors.append(f"ref {ref_ident}/{ref_name} vs {ident}/{name}: {d:.3f}")
    assert errors == []


def test_derived_duplicates_match_their_original(gate_engine: FaceEngine, portraits: Path,
                                                 references: dict[str, tuple[str, Template]]) -> None:
    """Re-encoded and rescaled copies (240p … 1080p) of an Obama photo still verify against his reference."""
    ref = references["face_recognition/obama"][1]
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
