"""Gate card transaction through the real chain (pyscard → pcscd → vpcd → virtual card): SELECT, card
authentication (CHUID, 9E certificate, GENERAL AUTHENTICATE on a fresh challenge), 9E certificate check against
the CA/CRL, GET DATA of the sealed template and unseal. Records APDU count and bytes each way, and estimates
the same exchange over a contactless (ISO/IEC 14443-4) link at 106 and 424 kbit/s.

Run: `bash scripts/bench.sh benchmarks/test_bench_card.py` (add `-s` to see the estimate table).
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pcsc_fixtures import pcscd, virtual_card_factory  # noqa: F401  (fixtures: tests/ is on pythonpath)

from card import sealed, transport
from card.cardauth import authenticate_card
from card.keystore import KeyStore, load_gate_trust
from card.personalise import personalise, read_sealed_template, write_sealed_template
from card.piv import PivSession
from card.sealed import CardBinding, GateTrust, TemplateHeader, seal, unseal
from card.virtual.harness import VirtualCardProcess

# Contactless model (stated assumptions, not a measurement):
#  * ISO/IEC 14443-4 I-blocks of at most FSC = FSD = 256 bytes: PCB (1) + CRC_A (2) = 3 bytes of framing,
#    so at most 253 APDU bytes per frame; a chained frame is acknowledged by a 3-byte R(ACK) block.
#  * 10 bits on air per byte (8 data bits + parity + start/stop/SoF/EoF share), at 106 or 424 kbit/s.
#  * 0.3 ms per frame for frame delay time (FDT ≥ 86 µs), SoF/EoF, reader and driver turnaround.
#  * Not included: the card's own compute time. A secure element needs roughly 50-150 ms for one ECDSA P-256
#    signature (the GENERAL AUTHENTICATE), which dominates a real contactless transaction.
FRAME_SIZE = 256
FRAME_OVERHEAD_BYTES = 3
PER_FRAME_S = 0.3e-3
BITS_PER_BYTE = 10
RATES = (106_000, 424_000)


@dataclass
class Traffic:
    apdus: list[tuple[int, int]] = field(default_factory=list)  # (command bytes, response bytes)

    @property
    def sent(self) -> int:
        return sum(c for c, _ in self.apdus)

    @property
    def received(self) -> int:
        return sum(r for _, r in self.apdus)


def _frames(n: int) -> int:
    return max(1, math.ceil(n / (FRAME_SIZE - FRAME_OVERHEAD_BYTES)))


def contactless_estimate_s(traffic: Traffic, rate: int) -> float:
    total = 0.0
    for command, response in traffic.apdus:
        for size in (command, response):
            frames = _frames(size)
            on_air = size + frames * FRAME_OVERHEAD_BYTES + (frames - 1) * FRAME_OVERHEAD_BYTES  # + R(ACK)s
            total += on_air * BITS_PER_BYTE / rate + (2 * frames - 1) * PER_FRAME_S
    return total


def _counting(conn: transport.PcscConnection, traffic: Traffic) -> None:
    raw = conn.transmit_raw

    def counted(apdu: bytes, deadline: float | None = None) -> bytes:
        response = raw(apdu, deadline)
        traffic.apdus.append((len(apdu), len(response)))
        return response

    conn.transmit_raw = counted  # type: ignore[method-assign]


@dataclass
class Setup:
    card: VirtualCardProcess
    trust: GateTrust
    sealed: bytes
    template: bytes


@pytest.fixture
def enrolled(virtual_card_factory: Callable[..., VirtualCardProcess], tmp_path: Path) -> Setup:  # noqa: F811
    store = KeyStore.init(tmp_path / "keys")
    store.issue_station("desk1")
    card = virtual_card_factory()
    template = os.urandom(512)  # random bytes, not biometric
    now = datetime.now(UTC)
    header = TemplateHeader(0x0101, 1, "bench", "bench", now, now + timedelta(days=30), 80, "worker", b"\x01" * 16)
    with transport.connect(card.reader_name, timeout=5.0) as conn:
        session = PivSession(conn)
        done = personalise(session, store.issue_card_auth_certificate, store.management_key_for)
        data = seal(
            template,
            header,
            CardBinding.for_card(done.guid, done.public_key),
            store.station_credentials("desk1"),
            store.verifier_public_key(),
        )
        write_sealed_template(session, store.management_key_for(done.guid), data)
    trust = load_gate_trust(store.export_gate_trust(tmp_path / "gate"))
    return Setup(card, trust, data, template)


def gate_transaction(conn: transport.PcscConnection, trust: GateTrust) -> sealed.UnsealedTemplate:
    now = datetime.now(UTC)
    session = PivSession(conn)  # SELECT
    auth = authenticate_card(session, rng=secrets)
    expected = sealed.gate_binding(auth.certificate, auth.guid, trust=trust, now=now)
    data = read_sealed_template(session)
    assert data is not None
    return unseal(data, trust=trust, expected=expected, now=now)


@pytest.fixture
def connection(enrolled: Setup) -> Iterator[transport.PcscConnection]:
    with transport.connect(enrolled.card.reader_name, timeout=5.0) as conn:
        yield conn


def test_bench_gate_card_transaction(benchmark: Any, enrolled: Setup, connection: transport.PcscConnection) -> None:
    traffic = Traffic()
    _counting(connection, traffic)
    first = gate_transaction(connection, enrolled.trust)
    assert bytes(first.template) == enrolled.template
    first.wipe()
    one = Traffic(list(traffic.apdus))

    def run() -> None:
        gate_transaction(connection, enrolled.trust).wipe()

    benchmark.pedantic(run, rounds=200, iterations=1, warmup_rounds=5)
    estimates = {f"contactless_{rate // 1000}k_ms": round(contactless_estimate_s(one, rate) * 1e3, 2) for rate in RATES}
    benchmark.extra_info.update(
        apdus=len(one.apdus),
        bytes_to_card=one.sent,
        bytes_from_card=one.received,
        sealed_bytes=len(enrolled.sealed),
        **estimates,
    )
    print(
        f"\ngate transaction: {len(one.apdus)} APDUs, {one.sent} bytes to card, {one.received} bytes from card; "
        f"sealed template {len(enrolled.sealed)} bytes"
    )
    for (command, response), n in zip(one.apdus, range(len(one.apdus)), strict=True):
        print(f"  APDU {n + 1}: {command:5d} -> {response:5d} bytes")
    for key, value in estimates.items():
        print(f"  {key}: {value} ms on air (card compute time not included)")


def test_bench_gate_unseal_only(benchmark: Any, enrolled: Setup) -> None:
    """Host-side cryptography of the gate (no card I/O): unseal of the container read above."""
    with transport.connect(enrolled.card.reader_name, timeout=5.0) as conn:
        session = PivSession(conn)
        auth = authenticate_card(session)
    now = datetime.now(UTC)
    expected = sealed.gate_binding(auth.certificate, auth.guid, trust=enrolled.trust, now=now)

    def run() -> None:
        unseal(enrolled.sealed, trust=enrolled.trust, expected=expected, now=now).wipe()

    benchmark.pedantic(run, rounds=500, iterations=1, warmup_rounds=5)


def test_bench_gate_connect_and_transaction(benchmark: Any, enrolled: Setup) -> None:
    """The same, including SCardConnect/disconnect (a card presented afresh each time)."""

    def run() -> None:
        with transport.connect(enrolled.card.reader_name, timeout=5.0) as conn:
            gate_transaction(conn, enrolled.trust).wipe()

    benchmark.pedantic(run, rounds=50, iterations=1, warmup_rounds=2)
