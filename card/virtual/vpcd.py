"""The card side of the vsmartcard-vpcd protocol, with fault injection for tests.

Wire format (both ways): 2-byte big-endian length + payload. A 1-byte message from vpcd is a control byte:
00 power off, 01 power on, 02 reset (no reply), 04 get ATR (reply: the ATR). Anything longer is a
command APDU;
the reply is the response APDU. Closing the socket is "card removed".
"""

from __future__ import annotations

import signal
import socket
import struct
import time
from dataclasses import dataclass
from types import FrameType

from card.virtual.emulator import VirtualPivCard

VPCD_HOST = "127.0.0.1"
VPCD_BASE_PORT = 35963
CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4


@dataclass(frozen=True)
class Faults:
    """drop_after: answer N APDUs, then close the socket (card pulled) when the next one arrives and exit.
    freeze_after: answer N APDUs, then stop answering (card hangs). delay_ms: wait before each reply."""

    drop_after: int | None = None
    freeze_after: int | None = None
    delay_ms: int = 0


class CardPulled(Exception):
    """Raised inside the loop when the drop fault fires."""


def reader_port(reader: int) -> int:
    return VPCD_BASE_PORT + reader


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        # vpcd sends length and payload in two writes: without QUICKACK every message waits for the
        # delayed-ACK timer (~40 ms). Linux clears QUICKACK after use, so set it before every recv.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("vpcd closed the connection")
        buf += chunk
    return bytes(buf)


def _connect(port: int, stop: list[bool]) -> socket.socket:
    while not stop[0]:
        try:
            sock = socket.create_connection((VPCD_HOST, port), timeout=1.0)
        except OSError:
            time.sleep(0.05)  # pcscd not (yet) listening: keep trying, as a card waits in a reader
            continue
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise SystemExit(0)


def serve(card: VirtualPivCard, reader: int = 0, faults: Faults = Faults()) -> int:
    """Run the card until SIGTERM/SIGINT (exit 0) or until the drop fault pulls it (exit 0).

    If pcscd goes away, reconnect: the card stays "in the reader" across a pcscd restart."""
    stop = [False]

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop[0] = True
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    apdus = 0
    port = reader_port(reader)
    while not stop[0]:
        sock = _connect(port, stop)
        try:
            while True:
                (length,) = struct.unpack(">H", _recv_exact(sock, 2))
                message = _recv_exact(sock, length)
                if length == 1:
                    ctrl = message[0]
                    if ctrl in (CTRL_OFF, CTRL_ON, CTRL_RESET):
                        card.reset()
                    elif ctrl == CTRL_ATR:
                        sock.sendall(struct.pack(">H", len(card.atr)) + card.atr)
                    continue
                if faults.drop_after is not None and apdus >= faults.drop_after:
                    raise CardPulled
                if faults.freeze_after is not None and apdus >= faults.freeze_after:
                    while True:
                        time.sleep(3600)
                apdus += 1
                response = card.process(message)
                if faults.delay_ms:
                    time.sleep(faults.delay_ms / 1000)
                sock.sendall(struct.pack(">H", len(response)) + response)
        except CardPulled:
            sock.close()
            return 0
        except (ConnectionError, OSError):
            sock.close()
            card.reset()
            time.sleep(0.05)
    return 0
