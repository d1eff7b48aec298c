"""The PKI checks a real verifier makes: CA profile and validity, CRL thisUpdate/nextUpdate/number, keyUsage per
certificate profile; `pki.check_trust` is what the gate's start and self-check call."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from card import pki
from card.bundles import load_gate_bundle
from card.keystore import KeyStore, KeystoreCorruptError

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    ks = KeyStore.init(tmp_path_factory.mktemp("officer") / "keys", now=NOW - timedelta(days=1))
    ks.issue_station("desk1", now=NOW - timedelta(days=1))
    return ks


def test_fresh_trust_is_healthy_and_a_crl_near_its_next_update_warns(store: KeyStore) -> None:
    health = pki.check_trust(store.ca_certificate(), store.crl(), now=NOW)
    assert health.ok and health.warnings == () and health.crl_number == pki.crl_number(store.crl())
    near = store.crl().next_update_utc - timedelta(days=2)
    health = pki.check_trust(store.ca_certificate(), store.crl(), now=near)
    assert health.ok and [w.split(":")[0] for w in health.warnings] == ["crl_expires_soon"]
    late = pki.check_trust(store.ca_certificate(), store.crl(), now=store.crl().next_update_utc + timedelta(seconds=1))
    assert [p.split(":")[0] for p in late.problems] == ["crl_stale"]


def test_future_crl_rolled_back_crl_and_expired_ca_are_problems(store: KeyStore) -> None:
    ca, ca_key = store.ca_certificate(), store._ca_key()  # noqa: SLF001 - the test plays the CA
    future = pki.build_crl(ca_key, ca, {}, number=99, now=NOW + timedelta(hours=2))
    assert [p.split(":")[0] for p in pki.check_trust(ca, future, now=NOW).problems] == ["crl_from_the_future"]
    number = pki.crl_number(store.crl())
    back = pki.check_trust(ca, store.crl(), now=NOW, previous_crl_number=number + 1)
    assert [p.split(":")[0] for p in back.problems] == ["crl_rolled_back"]
    assert pki.check_trust(ca, store.crl(), now=NOW, previous_crl_number=number).ok
    after_ca = ca.not_valid_after_utc + timedelta(days=1)
    assert "ca_expired" in {p.split(":")[0] for p in pki.check_trust(ca, store.crl(), now=after_ca).problems}


def test_a_gate_refuses_to_start_on_a_future_dated_or_rolled_back_crl(store: KeyStore, tmp_path: Path) -> None:
    gate = store.export_gate("gate-1", tmp_path / "gate")
    trust = load_gate_bundle(gate)
    number = pki.crl_number(trust.crl)
    with pytest.raises(KeystoreCorruptError, match="crl_rolled_back"):
        load_gate_bundle(gate, previous_crl_number=number + 1)
    future = pki.build_crl(store._ca_key(), store.ca_certificate(), {}, number=number + 1,  # noqa: SLF001
                           now=NOW + timedelta(days=1))
    fd = os.open(gate / "crl.pem", os.O_WRONLY | os.O_TRUNC)
    os.write(fd, future.public_bytes(serialization.Encoding.PEM))
    os.close(fd)
    with pytest.raises(KeystoreCorruptError, match="crl_from_the_future"):
        load_gate_bundle(gate)


def test_key_usage_is_checked_per_profile(store: KeyStore) -> None:
    """A certificate with the station EKU but CA key usages is not a station certificate."""
    ca, ca_key = store.ca_certificate(), store._ca_key()  # noqa: SLF001
    leaf_key = pki.new_ec_key()
    bad = (
        x509.CertificateBuilder().subject_name(pki._name("station:odd")).issuer_name(ca.subject)  # noqa: SLF001
        .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(pki._key_usage(sign=True, ca=True), critical=True)  # noqa: SLF001
        .add_extension(x509.ExtendedKeyUsage([pki.OID_EKU_TEMPLATE_SIGNING]), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    with pytest.raises(pki.WrongCertificateRoleError, match="keyUsage"):
        pki.check_station_certificate(bad, ca, store.crl(), now=NOW)
    good = store.station_credentials("desk1").certificate
    pki.check_station_certificate(good, ca, store.crl(), now=NOW)
