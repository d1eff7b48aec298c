"""`cardbound enrol` end to end: the real command, the sandboxed worker, pcscd and a virtual card.

Each failure mode gives a clear one-line message and its own exit code; nothing is half-done silently.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from card import transport
from card.personalise import CardState, personalisation_state, read_sealed_template
from card.piv import PivSession
from cardbound.errors import ExitCode

CARDBOUND = str(Path(sys.executable).with_name("cardbound"))
HOLDER = "a1" * 32  # 32 bytes, as the ban list needs


def cb(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CARDBOUND, "--home", str(home), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("station")
    assert cb(h, "keys", "init").returncode == 0
    assert cb(h, "keys", "issue-station", "desk-1").returncode == 0
    assert cb(h, "keys", "export-desk", "desk-1", str(h / "desk-keys")).returncode == 0  # the desk holds only this
    return h


def issue(home: Path, reader: str = "0") -> None:
    """Card issuance at the key officer: the CA signs the card's 9E certificate; a desk bundle cannot."""
    res = cb(home, "keys", "personalise-card", "--reader", reader)
    assert res.returncode == 0, res.stderr


def enrol_args(reader: str, *photos: Path, extra: tuple[str, ...] = ()) -> list[str]:
    args = ["enrol", "--reader", reader, "--holder-ref", HOLDER, "--category", "regular",
            "--valid-until", "2029-06-30", "--json", *extra]
    for p in photos:
        args += ["--photo", str(p)]
    return args


def test_enrol_success_then_already_enrolled(home: Path, virtual_card, faces_dir: Path) -> None:  # type: ignore[no-untyped-def]
    obama = faces_dir / "portraits/face_recognition/obama"
    blank = cb(home, *enrol_args("0", obama / "obama.jpg"))  # a desk cannot issue a card: no CA key
    assert blank.returncode == ExitCode.KEYS and "Traceback" not in blank.stderr
    refused = json.loads(blank.stdout.strip().splitlines()[-1])
    assert refused["failure"] == "KEYS" and "key officer" in refused["detail"] and refused["stage"] == "inspect"
    issue(home)
    res = cb(home, *enrol_args("0", obama / "obama.jpg", obama / "obama3.jpg"))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["result"] == "enrolled" and out["frames_used"] == 2 and out["container_bytes"] <= 2048

    again = cb(home, *enrol_args("0", obama / "obama.jpg"))
    assert again.returncode == ExitCode.CARD_ALREADY_ENROLLED
    assert "already" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.parametrize(
    ("photo", "reason"),
    [
        ("portraits/face_recognition/_multi_person/two_people.jpg", "MULTIPLE_FACES"),
        ("portraits/dlib/_unlabelled_multi_person/bald_guys.jpg", "MULTIPLE_FACES"),
    ],
)
def test_quality_refusals_leave_the_card_blank(home: Path, virtual_card, faces_dir: Path, photo: str,  # type: ignore[no-untyped-def]
                                                reason: str) -> None:
    issue(home)
    res = cb(home, *enrol_args("0", faces_dir / photo))
    assert res.returncode == ExitCode.QUALITY, res.stderr
    assert reason in res.stdout
    with transport.connect(virtual_card.reader_name, timeout=5) as conn:
        assert personalisation_state(PivSession(conn)) is CardState.PERSONALISED
        assert read_sealed_template(PivSession(conn)) is None  # nothing written


def test_no_face_bad_input_unknown_reader_bad_args(home: Path, virtual_card, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    grey = tmp_path / "grey.png"
    Image.new("RGB", (640, 480), (120, 120, 120)).save(grey)
    issue(home)
    res = cb(home, *enrol_args("0", grey))
    assert res.returncode == ExitCode.QUALITY and "NO_FACE" in res.stdout

    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0garbage")
    assert cb(home, *enrol_args("0", junk)).returncode == ExitCode.INPUT
    assert cb(home, *enrol_args("0", tmp_path / "missing.jpg")).returncode == ExitCode.INPUT

    res = cb(home, *enrol_args("7", grey))
    assert res.returncode == ExitCode.NO_READER and "reader not found" in res.stderr, res.stderr
    assert "no reader #7" in json.loads(res.stdout)["detail"]  # the technical detail, for scripts
    res = cb(home, *enrol_args("Nonexistent Reader", grey))
    assert res.returncode == ExitCode.NO_READER

    bad_date = cb(home, "enrol", "--photo", str(grey), "--holder-ref", HOLDER, "--category", "regular",
                  "--valid-until", "31/12/2030")
    assert bad_date.returncode == ExitCode.USAGE and "YYYY-MM-DD" in bad_date.stderr
    assert cb(tmp_path / "nokeys", *enrol_args("0", grey)).returncode == ExitCode.KEYS


def test_no_camera(home: Path, virtual_card) -> None:  # type: ignore[no-untyped-def]
    issue(home)
    res = cb(home, "enrol", "--reader", "0", "--camera", "42", "--holder-ref", HOLDER, "--category", "regular",
             "--valid-until", "2029-06-30")
    assert res.returncode == ExitCode.NO_CAMERA, res.stderr
    assert "Traceback" not in res.stderr


def test_no_card_in_reader(home: Path, pcscd, faces_dir: Path) -> None:  # type: ignore[no-untyped-def]
    photo = faces_dir / "portraits/face_recognition/obama/obama.jpg"
    res = cb(home, *enrol_args("0", photo, extra=("--card-timeout", "1")))
    assert res.returncode == ExitCode.NO_CARD, res.stderr


def test_delete_source(home: Path, virtual_card, faces_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The copy is the "photo that arrived as a file" at the desk; the test destroys it whatever happens.
    src = tmp_path / "arrived.jpg"
    shutil.copyfile(faces_dir / "portraits/face_recognition/rose_leslie/img1.jpg", src)
    issue(home)
    try:
        res = cb(home, *enrol_args("0", src, extra=("--delete-source",)))
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout.splitlines()[-1])["sources_destroyed"] == 1
        assert not src.exists()
        assert list(tmp_path.iterdir()) == []
    finally:
        src.unlink(missing_ok=True)


def test_card_removed_mid_write_leaves_card_unenrolled(home: Path, virtual_card_factory, faces_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from card.virtual.vpcd import Faults

    photo = faces_dir / "portraits/face_recognition/obama/obama.jpg"
    card = virtual_card_factory()
    issue(home)
    card.remove()
    # On a personalised card the enrolment's 11th APDU is the PUT DATA of the template (counted 2026-12-01):
    # the card is pulled exactly when the write arrives.
    card.insert(Faults(drop_after=10))
    res = cb(home, *enrol_args("0", photo))
    assert res.returncode in (ExitCode.CARD_REMOVED, ExitCode.CARD_ERROR), res.stderr
    assert "Traceback" not in res.stderr
    card.insert(Faults())
    with transport.connect(card.reader_name, timeout=5) as conn:
        assert read_sealed_template(PivSession(conn)) is None
