"""pytest plugin: the real PC/SC chain (pcscd + vsmartcard-vpcd + virtual PIV cards), started and stopped by PID.

Fixtures for any suite that needs a card:
  pcscd                 session: a running pcscd (`card.virtual.harness.PcscDaemon`; `.owned`, `.restart()`)
  virtual_card_factory  function: `make(image=None, reader=0, faults=Faults(), t0=False, extended=True,
                        insert=True, fsync=True) -> VirtualCardProcess`; every card made is stopped at teardown
  virtual_card          function: a blank card (factory keys, no objects) inserted in reader 0
  card_connection       function: a `PcscConnection` to `virtual_card`
  piv_session           function: a `PivSession` on `card_connection`
  throwaway_ca          session: `ThrowawayCa` with `.issue_certificate(guid, public_key)` (test CA only)
  personalised_card     function: `PersonalisedVirtualCard` (card process, guid, management key, certificate,
                        CA) — personalised with `throwaway_ca` and a random per-card AES-128 key

Only one pytest session at a time may drive the virtual readers of this host (they are global TCP ports and
one pcscd): the `pcscd` fixture holds an exclusive lock file for the whole session.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from card import transport
from card.personalise import PersonalisedCard, personalise
from card.piv import PivSession
from card.virtual.harness import PcscDaemon, VirtualCardProcess
from card.virtual.vpcd import Faults

LOCK_FILE = Path(os.environ.get("CARDBOUND_PCSC_LOCK", "/tmp/cardbound-pcsc.lock"))
LOCK_WAIT_S = 900.0
# Tells a process started by this session (e.g. `cardbound evidence probe`, which takes the same lock outside
# pytest) that its ancestor already holds the readers lock, so it must not wait for it (it would wait forever).
LOCK_HOLDER_ENV = "CARDBOUND_PCSC_LOCK_HOLDER"


_lock_depth = 0  # re-entrant within this process: benchmark modules import the fixture more than once
_lock_fd: int | None = None


def _acquire_readers_lock() -> None:
    global _lock_depth, _lock_fd
    if _lock_depth == 0:
        fd = os.open(LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o666)
        end = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > end:
                    os.close(fd)
                    pytest.fail(f"another test session holds {LOCK_FILE} (virtual PC/SC readers busy)")
                time.sleep(0.2)
        _lock_fd = fd
        os.environ[LOCK_HOLDER_ENV] = str(os.getpid())
    _lock_depth += 1


def _release_readers_lock() -> None:
    global _lock_depth, _lock_fd
    _lock_depth -= 1
    if _lock_depth == 0 and _lock_fd is not None:
        os.environ.pop(LOCK_HOLDER_ENV, None)
        fcntl.flock(_lock_fd, fcntl.LOCK_UN)
        os.close(_lock_fd)
        _lock_fd = None


@pytest.fixture(scope="session")
def pcscd() -> Iterator[PcscDaemon]:
    _acquire_readers_lock()
    daemon = PcscDaemon()
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        _release_readers_lock()


MakeCard = Callable[..., VirtualCardProcess]


@pytest.fixture
def virtual_card_factory(pcscd: PcscDaemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeCard]:
    made: list[VirtualCardProcess] = []

    def make(
        image: Path | None = None,
        reader: int = 0,
        faults: Faults | None = None,
        t0: bool = False,
        extended: bool = True,
        insert: bool = True,
        fsync: bool = True,
        hostile: str | None = None,
        seed: int = 0,
    ) -> VirtualCardProcess:
        if image is None:
            image = tmp_path_factory.mktemp("card") / "card.json"
        card = VirtualCardProcess(image, reader, faults or Faults(), t0=t0, extended=extended, fsync=fsync,
                                  hostile=hostile, seed=seed)
        made.append(card)
        if insert:
            card.insert()
        return card

    yield make
    # kill every process first (by PID), then wait for the readers to empty, so one failure cannot leave
    # a card running into the next test
    for card in made:
        card.kill()
    for card in made:
        card.stop()


@pytest.fixture
def virtual_card(virtual_card_factory: MakeCard) -> VirtualCardProcess:
    return virtual_card_factory()


@pytest.fixture
def card_connection(virtual_card: VirtualCardProcess) -> Iterator[transport.PcscConnection]:
    conn = transport.connect(virtual_card.reader_name, timeout=5.0)
    yield conn
    conn.close()


@pytest.fixture
def piv_session(card_connection: transport.PcscConnection) -> PivSession:
    return PivSession(card_connection)


class ThrowawayCa:
    """A self-signed EC P-256 CA that issues card-authentication certificates. Tests only."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cardbound test card CA")])
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def issue_certificate(self, guid: bytes, public_key: ec.EllipticCurvePublicKey) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, guid.hex())]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )


@pytest.fixture(scope="session")
def throwaway_ca() -> ThrowawayCa:
    return ThrowawayCa()


@dataclass
class PersonalisedVirtualCard:
    card: VirtualCardProcess
    guid: bytes
    management_key: bytes
    personalised: PersonalisedCard
    ca: ThrowawayCa

    @property
    def reader_name(self) -> str:
        return self.card.reader_name


def personalise_virtual_card(card: VirtualCardProcess, ca: ThrowawayCa) -> PersonalisedVirtualCard:
    """Personalise the (blank, inserted) virtual `card` through the real PC/SC chain."""
    keys: dict[bytes, bytes] = {}

    def key_for(guid: bytes) -> bytes:
        return keys.setdefault(guid, secrets.token_bytes(16))

    with transport.connect(card.reader_name, timeout=5.0) as conn:
        result = personalise(PivSession(conn), ca.issue_certificate, key_for)
    return PersonalisedVirtualCard(card, result.guid, keys[result.guid], result, ca)


@pytest.fixture
def personalised_card(virtual_card_factory: MakeCard, throwaway_ca: ThrowawayCa) -> PersonalisedVirtualCard:
    return personalise_virtual_card(virtual_card_factory(), throwaway_ca)


class Recorder:
    """Wraps a connection's raw exchange to see (and optionally rewrite) what really crossed PC/SC."""

    def __init__(self, conn: transport.PcscConnection) -> None:
        self.sent: list[bytes] = []
        self.received: list[bytes] = []
        self.rewrite: dict[bytes, bytes] = {}  # APDU prefix -> response to hand back instead
        inner = conn.transmit_raw

        def spy(apdu: bytes, deadline: float | None = None) -> bytes:
            self.sent.append(apdu)
            response = inner(apdu, deadline)
            for prefix, replacement in self.rewrite.items():
                if apdu.startswith(prefix):
                    response = replacement
            self.received.append(response)
            return response

        conn.transmit_raw = spy  # type: ignore[method-assign]
