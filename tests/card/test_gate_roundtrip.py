"""End to end through pyscard → pcscd → vpcd → virtual card: personalise with the keystore, seal and write a
template, then a gate that holds ONLY the CA certificate, the CRL and the verifier key reads it back.

The "template" is 512 random bytes: card tests carry no biometric data.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from card import sealed, transport
from card.cardauth import AuthenticatedCard, CardAuthError, authenticate_card
from card.keystore import KeyStore, load_gate_trust
from card.personalise import personalise, read_sealed_template, write_sealed_template
from card.piv import DEFAULT_MANAGEMENT_KEY, KeyType, ManagementKeyType, ObjectId, PivSession, Slot
from card.sealed import CardBinding, GateTrust, TemplateHeader, UnsealedTemplate, seal, unseal
from card.virtual.harness import VirtualCardProcess

MakeCard = Callable[..., VirtualCardProcess]


class RecordingRng:
    """Stands in for `secrets` in card authentication and records each challenge drawn."""

    def __init__(self) -> None:
        self.challenges: list[bytes] = []

    def token_bytes(self, n: int) -> bytes:
        value = secrets.token_bytes(n)
        self.challenges.append(value)
        return value


@dataclass
class Issuer:
    """The processor side: keystore, an enrolment station, and the gate bundle it exports."""

    store: KeyStore
    station: sealed.StationCredentials
    gate_bundle: Path


@dataclass
class Enrolled:
    card: VirtualCardProcess
    guid: bytes
    template: bytes
    sealed: bytes


@dataclass
class GateRead:
    auth: AuthenticatedCard
    result: UnsealedTemplate
    apdus: list[tuple[bytes, bytes]] = field(default_factory=list)


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    store = KeyStore.init(tmp_path / "keys")
    store.issue_station("desk1")
    bundle = store.export_gate_trust(tmp_path / "gate")
    return Issuer(store, store.station_credentials("desk1"), bundle)


def _header(now: datetime) -> TemplateHeader:
    return TemplateHeader(
        format_owner=0x0101,
        format_type=1,
        extractor="test",
        model_version="test",
        created=now,
        expires=now + timedelta(days=365),
        quality=80,
        visitor_category="worker",
        holder_ref=os.urandom(16),
    )


def enrol(issuer: Issuer, card: VirtualCardProcess) -> Enrolled:
    """Personalise a blank card with the keystore's callbacks, then seal and write a template bound to it."""
    template = os.urandom(512)
    with transport.connect(card.reader_name, timeout=5.0) as conn:
        session = PivSession(conn)
        done = personalise(session, issuer.store.issue_card_auth_certificate, issuer.store.management_key_for)
        binding = CardBinding.for_card(done.guid, done.public_key)
        data = seal(template, _header(datetime.now(UTC)), binding, issuer.station, issuer.store.verifier_public_key())
        write_sealed_template(session, issuer.store.management_key_for(done.guid), data)
        assert read_sealed_template(session) == data
    return Enrolled(card, done.guid, template, data)


def gate_read(trust: GateTrust, reader: str, rng: Any = secrets) -> GateRead:
    """What a gate does with a presented card (it has no keystore, only `trust`)."""
    now = datetime.now(UTC)
    apdus: list[tuple[bytes, bytes]] = []
    with transport.connect(reader, timeout=5.0) as conn:
        raw = conn.transmit_raw

        def recording(apdu: bytes, deadline: float | None = None) -> bytes:
            response = raw(apdu, deadline)
            apdus.append((apdu, response))
            return response

        conn.transmit_raw = recording  # type: ignore[method-assign]
        session = PivSession(conn)
        auth = authenticate_card(session, rng=rng)
        expected = sealed.gate_binding(auth.certificate, auth.guid, trust=trust, now=now)
        data = read_sealed_template(session)
        assert data is not None
        result = unseal(data, trust=trust, expected=expected, now=now)
    return GateRead(auth, result, apdus)


def _write_raw(issuer: Issuer, enrolled: Enrolled, data: bytes) -> None:
    with transport.connect(enrolled.card.reader_name, timeout=5.0) as conn:
        session = PivSession(conn)
        write_sealed_template(session, issuer.store.management_key_for(enrolled.guid), data)
        assert read_sealed_template(session) == data


def test_gate_round_trip_with_fresh_challenges(issuer: Issuer, virtual_card_factory: MakeCard) -> None:
    enrolled = enrol(issuer, virtual_card_factory())
    trust = load_gate_trust(issuer.gate_bundle)
    assert sorted(p.name for p in issuer.gate_bundle.iterdir())[:3] == ["bundle.json", "ca.crt", "crl.pem"]
    rng = RecordingRng()
    first = gate_read(trust, enrolled.card.reader_name, rng)
    second = gate_read(trust, enrolled.card.reader_name, rng)
    assert len(rng.challenges) == 2 and rng.challenges[0] != rng.challenges[1]
    # each challenge went to the card inside a GENERAL AUTHENTICATE (INS 87) and was answered
    sent = [apdu for apdu, _ in first.apdus + second.apdus if apdu[1] == 0x87]
    assert len(sent) == 2 and rng.challenges[0] in sent[0] and rng.challenges[1] in sent[1]
    for read in (first, second):
        assert read.auth.guid == enrolled.guid
        assert bytes(read.result.template) == enrolled.template
        read.result.wipe()
    # the 9E certificate chains to the CA and names the card's GUID
    assert first.auth.certificate.issuer == trust.ca_certificate.subject


def test_bit_flips_written_to_the_card_are_rejected(issuer: Issuer, virtual_card_factory: MakeCard) -> None:
    enrolled = enrol(issuer, virtual_card_factory())
    trust = load_gate_trust(issuer.gate_bundle)
    size = len(enrolled.sealed)
    rng = secrets.SystemRandom()
    # spread over the whole container (headers, recipient, IV, ciphertext, tag) plus random positions
    positions = sorted({0, 1, 2, 3, size // 2, size - 17, size - 1} | {rng.randrange(size) for _ in range(17)})
    codes = set()
    for position in positions:
        flipped = bytearray(enrolled.sealed)
        flipped[position] ^= 1 << rng.randrange(8)
        _write_raw(issuer, enrolled, bytes(flipped))
        with pytest.raises(sealed.SealedTemplateError) as err:
            gate_read(trust, enrolled.card.reader_name)
        codes.add(err.value.code)
    assert "container_integrity" in codes
    # and the genuine container, written back, is accepted again
    _write_raw(issuer, enrolled, enrolled.sealed)
    assert bytes(gate_read(trust, enrolled.card.reader_name).result.template) == enrolled.template


def test_container_copied_to_another_card(issuer: Issuer, virtual_card_factory: MakeCard) -> None:
    first = enrol(issuer, virtual_card_factory(reader=0))
    second = enrol(issuer, virtual_card_factory(reader=1))
    trust = load_gate_trust(issuer.gate_bundle)
    _write_raw(issuer, second, first.sealed)
    with pytest.raises(sealed.WrongCardError):
        gate_read(trust, second.card.reader_name)
    # the original card still passes
    assert bytes(gate_read(trust, first.card.reader_name).result.template) == first.template


def test_cloned_data_set_fails_card_authentication(issuer: Issuer, virtual_card_factory: MakeCard) -> None:
    original = enrol(issuer, virtual_card_factory(reader=0))
    with transport.connect(original.card.reader_name, timeout=5.0) as conn:
        session = PivSession(conn)
        copied = {oid: session.get_data(oid) for oid in (ObjectId.CHUID, ObjectId.CARD_AUTH, ObjectId.SEALED_TEMPLATE)}
    # The attacker's blank card: same objects, but its 9E key is its own (the original never leaves its card).
    clone = virtual_card_factory(reader=1)
    with transport.connect(clone.reader_name, timeout=5.0) as conn:
        session = PivSession(conn)
        session.authenticate(ManagementKeyType.TDES, DEFAULT_MANAGEMENT_KEY)
        session.generate_key(Slot.CARD_AUTH, KeyType.ECCP256)
        for oid, value in copied.items():
            session.put_data(oid, value)
    trust = load_gate_trust(issuer.gate_bundle)
    with pytest.raises(CardAuthError):
        gate_read(trust, clone.reader_name)
    # everything else about the clone would pass: the certificate and the container are genuine
    with transport.connect(clone.reader_name, timeout=5.0) as conn:
        session = PivSession(conn)
        assert session.get_data(ObjectId.SEALED_TEMPLATE) == original.sealed


def test_revoked_card_is_refused_at_the_gate(issuer: Issuer, virtual_card_factory: MakeCard, tmp_path: Path) -> None:
    enrolled = enrol(issuer, virtual_card_factory())
    issuer.store.revoke_card(enrolled.guid)
    trust = load_gate_trust(issuer.store.export_gate_trust(tmp_path / "gate2"))
    with pytest.raises(sealed.CardCertificateError, match="revoked"):
        gate_read(trust, enrolled.card.reader_name)


def test_reseal_card_after_a_rotation_needs_no_capture(virtual_card_factory: MakeCard, tmp_path: Path) -> None:
    """`cardbound keys reseal-card` at the key officer: after a rotation the card is re-wrapped to the new key
    (same signed template, no capture); once the old key's overlap has ended, only the re-sealed card opens."""
    from cardbound.cli import main as cli_main

    home = tmp_path / "officer"
    store = KeyStore.init(home / "keys")
    store.issue_station("desk1")
    issuer = Issuer(store, store.station_credentials("desk1"), store.export_gate_trust(tmp_path / "gate"))
    enrolled = enrol(issuer, virtual_card_factory())
    old = store.current_verifier_kid()
    store.rotate_verifier(overlap=timedelta(days=1))
    assert cli_main(["--home", str(home), "keys", "reseal-card", "--reader", enrolled.card.reader_name]) == 0
    with transport.connect(enrolled.card.reader_name, timeout=5.0) as conn:
        session = PivSession(conn)
        binding = CardBinding.for_card(enrolled.guid, authenticate_card(session).public_key)
        resealed = read_sealed_template(session)
    assert resealed is not None and sealed.recipient_kids(resealed) == [store.current_verifier_kid()] != [old]
    trust = load_gate_trust(store.export_gate_trust(tmp_path / "gate"))
    later = datetime.now(UTC) + timedelta(days=2)  # past the old key's overlap: cards sealed only to it are refused
    with pytest.raises(sealed.VerifierKeyExpiredError):
        unseal(enrolled.sealed, trust=trust, expected=binding, now=later)
    opened = unseal(resealed, trust=trust, expected=binding, now=later)
    assert bytes(opened.template) == enrolled.template
