"""PC/SC transport over pyscard's `smartcard.scard` (the thin PC/SC binding) to pcscd.

Why the low-level binding: it gives the raw PC/SC return codes (so every failure maps to a typed error) and
`SCardGetStatusChange` with a timeout (so waiting for a card never hangs).

Every call that talks to a card runs in a per-connection worker thread and is bounded by a deadline: a
card that stops answering makes `transmit` block forever inside pcscd (the reader driver has no I/O
timeout), so on timeout we abandon that worker and its PC/SC context, raise `CardTimeoutError`, and the
caller may `reconnect()`.

On top of the raw exchange this module does the ISO 7816-4 plumbing that pyscard leaves to us: T=0 status
words (61xx → GET RESPONSE, 6Cxx → resend with the right Le), command chaining (CLA b5), extended length.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from smartcard import scard

from card.apdu import (
    EXTENDED_LE_MAX,
    SHORT_LC_MAX,
    SHORT_LE_MAX,
    ApduFormatError,
    CommandApdu,
    ResponseApdu,
    error_for_sw,
)

DEFAULT_APDU_TIMEOUT = 5.0
# A card that answers 61xx forever must not keep us looping: 64 KiB is more than any PIV object.
_MAX_RESPONSE = 65536 + 256
_MAX_GET_RESPONSE = 300
_MAX_COMMAND = 4 + 3 + 65535 + 2  # extended case 4

T = TypeVar("T")


class TransportError(Exception):
    """A PC/SC level failure (no status word). `code` is the PC/SC return code when there is one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(message if code is None else f"{message} (PC/SC 0x{code & 0xFFFFFFFF:08X})")


class NoReaderError(TransportError):
    """The named reader does not exist (or there is no reader at all)."""


class NoCardError(TransportError):
    """No card was presented within the timeout."""


class ConnectionLostError(TransportError):
    """The connection is gone; `reconnect()` may bring it back."""


class PcscUnavailableError(ConnectionLostError):
    """pcscd is not running or was restarted."""


class CardRemovedError(ConnectionLostError):
    """The card was removed, reset or failed mid-session."""


class CardTimeoutError(ConnectionLostError):
    """The card did not answer before the deadline (frozen card, stuck reader)."""


class CardProtocolError(TransportError):
    """The card's answer breaks ISO 7816-4 (malformed response, endless 61xx ...)."""


_SERVICE_GONE = {
    scard.SCARD_E_NO_SERVICE,
    scard.SCARD_E_SERVICE_STOPPED,
    scard.SCARD_E_INVALID_HANDLE,
    scard.SCARD_E_NO_READERS_AVAILABLE,
}
_CARD_GONE = {
    scard.SCARD_W_REMOVED_CARD,
    scard.SCARD_E_NO_SMARTCARD,
    scard.SCARD_E_NOT_TRANSACTED,
    scard.SCARD_E_READER_UNAVAILABLE,
    scard.SCARD_W_RESET_CARD,
    scard.SCARD_W_UNPOWERED_CARD,
    scard.SCARD_W_UNRESPONSIVE_CARD,
    scard.SCARD_F_COMM_ERROR,
    scard.SCARD_E_UNKNOWN_READER,
}


def _u32(code: int) -> int:
    return code & 0xFFFFFFFF


_SERVICE_GONE_U32 = frozenset(c & 0xFFFFFFFF for c in _SERVICE_GONE)
_CARD_GONE_U32 = frozenset(c & 0xFFFFFFFF for c in _CARD_GONE)


def _check(hresult: int, what: str) -> None:
    if hresult == scard.SCARD_S_SUCCESS:
        return
    code = _u32(hresult)
    if code in _SERVICE_GONE_U32:
        raise PcscUnavailableError(f"{what}: PC/SC service unavailable", code)
    if code in _CARD_GONE_U32:
        raise CardRemovedError(f"{what}: card removed or not responding", code)
    if code == _u32(scard.SCARD_E_TIMEOUT):
        raise NoCardError(f"{what}: timed out", code)
    raise TransportError(f"{what} failed", code)


def deadline_in(seconds: float) -> float:
    """An absolute deadline (time.monotonic) `seconds` from now."""
    return time.monotonic() + seconds


def _establish() -> int:
    hresult, hcontext = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise PcscUnavailableError("cannot reach pcscd (is it running?)", _u32(hresult))
    return int(hcontext)


def _release(hcontext: int) -> None:
    scard.SCardReleaseContext(hcontext)


def _list(hcontext: int) -> list[str]:
    hresult, readers = scard.SCardListReaders(hcontext, [])
    if _u32(hresult) in (_u32(scard.SCARD_E_NO_READERS_AVAILABLE),):
        return []
    _check(hresult, "list readers")
    return list(readers)


def list_readers() -> list[str]:
    """Names of the readers pcscd knows. Raises PcscUnavailableError when pcscd is not running."""
    hcontext = _establish()
    try:
        return _list(hcontext)
    finally:
        _release(hcontext)


def resolve_reader(name: str | None, readers: list[str]) -> str:
    """Exact name, else a reader index ("0", "1", ... in PC/SC order), else a unique prefix; None means the first
    reader."""
    if not readers:
        raise NoReaderError("no PC/SC reader found")
    if name is None:
        return readers[0]
    if name in readers:
        return name
    if name.isdigit():
        if int(name) < len(readers):
            return readers[int(name)]
        raise NoReaderError(f"no reader #{name} (readers: {', '.join(readers)})")
    matches = [r for r in readers if r.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    raise NoReaderError(f"reader {name!r} not found (readers: {', '.join(readers)})")


def _wait_state(reader: str | None, want_present: bool, timeout: float) -> tuple[str, bytes]:
    """Wait until `reader` has a (responsive) card, or is empty. Returns (reader name, ATR)."""
    end = deadline_in(timeout)
    hcontext = _establish()
    try:
        name = resolve_reader(reader, _list(hcontext))
        state = scard.SCARD_STATE_UNAWARE
        while True:
            left_ms = max(0, int((end - time.monotonic()) * 1000))
            hresult, states = scard.SCardGetStatusChange(hcontext, min(left_ms, 500), [(name, state)])
            if _u32(hresult) != _u32(scard.SCARD_E_TIMEOUT):
                _check(hresult, f"wait for card in {name}")
                _, event, atr = states[0]
                state = event & ~scard.SCARD_STATE_CHANGED
                if event & scard.SCARD_STATE_UNKNOWN:
                    raise NoReaderError(f"reader {name!r} disappeared")
                present = bool(event & scard.SCARD_STATE_PRESENT) and not event & scard.SCARD_STATE_MUTE
                if want_present and present:
                    return name, bytes(atr)
                if not want_present and event & scard.SCARD_STATE_EMPTY:
                    return name, b""
            if time.monotonic() >= end:
                what = "no card presented" if want_present else "card not removed"
                raise NoCardError(f"{what} in {name!r} within {timeout:g} s")
    finally:
        _release(hcontext)


def wait_for_card(reader: str | None = None, timeout: float = 10.0) -> tuple[str, bytes]:
    """Wait until a card is present in `reader`; returns (reader name, ATR). NoCardError on timeout."""
    return _wait_state(reader, True, timeout)


def wait_for_removal(reader: str | None = None, timeout: float = 10.0) -> str:
    """Wait until `reader` reports EMPTY (do this between back-to-back cards)."""
    return _wait_state(reader, False, timeout)[0]


# --- ATR ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AtrInfo:
    protocols: frozenset[int]
    historical: bytes
    chaining: bool
    extended_length: bool


def parse_atr(atr: bytes) -> AtrInfo:
    """The parts of an ATR (ISO 7816-3 §8) we use: offered protocols and the card-capabilities byte."""
    if len(atr) < 2:
        raise CardProtocolError(f"ATR too short: {atr.hex()}")
    t0 = atr[1]
    k = t0 & 0x0F
    y = t0 >> 4
    i = 2
    protocols: set[int] = set()
    while True:
        i += bin(y & 0x7).count("1")  # TA, TB, TC
        if not y & 0x8:
            break
        if i >= len(atr):
            raise CardProtocolError(f"ATR truncated: {atr.hex()}")
        td = atr[i]
        protocols.add(td & 0x0F)
        y = td >> 4
        i += 1
    historical = bytes(atr[i : i + k])
    if len(historical) != k:
        raise CardProtocolError(f"ATR truncated: {atr.hex()}")
    chaining = extended = False
    if historical[:1] == b"\x80":  # category indicator: compact-TLV follows
        j = 1
        while j < len(historical):
            tag, length = historical[j] >> 4, historical[j] & 0x0F
            value = historical[j + 1 : j + 1 + length]
            if tag == 0x7 and len(value) == 3:  # card capabilities, third software function table
                chaining = bool(value[2] & 0x80)
                extended = bool(value[2] & 0x40)
            j += 1 + length
    return AtrInfo(frozenset(protocols or {0}), historical, chaining, extended)


# --- worker ---------------------------------------------------------------------------------------


class _Worker:
    """One daemon thread that runs the blocking PC/SC calls of a connection, so callers can give up on
    them."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], queue.SimpleQueue[tuple[bool, Any]]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="pcsc-worker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, reply = job
            try:
                reply.put((True, fn()))
            except BaseException as exc:  # handed to the caller
                reply.put((False, exc))

    def call(self, fn: Callable[[], T], deadline: float, what: str) -> T:
        reply: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        self._jobs.put((fn, reply))
        try:
            ok, value = reply.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise CardTimeoutError(f"{what}: card did not answer before the deadline") from None
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    def post(self, fn: Callable[[], object]) -> None:
        """Queue `fn` without waiting for it (its result and errors are dropped)."""
        self._jobs.put((fn, queue.SimpleQueue()))

    def stop(self) -> None:
        self._jobs.put(None)


# --- connection -----------------------------------------------------------------------------------


class PcscConnection:
    """A connection to the card in one reader. Not thread-safe: one caller at a time."""

    def __init__(
        self,
        reader: str | None = None,
        *,
        timeout: float = 10.0,
        extended_length: bool | None = None,
        apdu_timeout: float = DEFAULT_APDU_TIMEOUT,
    ) -> None:
        """Wait up to `timeout` s for a card in `reader` and connect (T=1 or T=0, whichever the card offers).

        `extended_length`: None = use it when the ATR says the card supports it; False = always chain.
        """
        self._wanted_reader = reader
        self._extended_pref = extended_length
        self.apdu_timeout = apdu_timeout
        self._hcontext: int | None = None
        self._hcard: int | None = None
        self._worker: _Worker | None = None
        self.reader = ""
        self.atr = b""
        self.protocol = 0
        self.extended_length = False
        self.atr_info: AtrInfo | None = None
        self._connect(timeout)

    # -- lifecycle --

    def _connect(self, timeout: float) -> None:
        name, _ = wait_for_card(self._wanted_reader, timeout)
        end = deadline_in(max(timeout, self.apdu_timeout))
        self._worker = _Worker()
        try:
            self._open(name, end)
        except CardTimeoutError:
            self._abandon()
            raise
        except BaseException:
            self.close()
            raise

    def _open(self, name: str, end: float) -> None:
        assert self._worker is not None
        hcontext = self._worker.call(_establish, end, "establish context")
        self._hcontext = hcontext

        def connect() -> tuple[int, int]:
            hresult, hcard, protocol = scard.SCardConnect(
                hcontext, name, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
            )
            _check(hresult, f"connect to {name}")
            return int(hcard), int(protocol)

        self._hcard, self.protocol = self._worker.call(connect, end, f"connect to {name}")

        def status() -> bytes:
            hresult, _reader, _state, _proto, atr = scard.SCardStatus(self._hcard)
            _check(hresult, "card status")
            return bytes(atr)

        self.atr = self._worker.call(status, end, "card status")
        self.reader = name
        self.atr_info = parse_atr(self.atr)
        self.extended_length = self.atr_info.extended_length if self._extended_pref is None else self._extended_pref

    def _abandon(self) -> None:
        # The worker may be stuck inside pcscd with the context's lock held: never wait for it. Queue the
        # release behind the stuck call, so the context is freed if that call ever returns (card killed).
        worker, hcontext = self._worker, self._hcontext
        if worker is not None:
            if hcontext is not None:
                worker.post(lambda: scard.SCardReleaseContext(hcontext))
            worker.stop()
        self._worker = None
        self._hcard = None
        self._hcontext = None

    def close(self) -> None:
        """Disconnect (leave the card powered for the next client) and release the context."""
        worker, hcard, hcontext = self._worker, self._hcard, self._hcontext
        self._worker = None
        self._hcard = None
        self._hcontext = None
        if worker is None:
            return

        def release() -> None:
            if hcard is not None:
                scard.SCardDisconnect(hcard, scard.SCARD_LEAVE_CARD)
            if hcontext is not None:
                scard.SCardReleaseContext(hcontext)

        # best effort, the connection is discarded anyway; if the worker is stuck the release stays queued
        with contextlib.suppress(Exception):
            worker.call(release, deadline_in(1.0), "disconnect")
        worker.stop()

    def reconnect(self, timeout: float = 10.0) -> None:
        """Drop this connection and connect again (after a card re-insertion or a pcscd restart).

        Waits up to `timeout` s for pcscd and the card to be back. The card's state (selected applet,
        authentication) is lost: open a new session afterwards."""
        self.close()
        end = deadline_in(timeout)
        while True:
            try:
                self._connect(max(0.1, end - time.monotonic()))
                return
            except (PcscUnavailableError, NoReaderError, CardRemovedError, CardTimeoutError):
                if time.monotonic() >= end:
                    raise
                time.sleep(0.05)

    def __enter__(self) -> PcscConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._hcard is not None

    # -- exchanges --

    def transmit_raw(self, apdu: bytes, deadline: float | None = None) -> bytes:
        """One command → one response, nothing interpreted. Fails by `deadline` (absolute, monotonic)."""
        if not 4 <= len(apdu) <= _MAX_COMMAND:
            # ISO 7816-4 needs a 4-byte header; a 1-byte buffer would even read as a control byte to vpcd
            raise ApduFormatError(f"command APDU of {len(apdu)} bytes")
        worker, hcard = self._worker, self._hcard
        if worker is None or hcard is None:
            raise CardRemovedError("not connected (call reconnect())")
        pci = scard.SCARD_PCI_T1 if self.protocol == scard.SCARD_PROTOCOL_T1 else scard.SCARD_PCI_T0
        command = list(apdu)

        def exchange() -> bytes:
            hresult, response = scard.SCardTransmit(hcard, pci, command)
            _check(hresult, "transmit")
            if not response:
                # vpcd/pcscd report success with no bytes when the card went away mid-command
                raise CardRemovedError("card gave no answer (removed mid-command)")
            return bytes(response)

        if deadline is None:
            deadline = deadline_in(self.apdu_timeout)
        try:
            return worker.call(exchange, deadline, "transmit")
        except CardTimeoutError:
            if worker is self._worker:
                self._abandon()
            raise
        except ConnectionLostError:
            if worker is self._worker:
                self.close()
            raise

    def transmit(self, apdu: bytes, deadline: float | None = None) -> tuple[bytes, int]:
        """Send one APDU and return (data, sw), resolving 61xx (GET RESPONSE) and 6Cxx (resend with Le)."""
        if deadline is None:
            deadline = deadline_in(self.apdu_timeout)
        response = self._decode(self.transmit_raw(apdu, deadline))
        if response.sw1 == 0x6C:
            try:
                cmd = CommandApdu.decode(apdu)
                fixed = CommandApdu(cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data, response.sw2 or 256).encode()
            except ApduFormatError:
                raise CardProtocolError(f"card answered {response.sw:04X} to an extended command") from None
            response = self._decode(self.transmit_raw(fixed, deadline))
        data = bytearray(response.data)
        rounds = 0
        while response.sw1 == 0x61:
            rounds += 1
            if rounds > _MAX_GET_RESPONSE or len(data) > _MAX_RESPONSE:
                raise CardProtocolError("card keeps answering 61xx")
            get_response = CommandApdu(apdu[0] & 0x03, 0xC0, 0x00, 0x00, b"", response.sw2 or 256)
            response = self._decode(self.transmit_raw(get_response.encode(), deadline))
            data += response.data
        return bytes(data), response.sw

    @staticmethod
    def _decode(raw: bytes) -> ResponseApdu:
        try:
            return ResponseApdu.decode(raw)
        except ApduFormatError as exc:
            raise CardProtocolError(str(exc)) from None

    def send(self, cmd: CommandApdu, deadline: float | None = None) -> bytes:
        """Send a command of any size: extended length when the card supports it, else command chaining.
        Returns the response data; raises the typed `ApduError` for any status word other than 9000."""
        if deadline is None:
            deadline = deadline_in(self.apdu_timeout)
        data, sw = self.send_sw(cmd, deadline)
        if sw != 0x9000:
            raise error_for_sw(sw)
        return data

    def send_sw(self, cmd: CommandApdu, deadline: float | None = None) -> tuple[bytes, int]:
        """Like `send` but returns (data, sw) instead of raising on a status word."""
        if deadline is None:
            deadline = deadline_in(self.apdu_timeout)
        if self.extended_length and cmd.needs_extended():
            return self.transmit(cmd.encode(extended=True), deadline)
        le = None if cmd.le is None else min(cmd.le, SHORT_LE_MAX)
        chunks = [cmd.data[i : i + SHORT_LC_MAX] for i in range(0, len(cmd.data), SHORT_LC_MAX)] or [b""]
        for chunk in chunks[:-1]:
            part = CommandApdu(cmd.cla | 0x10, cmd.ins, cmd.p1, cmd.p2, chunk)
            _, sw = self.transmit(part.encode(), deadline)
            if sw != 0x9000:
                return b"", sw
        last = CommandApdu(cmd.cla, cmd.ins, cmd.p1, cmd.p2, chunks[-1], le)
        return self.transmit(last.encode(), deadline)


def connect(
    reader: str | None = None,
    *,
    timeout: float = 10.0,
    extended_length: bool | None = None,
    apdu_timeout: float = DEFAULT_APDU_TIMEOUT,
) -> PcscConnection:
    """Wait for a card in `reader` (None: the first reader) and connect to it."""
    return PcscConnection(reader, timeout=timeout, extended_length=extended_length, apdu_timeout=apdu_timeout)


__all__ = [
    "EXTENDED_LE_MAX",
    "AtrInfo",
    "CardProtocolError",
    "CardRemovedError",
    "CardTimeoutError",
    "ConnectionLostError",
    "NoCardError",
    "NoReaderError",
    "PcscConnection",
    "PcscUnavailableError",
    "TransportError",
    "connect",
    "deadline_in",
    "list_readers",
    "parse_atr",
    "wait_for_card",
    "wait_for_removal",
]
