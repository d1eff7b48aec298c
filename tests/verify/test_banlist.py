"""Port-ban list (art. 2.5.2.81): NRN pseudonymisation, file format, expiry, wrong key, malformed files."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from verify.banlist import (
    BanEntry,
    BanList,
    BanListError,
    InvalidNationalNumber,
    format_banlist,
    key_id,
    load_key,
    normalise_nrn,
    pseudonymise,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
# Made-up numbers (check digits worked out by hand: 97 - (base mod 97), base prefixed with 2 from 2000 on)
BORN_1985 = "85.07.30-033.28"  # 850730033 mod 97 = 69 -> 28
BORN_2000 = "00.01.01-001.05"  # 2000101001 mod 97 = 92 -> 05
BORN_2012 = "120229 123 78"  # 2120229123 mod 97 = 19 -> 78
BIS_1975 = "75210100142"  # BIS number (month + 20), same rule: 752101001 mod 97 = 55 -> 42
TODAY = date(2026, 11, 24)


@pytest.mark.parametrize("nrn", [BORN_1985, BORN_2000, BORN_2012, BIS_1975, "85073003328"])
def test_valid_numbers_normalise_to_11_digits(nrn: str) -> None:
    digits = normalise_nrn(nrn)
    assert len(digits) == 11 and digits.isdigit()


@pytest.mark.parametrize(
    "nrn",
    [
        "85073003329",  # check digits off by one
        "00010100106",
        "8507300332",  # 10 digits
        "850730033280",  # 12 digits
        "8507300332a",
        "",
        "٨٥٠٧٣٠٠٣٣٢٨",  # Arabic-Indic digits are digits to str.isdigit, not to us
    ],
)
def test_invalid_numbers_are_refused(nrn: str) -> None:
    with pytest.raises(InvalidNationalNumber):
        normalise_nrn(nrn)


def test_post_2000_rule_applies_to_any_base() -> None:
    # 97 - (2850730033 mod 97) = 57: the number of someone born 30 July 2085 — the checksum cannot tell centuries
    assert normalise_nrn("85073003357") == "85073003357"


def test_pseudonymise_is_hmac_sha256_of_the_digits() -> None:
    ref = pseudonymise(BORN_1985, KEY)
    assert ref == hmac.new(KEY, b"85073003328", hashlib.sha256).digest()
    assert pseudonymise("85073003328", KEY) == ref  # separators do not matter
    assert pseudonymise(BORN_1985, OTHER_KEY) != ref
    assert len(ref) == 32


def test_pseudonymise_refuses_short_key_and_bad_number() -> None:
    with pytest.raises(BanListError):
        pseudonymise(BORN_1985, b"short")
    with pytest.raises(InvalidNationalNumber):
        pseudonymise("85073003329", KEY)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "banlist.txt"
    p.write_text(text)
    return p


def test_banned_until_end_date_inclusive(tmp_path: Path) -> None:
    banned, other = pseudonymise(BORN_1985, KEY), pseudonymise(BORN_2000, KEY)
    text = "# exported 2026-11-24\n" + format_banlist([BanEntry(banned, date(2026, 12, 31))], KEY)
    bl = BanList.load(_write(tmp_path, text), KEY)
    assert len(bl) == 1
    hit = bl.is_banned(banned, TODAY)
    assert hit is not None and hit.until == date(2026, 12, 31)
    assert bl.is_banned(banned.hex(), date(2026, 12, 31)) == hit
    assert bl.is_banned(banned, date(2027, 1, 1)) is None  # expired: no longer applies
    assert bl.is_banned(other, TODAY) is None
    assert "redacted" in repr(hit) and banned.hex() not in repr(hit)


def test_listed_twice_gives_the_longest_ban() -> None:
    ref = pseudonymise(BORN_2012, KEY)
    bl = BanList.parse(format_banlist([BanEntry(ref, date(2026, 1, 1)), BanEntry(ref, date(2030, 1, 1)),
                                       BanEntry(ref, date(2027, 1, 1))], KEY), KEY)
    hit = bl.is_banned(ref, TODAY)
    assert hit is not None and hit.until == date(2030, 1, 1)


def test_wrong_key_is_refused_at_load(tmp_path: Path) -> None:
    p = _write(tmp_path, format_banlist([BanEntry(pseudonymise(BORN_1985, KEY), date(2030, 1, 1))], KEY))
    with pytest.raises(BanListError, match="another key"):
        BanList.load(p, OTHER_KEY)


@pytest.mark.parametrize(
    "body,words",
    [
        ("", "empty"),
        ("# only a comment\n", "empty"),
        ("cardbound-banlist 2 key-id={kid}\n", "must carry issued"),
        ("cardbound-banlist 3 key-id={kid} issued=2026-12-01T06:00:00Z\n", "version"),
        ("cardbound-banlist 2 key-id={kid} issued=2026-12-01\n", "not a UTC time"),
        ("cardbound-banlist 2 key-id={kid} issued=2026-02-30T06:00:00Z\n", "not a valid date"),
        ("cardbound-banlist 1 key-id={kid} issued=2026-12-01T06:00:00Z\n", "carries no issue time"),
        ("banlist key-id={kid}\n", "header"),
        ("cardbound-banlist 1 key-id={kid}\nzz{ref62} 2030-01-01\n", "line 2"),
        ("cardbound-banlist 1 key-id={kid}\n{ref} 2030-13-01\n", "not a date"),
        ("cardbound-banlist 1 key-id={kid}\n{ref}\n", "line 2"),
        ("cardbound-banlist 1 key-id={kid}\n{ref}00 2030-01-01\n", "line 2"),
        ("cardbound-banlist 1 key-id={kid}\n\n{ref} 2030-01-01 extra\n", "line 3"),
    ],
)
def test_malformed_file_is_a_clear_error(tmp_path: Path, body: str, words: str) -> None:
    ref = pseudonymise(BORN_1985, KEY).hex()
    p = _write(tmp_path, body.format(kid=key_id(KEY), ref=ref, ref62=ref[:62]))
    with pytest.raises(BanListError) as err:
        BanList.load(p, KEY)
    assert str(p) in str(err.value) and words in str(err.value)


def test_missing_or_binary_file(tmp_path: Path) -> None:
    with pytest.raises(BanListError, match="cannot read"):
        BanList.load(tmp_path / "nope.txt", KEY)
    p = tmp_path / "bin.txt"
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(BanListError, match="cannot read"):
        BanList.load(p, KEY)


def test_bad_holder_ref_argument() -> None:
    bl = BanList.parse(format_banlist([], KEY), KEY)
    with pytest.raises(ValueError):
        bl.is_banned(b"\x00" * 31, TODAY)
    with pytest.raises(ValueError):
        bl.is_banned("not hex", TODAY)


def test_load_key(tmp_path: Path) -> None:
    p = tmp_path / "holder-ref.key"
    p.write_text(KEY.hex() + "\n")
    p.chmod(0o600)
    loaded = load_key(p)  # a key object (card.holderref): the same MAC and key id as the raw bytes
    assert loaded.backend == "file" and loaded.key_id == key_id(KEY) and KEY.hex() not in repr(loaded)
    assert pseudonymise("85.07.30-033.28", loaded) == pseudonymise("85.07.30-033.28", KEY)
    p.chmod(0o644)
    with pytest.raises(BanListError, match="chmod 600"):
        load_key(p)
    p.chmod(0o600)
    p.write_text("abcd")
    with pytest.raises(BanListError, match="64 hex"):
        load_key(p)


def test_issue_time_is_written_and_read_back_and_version_1_is_undated() -> None:
    when = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    ref = pseudonymise(BORN_1985, KEY)
    text = format_banlist([BanEntry(ref, date(2030, 1, 1))], KEY, issued_at=when)
    assert text.splitlines()[0] == f"cardbound-banlist 2 key-id={key_id(KEY)} issued=2026-12-01T06:00:00Z"
    bl = BanList.parse(text, KEY, source="bans.txt")
    assert bl.issued_at == when and bl.stamp.issued == when and bl.stamp.name == "ban list"
    assert bl.is_banned(ref, TODAY) is not None
    old = BanList.parse(f"cardbound-banlist 1 key-id={key_id(KEY)}\n{ref.hex()} 2030-01-01\n", KEY)
    assert old.is_banned(ref, TODAY) is not None and old.issued_at is None  # still read, as undated
    stamped_now = BanList.parse(format_banlist([], KEY), KEY).issued_at
    assert stamped_now is not None and abs((datetime.now(UTC) - stamped_now).total_seconds()) < 5
