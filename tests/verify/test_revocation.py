"""Revoked-card list: lost or withdrawn cards by GUID."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from verify.revocation import RevocationList, RevocationListError, format_revocation_list


def test_membership(tmp_path: Path) -> None:
    lost, withdrawn, fine = secrets.token_bytes(16), secrets.token_bytes(16), secrets.token_bytes(16)
    p = tmp_path / "revoked.txt"
    p.write_text("# revoked cards\n" + format_revocation_list([lost]) + f"{withdrawn.hex().upper()}  # withdrawn\n")
    rl = RevocationList.load(p)
    assert len(rl) == 2
    assert rl.is_revoked(lost) and rl.is_revoked(bytearray(withdrawn))
    assert not rl.is_revoked(fine)
    assert lost in rl and fine not in rl and "x" not in rl


def test_wrong_length_guid_is_treated_as_revoked() -> None:
    rl = RevocationList.parse(format_revocation_list([]))
    assert rl.is_revoked(b"\x01" * 15) and rl.is_revoked(b"")


@pytest.mark.parametrize(
    "text,words",
    [
        ("", "empty"),
        ("cardbound-revoked 3 issued=2026-12-01T06:00:00Z\n", "header"),
        ("cardbound-revoked 2\n", "must carry issued"),
        ("cardbound-revoked 2 issued=2026-12-01 06:00\n", "header"),
        ("cardbound-revoked 2 issued=2026-13-01T06:00:00Z\n", "not a valid date"),
        ("cardbound-revoked 1 issued=2026-12-01T06:00:00Z\n", "carries no issue time"),
        ("cardbound-revoked 1\n0123\n", "line 2"),
        ("cardbound-revoked 1\n" + "g" * 32 + "\n", "line 2"),
        ("cardbound-revoked 1\n\n" + "ab" * 17 + "\n", "line 3"),
    ],
)
def test_malformed_file_is_a_clear_error(tmp_path: Path, text: str, words: str) -> None:
    p = tmp_path / "revoked.txt"
    p.write_text(text)
    with pytest.raises(RevocationListError) as err:
        RevocationList.load(p)
    assert str(p) in str(err.value) and words in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RevocationListError, match="cannot read"):
        RevocationList.load(tmp_path / "nope.txt")


def test_the_spellings_keys_revoke_card_accepts_are_accepted_here() -> None:
    guid = secrets.token_bytes(16)
    h = guid.hex()
    dashed = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}".upper()
    rl = RevocationList.parse(f"cardbound-revoked 1\n{dashed}\n{{{h}}}\n")
    assert rl.is_revoked(guid) and len(rl) == 2
    with pytest.raises(RevocationListError, match="line 2"):
        RevocationList.parse(f"cardbound-revoked 1\n{h[:-2]}\n")


def test_issue_time_is_written_and_read_back_and_version_1_is_undated() -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 12, 1, 6, 30, 15, tzinfo=UTC)
    text = format_revocation_list([secrets.token_bytes(16)], issued_at=when)
    assert text.splitlines()[0] == "cardbound-revoked 2 issued=2026-12-01T06:30:15Z"
    rl = RevocationList.parse(text, source="r.txt")
    assert rl.issued_at == when and rl.stamp.issued == when and rl.stamp.name == "revoked list"
    old = RevocationList.parse("cardbound-revoked 1\n" + "ab" * 16 + "\n")  # still read, as undated
    assert len(old) == 1 and old.issued_at is None and old.stamp.issued is None
    stamped_now = RevocationList.parse(format_revocation_list([])).issued_at
    assert stamped_now is not None and abs((datetime.now(UTC) - stamped_now).total_seconds()) < 5
