"""Keystore and PKI: permissions, CA/station/CRL life cycle, verifier rotation, management keys, gate, CLI."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from card import keystore as ks_module
from card import pki
from card.keystore import KeyStore, load_gate_trust
from cardbound.cli import main as cli_main
from cardbound.errors import ExitCode

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore.init(tmp_path / "keys", now=NOW)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_permissions(store: KeyStore) -> None:
    store.issue_station("desk1", now=NOW)
    assert _mode(store.path) == 0o700
    for sub in ("stations", "verifier"):
        assert _mode(store.path / sub) == 0o700
    secrets_ = [
        store.path / "ca.key",
        store.path / "management.secret",
        store.path / "stations" / "desk1.key",
    ]
    secrets_ += list((store.path / "verifier").rglob("*.key"))
    for path in secrets_:
        assert _mode(path) == 0o600, path
    assert not list(store.path.rglob("*.tmp"))


def test_init_twice_and_open_missing(store: KeyStore, tmp_path: Path) -> None:
    with pytest.raises(ks_module.KeystoreExistsError):
        KeyStore.init(store.path)
    with pytest.raises(ks_module.KeystoreMissingError):
        KeyStore.open(tmp_path / "nowhere")
    assert KeyStore.open(store.path).ca_certificate() == store.ca_certificate()


def test_ca_is_self_signed_p256_ca(store: KeyStore) -> None:
    ca = store.ca_certificate()
    ca.verify_directly_issued_by(ca)
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    crl = store.crl()
    pki.check_crl(crl, ca)
    assert pki.crl_number(crl) == 1 and len(list(crl)) == 0


def test_station_issue_and_check(store: KeyStore) -> None:
    cert = store.issue_station("desk1", now=NOW)
    cert.verify_directly_issued_by(store.ca_certificate())
    pki.check_station_certificate(cert, store.ca_certificate(), store.crl(), now=NOW)
    creds = store.station_credentials("desk1")
    assert creds.certificate == cert
    with pytest.raises(ks_module.StationExistsError):
        store.issue_station("desk1", now=NOW)
    with pytest.raises(ks_module.UnknownStationError):
        store.station_credentials("desk2")
    for bad in ("../escape", "", "a/b", ".hidden", "x" * 65):
        with pytest.raises(ks_module.KeystoreError):
            store.issue_station(bad, now=NOW)


def test_revoke_resigns_crl_with_next_number(store: KeyStore) -> None:
    first = store.issue_station("desk1", now=NOW)
    second = store.issue_station("desk2", now=NOW)
    crl = store.revoke_station("desk1", now=NOW)
    pki.check_crl(crl, store.ca_certificate())
    assert pki.crl_number(crl) == 2
    assert crl.get_revoked_certificate_by_serial_number(first.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(second.serial_number) is None
    assert not (store.path / "stations" / "desk1.key").exists()
    with pytest.raises(pki.CertificateRevokedError):
        pki.check_station_certificate(first, store.ca_certificate(), crl, now=NOW)
    with pytest.raises(ks_module.UnknownStationError):
        store.revoke_station("desk1", now=NOW)
    crl = store.revoke_station("desk2", now=NOW)
    assert pki.crl_number(crl) == 3 and len(list(crl)) == 2  # earlier entries kept
    refreshed = store.refresh_crl(now=NOW + timedelta(days=20))
    assert pki.crl_number(refreshed) == 4 and len(list(refreshed)) == 2
    # the name can be reused with a new key after revocation
    third = store.issue_station("desk1", now=NOW)
    assert third.serial_number != first.serial_number
    states = {(s.name, s.revoked) for s in store.stations()}
    assert states == {("desk1", True), ("desk1", False), ("desk2", True)}


def test_verifier_rotation(store: KeyStore) -> None:
    first = store.current_verifier_kid()
    assert first == pki.verifier_kid(store.verifier_public_key())
    second = store.rotate_verifier()
    assert store.current_verifier_kid() == second != first
    assert set(store.verifier_kids()) == {first, second}
    with pytest.raises(ks_module.KeystoreError, match="current"):
        store.retire_verifier(second)
    store.retire_verifier(first)
    assert store.verifier_kids() == [second]


def _hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    # RFC 5869 written out with hmac, independent of the implementation under test.
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def test_management_key_derivation(store: KeyStore, tmp_path: Path) -> None:
    guid_a, guid_b = uuid.uuid4().bytes, uuid.uuid4().bytes
    key_a = store.management_key_for(guid_a)
    assert len(key_a) == 16
    assert store.management_key_for(guid_a) == key_a
    assert store.management_key_for(guid_b) != key_a
    master = (store.path / "management.secret").read_bytes()
    assert key_a == _hkdf_sha256(master, b"cardbound/piv/9B/management-key/v1", b"AES-128 " + guid_a, 16)
    other = KeyStore.init(tmp_path / "other", now=NOW)
    assert other.management_key_for(guid_a) != key_a
    with pytest.raises(ValueError):
        store.management_key_for(b"short")


def test_card_auth_certificate(store: KeyStore) -> None:
    guid = uuid.uuid4().bytes
    card_key = ec.generate_private_key(ec.SECP256R1())
    cert = store.issue_card_auth_certificate(guid, card_key.public_key(), now=NOW)
    assert pki.check_card_auth_certificate(cert, store.ca_certificate(), store.crl(), now=NOW) == guid
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [uuid.UUID(bytes=guid).urn]
    # roles do not mix: a station certificate is not a card-auth certificate and vice versa
    station = store.issue_station("desk1", now=NOW)
    with pytest.raises(pki.WrongCertificateRoleError):
        pki.check_card_auth_certificate(station, store.ca_certificate(), store.crl(), now=NOW)
    with pytest.raises(pki.WrongCertificateRoleError):
        pki.check_station_certificate(cert, store.ca_certificate(), store.crl(), now=NOW)
    # a lost card is revoked by its GUID
    with pytest.raises(ks_module.KeystoreError, match="no card-auth certificate"):
        store.revoke_card(uuid.uuid4().bytes, now=NOW)
    crl = store.revoke_card(guid, now=NOW)
    with pytest.raises(pki.CertificateRevokedError):
        pki.check_card_auth_certificate(cert, store.ca_certificate(), crl, now=NOW)


def test_gate_bundle_holds_only_what_a_gate_needs(store: KeyStore, tmp_path: Path) -> None:
    store.issue_station("desk1", now=NOW)
    store.rotate_verifier()
    bundle = store.export_gate_trust(tmp_path / "gate")
    names = sorted(p.name for p in bundle.iterdir())
    kids = sorted(kid.hex() for kid in store.verifier_kids())
    assert names == sorted(["bundle.json", "ca.crt", "crl.pem"] + [f"verifier-{k}.key" for k in kids])
    assert _mode(bundle) == 0o700
    for key in bundle.glob("verifier-*.key"):
        assert _mode(key) == 0o600
    blob = b"".join(p.read_bytes() for p in bundle.iterdir())
    assert (store.path / "ca.key").read_bytes() not in blob
    assert (store.path / "stations" / "desk1.key").read_bytes() not in blob
    trust = load_gate_trust(bundle)
    assert trust.ca_certificate == store.ca_certificate()
    assert sorted(k.hex() for k in trust.verifier_keys) == kids
    # re-export after retiring drops the old key
    current = store.current_verifier_kid()
    store.retire_verifier(next(k for k in store.verifier_kids() if k != current))
    assert len(list(store.export_gate_trust(bundle).glob("verifier-*.key"))) == 1
    with pytest.raises(ks_module.KeystoreMissingError):
        load_gate_trust(tmp_path / "none")


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = ["--home", str(tmp_path / "home")]

    def run(*argv: str) -> int:
        return cli_main([*home, "keys", *argv])

    assert run("show") == ExitCode.KEYS
    assert "no keystore" in capsys.readouterr().err
    assert run("init") == ExitCode.OK
    assert run("init") == ExitCode.KEYS
    assert "already initialised" in capsys.readouterr().err
    assert run("issue-station", "desk1") == ExitCode.OK
    assert run("issue-station", "desk1") == ExitCode.KEYS
    assert run("revoke-station", "ghost") == ExitCode.KEYS
    assert "unknown station 'ghost'" in capsys.readouterr().err
    assert run("revoke-station", "desk1") == ExitCode.OK
    assert run("rotate-verifier") == ExitCode.OK
    assert run("retire-verifier", "zz") == ExitCode.USAGE
    assert run("revoke-card", uuid.uuid4().hex) == ExitCode.KEYS
    assert run("revoke-card", "not-hex") == ExitCode.USAGE
    assert run("export-gate", "gate-1", str(tmp_path / "gate")) == ExitCode.OK
    capsys.readouterr()
    assert run("show") == ExitCode.OK
    out = capsys.readouterr().out
    assert "REVOKED" in out and "(current)" in out and "CRL        number 2" in out
    keystore = tmp_path / "home" / "keys"
    assert (keystore / "management.secret").read_bytes().hex() not in out
    assert "PRIVATE KEY" not in out
    assert os.path.isfile(tmp_path / "gate" / "ca.crt")


def test_cli_corrupt_keystore_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    assert cli_main(["--home", str(home), "keys", "init"]) == ExitCode.OK
    (home / "keys" / "ca.crt").write_text("not a certificate")
    capsys.readouterr()
    assert cli_main(["--home", str(home), "keys", "show"]) == ExitCode.KEYS
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unreadable certificate" in err and "Traceback" not in err
    (home / "keys" / "management.secret").unlink()
    assert cli_main(["--home", str(home), "keys", "issue-station", "../x"]) == ExitCode.KEYS
    assert "invalid station name" in capsys.readouterr().err
