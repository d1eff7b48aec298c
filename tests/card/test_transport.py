"""PC/SC transport through the real chain: readers, waiting, T=0/T=1, chaining, extended length, faults."""

from __future__ import annotations

import secrets
import time

import pytest
from pcsc_fixtures import Recorder
from smartcard import scard

from card import transport
from card.apdu import ApduFormatError, CommandApdu
from card.piv import DEFAULT_MANAGEMENT_KEY, ManagementKeyType, ObjectId, PivSession
from card.virtual.harness import PcscDaemon, VirtualCardProcess
from card.virtual.vpcd import Faults

TDES = ManagementKeyType.TDES


def _write_read(session: PivSession, size: int) -> bytes:
    data = secrets.token_bytes(size)
    session.authenticate(TDES, DEFAULT_MANAGEMENT_KEY)
    session.put_data(ObjectId.SEALED_TEMPLATE, data)
    return data


def test_list_readers_shows_virtual_readers(pcscd: PcscDaemon) -> None:
    readers = transport.list_readers()
    assert "Virtual PCD 00 00" in readers and "Virtual PCD 00 01" in readers


def test_unknown_reader_is_a_typed_error(pcscd: PcscDaemon) -> None:
    with pytest.raises(transport.NoReaderError):
        transport.connect("No Such Reader", timeout=0.2)


def test_wait_for_card_times_out_on_empty_reader(pcscd: PcscDaemon) -> None:
    start = time.monotonic()
    with pytest.raises(transport.NoCardError):
        transport.wait_for_card("Virtual PCD 00 01", timeout=0.3)
    assert time.monotonic() - start < 2.0


def test_atr_and_protocol_t1_extended(card_connection: transport.PcscConnection) -> None:
    info = transport.parse_atr(card_connection.atr)
    assert info.protocols == frozenset({1}) and info.extended_length and info.chaining
    assert card_connection.extended_length


def test_extended_length_write_read_is_one_apdu_each(card_connection: transport.PcscConnection) -> None:
    session = PivSession(card_connection)
    rec = Recorder(card_connection)
    data = _write_read(session, 3000)
    assert session.get_data(ObjectId.SEALED_TEMPLATE) == data
    put, get = rec.sent[-2], rec.sent[-1]
    assert put[1] == 0xDB and put[4] == 0 and len(put) > 3000  # one extended PUT DATA
    assert get[1] == 0xCB and get[-2:] == b"\x00\x00"  # extended Le, no GET RESPONSE needed
    assert rec.received[-1][-2:] == b"\x90\x00"


def test_chaining_and_61xx_when_extended_length_is_off(virtual_card_factory) -> None:  # type: ignore[no-untyped-def]
    card = virtual_card_factory(extended=False)
    with transport.connect(card.reader_name, timeout=5) as conn:
        assert not conn.extended_length
        session = PivSession(conn)
        rec = Recorder(conn)
        data = _write_read(session, 1500)
        puts = [a for a in rec.sent if a[1] == 0xDB]
        assert len(puts) == 6 and all(a[0] == 0x10 for a in puts[:-1]) and puts[-1][0] == 0x00
        assert all(len(a) <= 5 + 255 for a in puts)
        rec.sent.clear()
        assert session.get_data(ObjectId.SEALED_TEMPLATE) == data
        assert [a[1] for a in rec.sent] == [0xCB] + [0xC0] * 5  # 1500 bytes + TLV header in 256-byte pieces
        assert all(r[-2] == 0x61 for r in rec.received[-6:-1])


def test_card_without_extended_length_refuses_extended_apdu(virtual_card_factory) -> None:  # type: ignore[no-untyped-def]
    card = virtual_card_factory(extended=False)
    with transport.connect(card.reader_name, timeout=5, extended_length=True) as conn:
        data, sw = conn.transmit(CommandApdu(0, 0xA4, 4, 0, bytes(300)).encode(extended=True))
        assert sw == 0x6700


def test_t0_card_61xx_and_6cxx(virtual_card_factory) -> None:  # type: ignore[no-untyped-def]
    card = virtual_card_factory(t0=True)
    with transport.connect(card.reader_name, timeout=5) as conn:
        assert transport.parse_atr(conn.atr).protocols == frozenset({0})
        assert conn.protocol == scard.SCARD_PROTOCOL_T0
        assert not conn.extended_length
        session = PivSession(conn)
        rec = Recorder(conn)
        data = _write_read(session, 700)
        rec.sent.clear()
        rec.received.clear()
        assert session.get_data(ObjectId.SEALED_TEMPLATE) == data
        assert [a[1] for a in rec.sent] == [0xCB, 0xC0, 0xC0]  # 704 bytes: 256 + 256 + 192
        # short answer with a wrong Le: 6Cxx, resent with the exact Le
        rec.sent.clear()
        rec.received.clear()
        data, sw = conn.transmit(CommandApdu(0, 0xCB, 0x3F, 0xFF, bytes.fromhex("5C035FC102"), 256).encode())
        assert sw == 0x6A82  # absent object: no 6C dance for errors
        session.put_data(ObjectId.CHUID, b"\x34\x10" + bytes(16))
        rec.sent.clear()
        rec.received.clear()
        value = session.get_data(ObjectId.CHUID)
        assert value == b"\x34\x10" + bytes(16)
        assert rec.received[0][:1] == b"\x6c" and rec.sent[1][-1] == rec.received[0][1]


@pytest.mark.parametrize("how", ["sigstop", "stops-answering"])
def test_frozen_card_fails_within_deadline_and_connection_recovers(virtual_card_factory, how: str) -> None:  # type: ignore[no-untyped-def]
    # stops-answering: SELECT by PivSession() is APDU 1, the next one never gets an answer
    virtual_card = virtual_card_factory(faults=Faults(freeze_after=1) if how == "stops-answering" else None)
    conn = transport.connect(virtual_card.reader_name, timeout=5, apdu_timeout=0.5)
    session = PivSession(conn)
    if how == "sigstop":
        virtual_card.freeze()
    start = time.monotonic()
    with pytest.raises(transport.CardTimeoutError):
        session.select()
    elapsed = time.monotonic() - start
    assert elapsed < 0.5 + 1.0, f"caller blocked {elapsed:.2f} s past a 0.5 s deadline"
    assert not conn.connected
    with pytest.raises(transport.ConnectionLostError):
        session.select()
    virtual_card.stop()  # the card is pulled; a new card is presented
    virtual_card.insert(Faults())
    conn.reconnect(timeout=5)
    assert PivSession(conn).application_property_template
    conn.close()


def test_card_removed_then_reinserted(virtual_card: VirtualCardProcess) -> None:
    conn = transport.connect(virtual_card.reader_name, timeout=5)
    PivSession(conn)
    virtual_card.remove()
    with pytest.raises(transport.CardRemovedError):
        PivSession(conn)
    virtual_card.insert()
    conn.reconnect(timeout=5)
    assert PivSession(conn).get_data_or_none(ObjectId.CHUID) is None
    conn.close()


def test_drop_mid_session_is_card_removed(virtual_card_factory) -> None:  # type: ignore[no-untyped-def]
    card = virtual_card_factory(faults=Faults(drop_after=2))
    with transport.connect(card.reader_name, timeout=5) as conn:
        conn.transmit(CommandApdu(0, 0xA4, 4, 0, bytes.fromhex("A000000308"), 256).encode())
        conn.transmit(CommandApdu(0, 0xA4, 4, 0, bytes.fromhex("A000000308"), 256).encode())
        with pytest.raises(transport.CardRemovedError):
            conn.transmit(CommandApdu(0, 0xA4, 4, 0, bytes.fromhex("A000000308"), 256).encode())


def test_delayed_card_still_answers_within_deadline(virtual_card_factory) -> None:  # type: ignore[no-untyped-def]
    card = virtual_card_factory(faults=Faults(delay_ms=50))
    with transport.connect(card.reader_name, timeout=5, apdu_timeout=2) as conn:
        assert PivSession(conn).get_data_or_none(ObjectId.CHUID) is None
    slow = virtual_card_factory(reader=1, faults=Faults(delay_ms=400))
    with (
        transport.connect(slow.reader_name, timeout=5, apdu_timeout=0.2) as conn,
        pytest.raises(transport.CardTimeoutError),
    ):
        PivSession(conn)


def test_pcscd_restart_is_survived(pcscd: PcscDaemon, virtual_card: VirtualCardProcess) -> None:
    if not pcscd.owned:
        pytest.skip("pcscd was started outside this test session; not restarting someone else's daemon")
    conn = transport.connect(virtual_card.reader_name, timeout=5)
    session = PivSession(conn)
    session.authenticate(TDES, DEFAULT_MANAGEMENT_KEY)
    session.put_data(ObjectId.SEALED_TEMPLATE, b"before restart")
    pcscd.restart()
    with pytest.raises(transport.ConnectionLostError):
        session.get_data(ObjectId.SEALED_TEMPLATE)
    conn.reconnect(timeout=10)  # the card process reconnects to the new pcscd by itself
    assert PivSession(conn).get_data(ObjectId.SEALED_TEMPLATE) == b"before restart"
    conn.close()


def test_session_deadline_bounds_a_whole_transaction(virtual_card_factory) -> None:  # type: ignore[no-untyped-def]
    card = virtual_card_factory(faults=Faults(delay_ms=150))
    with transport.connect(card.reader_name, timeout=5, apdu_timeout=5) as conn:
        session = PivSession(conn)
        session.deadline = transport.deadline_in(0.35)  # each APDU is within 5 s, three of them are not
        start = time.monotonic()
        with pytest.raises(transport.CardTimeoutError):
            for _ in range(3):
                session.get_data_or_none(ObjectId.CHUID)
        assert time.monotonic() - start < 0.35 + 1.0


def test_stale_pcscd_socket_is_removed_when_no_pcscd_runs(pcscd: PcscDaemon) -> None:
    import socket

    from card.virtual.harness import PCSCD_COMM

    if not pcscd.owned:
        pytest.skip("pcscd was started outside this test session")
    pcscd.stop()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    PCSCD_COMM.unlink(missing_ok=True)
    stale.bind(str(PCSCD_COMM))  # a socket file nobody listens on, as a crashed pcscd leaves it
    stale.close()
    with pytest.raises(transport.PcscUnavailableError):
        transport.list_readers()
    pcscd.start()
    assert "Virtual PCD 00 00" in transport.list_readers()


def test_arbitrary_bytes_through_the_real_chain(card_connection: transport.PcscConnection) -> None:
    """Random command bytes through pcscd and vpcd: a response or a typed PC/SC error, and the card lives on."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(min_size=0, max_size=300))
    def exchange(raw: bytes) -> None:
        try:
            response = card_connection.transmit_raw(raw)
        except ApduFormatError:
            assert len(raw) < 4  # refused before it reaches PC/SC
            return
        except transport.ConnectionLostError:
            raise
        except transport.TransportError:
            return  # pcscd refused the buffer
        assert len(response) >= 2

    exchange()
    assert PivSession(card_connection).application_property_template
