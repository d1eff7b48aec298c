"""Hostile cards for the gate's robustness tests: what a bank card, a transit pass, a broken or malicious card
does in a gate's reader. Served over vpcd by the same loop as the virtual PIV card (`serve`), so pcscd and the gate
see a real card in a real reader.

Modes:
  foreign    answers every command (the PIV SELECT first) with 6A82 "file or application not found"
  mute       answers the ATR, then never answers a command (the reader waits until the gate's own deadline)
  random     SELECT answers 9000, then every reply is random data with a random status word, seeded
  truncated  SELECT answers 9000, then every reply is shorter than a status word (0 or 1 byte)
"""

from __future__ import annotations

import random
import time

from card.virtual.emulator import make_atr

MODES = ("foreign", "mute", "random", "truncated")


class HostileCard:
    """Duck-types `VirtualPivCard` for `card.virtual.vpcd.serve`: `atr`, `reset()`, `process(apdu)`."""

    def __init__(self, mode: str, seed: int = 0) -> None:
        if mode not in MODES:
            raise ValueError(f"hostile mode must be one of {', '.join(MODES)}")
        self.mode = mode
        self.rng = random.Random(seed)
        self.atr = make_atr(False, True)
        self.commands = 0

    def reset(self) -> None:
        pass

    def process(self, raw: bytes) -> bytes:
        self.commands += 1
        is_select = len(raw) >= 2 and raw[1] == 0xA4
        if self.mode == "foreign":
            return b"\x6a\x82"
        if self.mode == "mute":
            while True:  # SIGTERM (card removed) ends the process from its signal handler
                time.sleep(3600)
        if is_select:
            return b"\x90\x00"
        if self.mode == "truncated":
            return bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(2)))
        data = bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(300)))
        sw = self.rng.choice([b"\x90\x00", b"\x61\x10", b"\x6c\x05", b"\x6a\x82", b"\x69\x82",
                              bytes([self.rng.randrange(256), self.rng.randrange(256)])])
        return data + sw
