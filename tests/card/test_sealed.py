"""The sealed template container: round trip, every bit flip rejected, binding, expiry, PKI failures."""

from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from card import cose, sealed
from card.keystore import KeyStore
from card.sealed import (
    CardBinding,
    GateTrust,
    SealedTemplateError,
    StationCredentials,
    TemplateHeader,
    seal,
    unseal,
)

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def _header(created: datetime = NOW, days: int = 365) -> TemplateHeader:
    return TemplateHeader(
        format_owner=0x0101,
        format_type=0x0001,
        extractor="dlib-resnet",
        model_version="dlib_face_recognition_resnet_model_v1",
        created=created,
        expires=created + timedelta(days=days),
        quality=87,
        visitor_category="worker",
        holder_ref=os.urandom(16),
    )


@dataclass
class Env:
    store: KeyStore
    station: StationCredentials
    trust: GateTrust
    binding: CardBinding
    card_key: ec.EllipticCurvePrivateKey
    template: bytes
    header: TemplateHeader
    sealed: bytes


def _make_env(root: Path) -> Env:
    store = KeyStore.init(root / "keys", now=NOW - timedelta(days=1))
    store.issue_station("desk1", now=NOW - timedelta(days=1))
    card_key = ec.generate_private_key(ec.SECP256R1())
    binding = CardBinding.for_card(os.urandom(16), card_key.public_key())
    template = os.urandom(512)  # random bytes stand in for a template: no biometric data in tests
    header = _header()
    station = store.station_credentials("desk1")
    data = seal(template, header, binding, station, store.verifier_public_key())
    return Env(store, station, store.gate_trust(), binding, card_key, template, header, data)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    return _make_env(tmp_path_factory.mktemp("sealed"))


@pytest.fixture
def fresh(tmp_path: Path) -> Env:
    """A keystore of its own, for tests that revoke, rotate or retire."""
    return _make_env(tmp_path)


def test_round_trip(env: Env) -> None:
    result = unseal(env.sealed, trust=env.trust, expected=env.binding, now=NOW)
    assert isinstance(result.template, bytearray)
    assert bytes(result.template) == env.template
    assert result.header == env.header
    assert result.binding == env.binding
    assert result.station_certificate == env.station.certificate
    assert result.verifier_kid == env.store.current_verifier_kid()
    result.wipe()
    assert len(result.template) == 0


def test_wipe_zeroes_the_buffer_in_place(env: Env) -> None:
    result = unseal(env.sealed, trust=env.trust, expected=env.binding, now=NOW)
    view = memoryview(result.template)  # a held view pins the buffer: wipe must still zero what it sees
    assert any(view)
    result.wipe()
    assert bytes(view) == bytes(len(env.template))
    view.release()
    result.wipe()
    assert len(result.template) == 0


def test_container_fits_a_card_object(env: Env) -> None:
    assert len(env.sealed) <= 2048


def test_each_seal_is_fresh(env: Env) -> None:
    again = seal(env.template, env.header, env.binding, env.station, env.store.verifier_public_key())
    assert again != env.sealed
    assert bytes(unseal(again, trust=env.trust, expected=env.binding, now=NOW).template) == env.template


def test_header_is_not_readable_without_the_verifier_key(env: Env) -> None:
    # Sign-then-encrypt: neither the template nor the header fields appear in clear.
    assert env.template[:32] not in env.sealed
    assert env.header.holder_ref not in env.sealed
    assert env.header.extractor.encode() not in env.sealed
    assert env.binding.card_key_sha256 not in env.sealed


def test_every_single_bit_flip_is_rejected(env: Env) -> None:
    data = bytearray(env.sealed)
    codes: collections.Counter[str] = collections.Counter()
    accepted = []
    started = time.perf_counter()
    for i in range(len(data)):
        for bit in range(8):
            data[i] ^= 1 << bit
            try:
                unseal(bytes(data), trust=env.trust, expected=env.binding, now=NOW)
                accepted.append((i, bit))
            except SealedTemplateError as exc:
                codes[exc.code] += 1
            data[i] ^= 1 << bit
    elapsed = time.perf_counter() - started
    assert not accepted, f"bit flips accepted at {accepted[:10]}"
    assert sum(codes.values()) == len(data) * 8
    # The flips exercise the parser, the key unwrap and the AEAD, not one path only.
    assert {"container_malformed", "container_integrity", "verifier_key_unknown"} <= set(codes), codes
    print(f"{len(data) * 8} flips rejected in {elapsed:.1f}s: {dict(codes)}")


def test_copied_to_another_card_is_rejected(env: Env) -> None:
    other_guid = CardBinding(os.urandom(16), env.binding.card_key_sha256)
    with pytest.raises(sealed.WrongCardError, match="bound to card"):
        unseal(env.sealed, trust=env.trust, expected=other_guid, now=NOW)
    other_key = CardBinding.for_card(env.binding.guid, ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(sealed.WrongCardError, match="authentication key"):
        unseal(env.sealed, trust=env.trust, expected=other_key, now=NOW)


def test_expired_template(env: Env) -> None:
    data = seal(env.template, _header(days=1), env.binding, env.station, env.store.verifier_public_key())
    unseal(data, trust=env.trust, expected=env.binding, now=NOW + timedelta(hours=23))
    with pytest.raises(sealed.TemplateExpiredError):
        unseal(data, trust=env.trust, expected=env.binding, now=NOW + timedelta(days=1))


def test_template_not_yet_valid(env: Env) -> None:
    future = _header(created=NOW + timedelta(days=1))
    data = seal(env.template, future, env.binding, env.station, env.store.verifier_public_key())
    with pytest.raises(sealed.TemplateNotYetValidError):
        unseal(data, trust=env.trust, expected=env.binding, now=NOW)
    # within the tolerated clock skew it is fine
    unseal(data, trust=env.trust, expected=env.binding, now=NOW + timedelta(days=1) - sealed.CLOCK_SKEW)


def test_revoked_station(fresh: Env) -> None:
    unseal(fresh.sealed, trust=fresh.trust, expected=fresh.binding, now=NOW)
    fresh.store.revoke_station("desk1", now=NOW)
    with pytest.raises(sealed.StationRevokedError):
        unseal(fresh.sealed, trust=fresh.store.gate_trust(), expected=fresh.binding, now=NOW)


def test_station_certificate_expired(fresh: Env) -> None:
    fresh.store.issue_station("short", now=NOW, lifetime=timedelta(days=2))
    short = fresh.store.station_credentials("short")
    data = seal(fresh.template, _header(days=1), fresh.binding, short, fresh.store.verifier_public_key())
    later = NOW + timedelta(days=3)
    fresh.store.refresh_crl(now=later)  # keep the CRL fresh so the certificate check itself is reached
    with pytest.raises(sealed.StationCertificateExpiredError):
        unseal(data, trust=fresh.store.gate_trust(), expected=fresh.binding, now=later)


def test_stale_crl_fails_closed(env: Env) -> None:
    with pytest.raises(sealed.StaleCrlError):
        unseal(env.sealed, trust=env.trust, expected=env.binding, now=NOW + timedelta(days=60))


def test_station_of_another_ca_is_untrusted(env: Env, tmp_path: Path) -> None:
    other = KeyStore.init(tmp_path / "other", now=NOW - timedelta(days=1))
    other.issue_station("desk1", now=NOW - timedelta(days=1))
    data = seal(
        env.template,
        env.header,
        env.binding,
        other.station_credentials("desk1"),
        env.store.verifier_public_key(),
    )
    with pytest.raises(sealed.UntrustedStationError, match="not issued by the trusted CA"):
        unseal(data, trust=env.trust, expected=env.binding, now=NOW)


def test_card_auth_certificate_cannot_sign_templates(env: Env) -> None:
    # A card's 9E key signs any challenge without a PIN: its certificate must never pass as a station's.
    card_cert = env.store.issue_card_auth_certificate(
        env.binding.guid, env.card_key.public_key(), now=NOW - timedelta(days=1)
    )
    forged = seal(
        env.template,
        env.header,
        env.binding,
        StationCredentials(card_cert, env.card_key),
        env.store.verifier_public_key(),
    )
    with pytest.raises(sealed.UntrustedStationError, match="not a station"):
        unseal(forged, trust=env.trust, expected=env.binding, now=NOW)


def test_signature_by_another_key_under_a_valid_certificate(env: Env) -> None:
    impostor = StationCredentials(env.station.certificate, ec.generate_private_key(ec.SECP256R1()))
    data = seal(env.template, env.header, env.binding, impostor, env.store.verifier_public_key())
    with pytest.raises(sealed.BadSignatureError):
        unseal(data, trust=env.trust, expected=env.binding, now=NOW)


def test_wrong_verifier_key(env: Env) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    data = seal(env.template, env.header, env.binding, env.station, stranger.public_key())
    with pytest.raises(sealed.UnknownVerifierKeyError, match="no verifier key of this gate"):
        unseal(data, trust=env.trust, expected=env.binding, now=NOW)
    # A gate that holds a key under the right kid but the wrong private part fails at the unwrap.
    kid = next(iter(env.trust.verifier_keys))
    liar = GateTrust(env.trust.ca_certificate, env.trust.crl, {kid: stranger})
    with pytest.raises(sealed.UnknownVerifierKeyError, match="unwrap failed"):
        unseal(env.sealed, trust=liar, expected=env.binding, now=NOW)


def test_verifier_rotation_keeps_old_cards_readable_until_retired(fresh: Env) -> None:
    old_kid = fresh.store.current_verifier_kid()
    new_kid = fresh.store.rotate_verifier()
    assert new_kid != old_kid
    trust = fresh.store.gate_trust()
    assert unseal(fresh.sealed, trust=trust, expected=fresh.binding, now=NOW).verifier_kid == old_kid
    new = seal(fresh.template, fresh.header, fresh.binding, fresh.station, fresh.store.verifier_public_key())
    assert unseal(new, trust=trust, expected=fresh.binding, now=NOW).verifier_kid == new_kid
    fresh.store.retire_verifier(old_kid)
    trust = fresh.store.gate_trust()
    with pytest.raises(sealed.UnknownVerifierKeyError):
        unseal(fresh.sealed, trust=trust, expected=fresh.binding, now=NOW)
    unseal(new, trust=trust, expected=fresh.binding, now=NOW)


def test_every_truncation_is_rejected(env: Env) -> None:
    for length in range(len(env.sealed)):
        with pytest.raises(sealed.MalformedContainerError):
            unseal(env.sealed[:length], trust=env.trust, expected=env.binding, now=NOW)
    with pytest.raises(sealed.TruncatedContainerError):
        unseal(env.sealed[: len(env.sealed) // 2], trust=env.trust, expected=env.binding, now=NOW)
    with pytest.raises(sealed.TruncatedContainerError, match="empty"):
        unseal(b"", trust=env.trust, expected=env.binding, now=NOW)


def test_oversized_and_trailing_bytes(env: Env) -> None:
    with pytest.raises(sealed.OversizedContainerError):
        unseal(env.sealed + bytes(sealed.MAX_SEALED_SIZE), trust=env.trust, expected=env.binding, now=NOW)
    with pytest.raises(sealed.MalformedContainerError, match="trailing"):
        unseal(env.sealed + b"\x00", trust=env.trust, expected=env.binding, now=NOW)
    with pytest.raises(ValueError, match="template must be"):
        seal(
            bytes(sealed.MAX_TEMPLATE_SIZE + 1),
            env.header,
            env.binding,
            env.station,
            env.store.verifier_public_key(),
        )


def test_forged_length_is_refused_before_allocation(env: Env) -> None:
    # A byte string that claims 2^63 bytes, and an array that claims 2^32 items: refused by the scanner.
    for forged in (
        b"\xd8\x60\x84\x5b" + (1 << 63).to_bytes(8, "big"),
        b"\xd8\x60\x9b" + (1 << 32).to_bytes(8, "big"),
    ):
        with pytest.raises(sealed.TruncatedContainerError):
            unseal(forged, trust=env.trust, expected=env.binding, now=NOW)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00",
        b"\xff" * 100,
        b"\xd8\x60\x80",
        b"\xd8\x60\x9f\xff",
        b"\xa0",
        b"\xd2\x84\x40\xa0\x40\x40",
        os.urandom(1500),
    ],
)
def test_garbage_is_rejected(env: Env, garbage: bytes) -> None:
    with pytest.raises(sealed.MalformedContainerError):
        unseal(garbage, trust=env.trust, expected=env.binding, now=NOW)


def _reencode_outer(data: bytes, changes: dict[int | str, object]) -> bytes:
    outer = cbor2.loads(data)
    protected = dict(cbor2.loads(outer.value[0]))
    protected.update(changes)
    fields = list(outer.value)
    fields[0] = cose.dumps(protected)
    return cose.dumps(cbor2.CBORTag(outer.tag, fields))


def test_unsupported_version_and_algorithm(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(sealed, "FORMAT_VERSION", 2)
        v2 = seal(env.template, env.header, env.binding, env.station, env.store.verifier_public_key())
    with pytest.raises(sealed.UnsupportedFormatError, match="version 2"):
        unseal(v2, trust=env.trust, expected=env.binding, now=NOW)
    a128 = _reencode_outer(env.sealed, {1: 1})  # A128GCM
    with pytest.raises(sealed.UnsupportedFormatError, match="content encryption"):
        unseal(a128, trust=env.trust, expected=env.binding, now=NOW)


def test_non_deterministic_encoding_is_rejected(env: Env) -> None:
    # The IV map {5: h'..12 bytes..'} re-encoded with a non-minimal length: same value, other bytes.
    outer = cbor2.loads(env.sealed)
    at = 3 + len(cose.dumps(outer.value[0]))  # after tag 96, array head, protected bstr
    assert env.sealed[at : at + 3] == b"\xa1\x05\x4c"
    non_minimal = env.sealed[:at] + b"\xa1\x05\x58\x0c" + env.sealed[at + 3 :]
    with pytest.raises(sealed.MalformedContainerError, match="non-minimal"):
        unseal(non_minimal, trust=env.trust, expected=env.binding, now=NOW)


def test_seal_refuses_a_template_outliving_the_station(env: Env) -> None:
    with pytest.raises(ValueError, match="outlive"):
        seal(env.template, _header(days=3650), env.binding, env.station, env.store.verifier_public_key())


def test_header_validation() -> None:
    good = _header()
    for change in (
        {"quality": 101},
        {"quality": True},
        {"format_owner": 0x10000},
        {"extractor": ""},
        {"holder_ref": b""},
        {"expires": NOW - timedelta(seconds=1)},
        {"created": datetime(2026, 1, 1)},  # naive
    ):
        with pytest.raises(ValueError):
            replace(good, **change)
    with pytest.raises(ValueError):
        CardBinding(b"short", bytes(32))


def test_gate_trust_refuses_a_crl_from_another_ca(env: Env, tmp_path: Path) -> None:
    other = KeyStore.init(tmp_path / "other")
    with pytest.raises(Exception, match="CRL"):
        GateTrust.create(env.trust.ca_certificate, other.crl(), env.trust.verifier_keys.values())


def test_gate_binding_from_the_card_auth_certificate(fresh: Env) -> None:
    guid = fresh.binding.guid
    cert = fresh.store.issue_card_auth_certificate(guid, fresh.card_key.public_key(), now=NOW)
    binding = sealed.gate_binding(cert, guid, trust=fresh.trust, now=NOW)
    assert binding == fresh.binding
    unseal(fresh.sealed, trust=fresh.trust, expected=binding, now=NOW)
    with pytest.raises(sealed.CardCertificateError, match="another card"):
        sealed.gate_binding(cert, os.urandom(16), trust=fresh.trust, now=NOW)
    with pytest.raises(sealed.CardCertificateError, match="not a card-auth"):
        sealed.gate_binding(fresh.station.certificate, guid, trust=fresh.trust, now=NOW)
    fresh.store.revoke_card(guid, now=NOW)
    with pytest.raises(sealed.CardCertificateError, match="revoked"):
        sealed.gate_binding(cert, guid, trust=fresh.store.gate_trust(), now=NOW)


def test_gate_binding_refuses_a_card_of_another_ca(env: Env, tmp_path: Path) -> None:
    other = KeyStore.init(tmp_path / "other", now=NOW - timedelta(days=1))
    cert = other.issue_card_auth_certificate(env.binding.guid, env.card_key.public_key(), now=NOW)
    with pytest.raises(sealed.CardCertificateError, match="not issued by the trusted CA"):
        sealed.gate_binding(cert, env.binding.guid, trust=env.trust, now=NOW)


def test_sample_count_and_spread_round_trip_and_old_containers_still_open(env: Env) -> None:
    # containers sealed before keys 13/14 existed (env.sealed carries neither) open with None ...
    old = unseal(env.sealed, trust=env.trust, expected=env.binding, now=NOW)
    assert old.header.samples is None and old.header.sample_spread_milli is None
    old.wipe()
    # ... and a header that records them carries them through the signature
    header = replace(env.header, samples=3, sample_spread_milli=287)
    data = seal(env.template, header, env.binding, env.station, env.store.verifier_public_key())
    got = unseal(data, trust=env.trust, expected=env.binding, now=NOW)
    assert got.header == header and (got.header.samples, got.header.sample_spread_milli) == (3, 287)
    got.wipe()
    with pytest.raises(ValueError, match="sample_spread_milli"):
        replace(env.header, sample_spread_milli=2001)
    with pytest.raises(ValueError, match="samples"):
        replace(env.header, samples=-1)


def _signed_container(env: Env, payload: bytes) -> bytes:
    """A container around any payload, signed by the station and encrypted to the gate (as seal() would)."""
    from cryptography.hazmat.primitives import hashes, serialization

    cert_der = env.station.certificate.public_bytes(serialization.Encoding.DER)
    protected = cose.dumps({1: -7, 3: 60, 33: cert_der})
    der = env.station.signer.sign(cose.sig_structure(protected, payload), ec.ECDSA(hashes.SHA256()))
    sign1 = bytearray(cose.dumps(cbor2.CBORTag(18, [protected, {}, payload, cose.es256_raw(der)])))
    return sealed._encrypt(sign1, env.binding, [env.store.verifier_public_key()], os.urandom)


def test_signed_but_malformed_payloads_are_refused_as_strictly_as_before(env: Env) -> None:
    """The template is parsed out of the decrypted plaintext in place (its span zeroed for the CBOR decoder): every
    other byte is still held to deterministic CBOR and the payload schema."""
    good = seal(env.template, env.header, env.binding, env.station, env.store.verifier_public_key())
    sign1, _, _ = sealed._decrypt(good, env.trust, NOW)
    payload = bytes(cbor2.loads(bytes(sign1)).value[2])
    reopened = unseal(_signed_container(env, payload), trust=env.trust, expected=env.binding, now=NOW)
    assert bytes(reopened.template) == env.template  # the helper builds what seal() builds
    reopened.wipe()
    fields = cbor2.loads(payload)
    assert payload[1:3] == b"\x01\x19"  # key 1 (format owner), a 16-bit unsigned integer
    non_minimal = payload[:2] + b"\x1a\x00\x00" + payload[3:]  # the same value in a 32-bit head
    for bad, match in (
        (non_minimal, "non-minimal"),
        (cose.dumps({k: v for k, v in fields.items() if k != sealed.PayloadKey.TEMPLATE}), "no key 12"),
        (cose.dumps({**fields, sealed.PayloadKey.TEMPLATE: "text"}), "byte string"),
        (cose.dumps({**fields, sealed.PayloadKey.TEMPLATE: b""}), "byte string of the right length"),
        (cose.dumps([1, 2, 3]), "payload: array has no item 12"),
        (cose.dumps(b"x" * 40), "payload: expected a byte string|neither"),
    ):
        with pytest.raises(sealed.MalformedContainerError, match=match):
            unseal(_signed_container(env, bad), trust=env.trust, expected=env.binding, now=NOW)


def test_seal_reads_the_callers_bytearray_and_leaves_it_to_the_caller(env: Env) -> None:
    template = bytearray(env.template)
    data = seal(template, env.header, env.binding, env.station, env.store.verifier_public_key())
    assert template == env.template  # not wiped by seal: the caller wipes it (enrol.flow does, right after)
    got = unseal(data, trust=env.trust, expected=env.binding, now=NOW)
    assert type(got.template) is bytearray and got.template == template
    got.wipe()
