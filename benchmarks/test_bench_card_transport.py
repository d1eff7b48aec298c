"""PC/SC transport cost through the real chain (pyscard → pcscd → vpcd → virtual card, TCP_QUICKACK set):
one SELECT round trip, a 1.5 KB data object write + read and a read alone, with extended length and with
command chaining + GET RESPONSE, with the card's image write fsynced (default, like EEPROM) and not (the
transport cost alone). Numbers go into docs/card.md.

Run: `bash scripts/bench.sh benchmarks/test_bench_card_transport.py`
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from pcsc_fixtures import pcscd, virtual_card_factory  # noqa: F401  (fixtures: tests/ is on pythonpath)

from card import transport
from card.piv import DEFAULT_MANAGEMENT_KEY, ManagementKeyType, ObjectId, PivSession

BLOB = secrets.token_bytes(1536)


@pytest.fixture(
    params=[(True, True), (False, True), (True, False), (False, False)],
    ids=["extended-fsync", "chained-fsync", "extended-nofsync", "chained-nofsync"],
)
def session(request: pytest.FixtureRequest, virtual_card_factory) -> Iterator[PivSession]:  # noqa: F811
    extended, fsync = request.param
    card = virtual_card_factory(extended=extended, fsync=fsync)
    with transport.connect(card.reader_name, timeout=5) as conn:
        s = PivSession(conn)
        s.authenticate(ManagementKeyType.TDES, DEFAULT_MANAGEMENT_KEY)
        yield s


def test_select_round_trip(benchmark, session: PivSession) -> None:  # type: ignore[no-untyped-def]
    apt = benchmark(session.select)
    assert apt[:1] == b"\x61"


def test_write_read_1536_bytes(benchmark, session: PivSession) -> None:  # type: ignore[no-untyped-def]
    def write_read() -> bytes:
        session.put_data(ObjectId.SEALED_TEMPLATE, BLOB)
        return session.get_data(ObjectId.SEALED_TEMPLATE)

    assert benchmark(write_read) == BLOB


def test_read_1536_bytes(benchmark, session: PivSession) -> None:  # type: ignore[no-untyped-def]
    session.put_data(ObjectId.SEALED_TEMPLATE, BLOB)
    assert benchmark(session.get_data, ObjectId.SEALED_TEMPLATE) == BLOB
