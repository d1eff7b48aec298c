"""Enrolment you can trust (issue 9): one person per card, nothing written that a gate would refuse, revocation by
what the desk printed, one JSON object per outcome. The real command, the sandboxed worker, pcscd, virtual cards.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from biometric.capture import SAMPLE_AGREEMENT_THRESHOLD, SampleSource
from biometric.isolation import FaceWorker
from cardbound.errors import ExitCode

CARDBOUND = str(Path(sys.executable).with_name("cardbound"))
HOLDER = "b2" * 32
PORTRAITS = "portraits/face_recognition"


def cb(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CARDBOUND, "--home", str(home), *args], capture_output=True, text=True, timeout=180,
                          input=stdin)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("desk")
    assert cb(h, "keys", "init").returncode == 0
    assert cb(h, "keys", "issue-station", "desk-1").returncode == 0
    assert cb(h, "keys", "export-desk", "desk-1", str(h / "desk-keys")).returncode == 0  # the desk holds only this
    return h


def issue(home: Path) -> None:
    """Card issuance at the key officer (the CA signs the 9E certificate; a desk bundle holds no CA key)."""
    res = cb(home, "keys", "personalise-card", "--reader", "0")
    assert res.returncode == 0, res.stderr


def enrol_args(*photos: Path, holder: str = HOLDER, category: str = "regular", until: str = "2028-06-30",
               extra: tuple[str, ...] = ()) -> list[str]:
    args = ["enrol", "--reader", "0", "--holder-ref", holder, "--category", category, "--valid-until", until,
            "--json", "--card-timeout", "3", *extra]
    for p in photos:
        args += ["--photo", str(p)]
    return args


def one_object(res: subprocess.CompletedProcess[str]) -> dict[str, object]:
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stdout + res.stderr
    obj = json.loads(lines[0])
    assert isinstance(obj, dict) and "Traceback" not in res.stderr
    return obj


def test_every_cross_person_portrait_pair_disagrees_and_genuine_sets_agree(faces_dir: Path) -> None:
    """In the sandboxed worker (no descriptor leaves it): every pair of photos of two different people that each
    pass the desk quality gate alone is refused; every person's photos together are accepted."""
    root = faces_dir / PORTRAITS
    photos = sorted(p for d in root.iterdir() if d.is_dir() and not d.name.startswith("_") for p in d.iterdir())
    with FaceWorker() as worker:
        usable = [p for p in photos if worker.enrol_template(SampleSource.photos(str(p)), max_samples=1).template]
        assert len(usable) >= 8 and len({p.parent for p in usable}) >= 5
        cross = [(a, b) for a, b in itertools.combinations(usable, 2) if a.parent != b.parent]
        for a, b in cross:
            got = worker.enrol_template(SampleSource.photos(str(a), str(b)), max_samples=2)
            assert got.template is None and got.disagreeing == [(1, 2)], (a.name, b.name, got.spread)
            assert got.spread > SAMPLE_AGREEMENT_THRESHOLD
        for person in {p.parent for p in usable}:
            mine = [str(p) for p in usable if p.parent == person]
            if len(mine) < 2:
                continue
            got = worker.enrol_template(SampleSource.photos(*mine), max_samples=len(mine))
            assert got.template is not None and not got.disagreeing, person.name
            assert got.frames_used == len(mine) and 0 < got.spread <= SAMPLE_AGREEMENT_THRESHOLD
            got.wipe()
    assert len(cross) >= 30


def test_two_people_on_one_card_refused_end_to_end(home: Path, virtual_card, faces_dir: Path) -> None:  # type: ignore[no-untyped-def]
    kit = faces_dir / PORTRAITS / "kit_harington/johnsnow_test1.jpg"
    rose = faces_dir / PORTRAITS / "rose_leslie/img1.jpg"
    issue(home)
    before = virtual_card.image.read_bytes()
    res = cb(home, *enrol_args(kit, rose))
    assert res.returncode == ExitCode.SAMPLES_DISAGREE, res.stderr
    out = one_object(res)
    assert out["failure"] == "SAMPLES_DISAGREE" and out["stage"] == "capture" and "1/2" in str(out["message"])
    assert out["card_state"] == "unchanged"
    assert virtual_card.image.read_bytes() == before
    fr = cb(home, *enrol_args(kit, rose, extra=("--lang", "fr")))
    assert "ne sont pas de la même personne" in one_object(fr)["message"]  # type: ignore[operator]


def test_refusals_of_point_2_happen_before_the_card_is_touched_and_revocation_by_card_id(  # type: ignore[no-untyped-def]
    home: Path, virtual_card, faces_dir: Path
) -> None:
    obama = faces_dir / PORTRAITS / "obama"
    issue(home)
    ok = cb(home, *enrol_args(obama / "obama.jpg", obama / "obama3.jpg"))
    assert ok.returncode == 0, ok.stderr
    enrolled = one_object(ok)
    card_id = str(enrolled["card_id"])
    assert enrolled["frames_used"] == 2 and float(enrolled["sample_spread"]) > 0  # type: ignore[arg-type]
    image = virtual_card.image
    before = image.read_bytes()

    cases = {
        "CATEGORY_UNKNOWN": enrol_args(obama / "obama.jpg", category="Seafarers", extra=("--replace",)),
        "VALIDITY": enrol_args(obama / "obama.jpg", until="2039-01-01", extra=("--replace",)),
        "BAD_HOLDER_REF": enrol_args(obama / "obama.jpg", holder="a1" * 16, extra=("--replace",)),
    }
    for failure, args in cases.items():
        res = cb(home, *args)
        out = one_object(res)
        assert out["failure"] == failure and res.returncode == out["exit_code"] != 0, res.stderr
        assert image.read_bytes() == before, failure
    seafarers = one_object(cb(home, *cases["CATEGORY_UNKNOWN"]))
    assert "'seafarer'" in str(seafarers["message"])  # did you mean

    # the card id the desk printed revokes the card; the desk then refuses it, before writing anything
    look = cb(home, "card", "lookup", card_id, "--json")
    assert look.returncode == 0, look.stderr
    found = json.loads(look.stdout)
    guid = str(found["guid"])
    assert found["holder_ref"] == HOLDER and found["card_id"] == card_id
    dashed = f"{guid[:8]}-{guid[8:12]}-{guid[12:16]}-{guid[16:20]}-{guid[20:]}".upper()
    assert json.loads(cb(home, "card", "lookup", dashed, "--json").stdout)["card_id"] == card_id
    serial = found["certificate_serials"][0]  # type: ignore[index]
    assert json.loads(cb(home, "card", "lookup", serial, "--json").stdout)["card_id"] == card_id
    revoked = cb(home, "keys", "revoke-card", card_id)
    assert revoked.returncode == 0 and card_id in revoked.stdout, revoked.stderr
    # the new CRL reaches the desk in a re-exported bundle, as it reaches the gates
    assert cb(home, "keys", "export-desk", "desk-1", str(home / "desk-keys")).returncode == 0
    res = cb(home, *enrol_args(obama / "obama.jpg", extra=("--replace",)))
    out = one_object(res)
    assert res.returncode == ExitCode.CARD_REVOKED and out["failure"] == "CARD_REVOKED", res.stderr
    assert image.read_bytes() == before


def test_json_is_one_object_for_every_failure_class(home: Path, pcscd, faces_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    photo = faces_dir / PORTRAITS / "obama/obama.jpg"
    cases: dict[str, list[str]] = {
        "NO_READER": enrol_args(photo)[:2] + ["7"] + enrol_args(photo)[3:],
        "NO_CARD": enrol_args(photo),
        "BAD_INPUT": enrol_args(tmp_path / "missing.jpg"),
        "VALIDITY": enrol_args(photo, until="2020-01-01"),
        "BAD_DATE": enrol_args(photo, until="31/12/2030"),
    }
    for failure, args in cases.items():
        res = cb(home, *args)
        out = one_object(res)
        assert out["failure"] == failure and out["result"] == "refused", (failure, out)
        assert res.returncode == out["exit_code"] != 0
        assert out["message"] and "Traceback" not in res.stderr
    # the NRN is pseudonymised in the same step and appears nowhere
    assert cb(home, "gate", "pseudonymise", "--new-key", stdin="85.07.30-033.28\n").returncode == 0
    res = cb(home, *[a for a in enrol_args(photo) if a not in ("--holder-ref", HOLDER)], "--nrn-stdin",
             stdin="85.07.30-033.28\n")
    out = one_object(res)
    assert out["failure"] == "NO_CARD"  # got past the holder reference: the number was accepted
    assert "85073003328" not in res.stdout + res.stderr and "033.28" not in res.stdout + res.stderr
    bad = cb(home, *[a for a in enrol_args(photo) if a not in ("--holder-ref", HOLDER)], "--nrn-stdin",
             stdin="12345\n")
    assert one_object(bad)["failure"] == "BAD_NRN"
    assert "Present the card" in res.stderr  # the prompt while the desk waits for a card


def test_delete_source_on_a_symbolic_link(home: Path, virtual_card, faces_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    # The copy is "the photo that arrived as a file"; the test destroys it whatever happens.
    target = tmp_path / "arrived.jpg"
    shutil.copyfile(faces_dir / PORTRAITS / "rose_leslie/img1.jpg", target)
    link = tmp_path / "link.jpg"
    link.symlink_to(target)
    issue(home)  # card issuance at the key officer
    try:
        before = virtual_card.image.read_bytes()
        res = cb(home, *enrol_args(link, extra=("--delete-source",)))
        out = one_object(res)
        assert out["failure"] == "SOURCE_UNSAFE" and res.returncode == ExitCode.USAGE, res.stderr
        assert "--delete-link-target" in str(out["message"])
        assert target.is_file() and link.is_symlink() and virtual_card.image.read_bytes() == before
        res = cb(home, *enrol_args(link, extra=("--delete-source", "--delete-link-target")))
        assert res.returncode == 0, res.stderr
        assert one_object(res)["sources"] == [{"outcome": "destroyed"}]
        assert not target.exists() and not link.is_symlink()
    finally:
        target.unlink(missing_ok=True)
        link.unlink(missing_ok=True)
