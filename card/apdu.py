"""ISO 7816-4 command and response APDUs, status words and the typed errors that carry them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

SHORT_LC_MAX = 255
SHORT_LE_MAX = 256
EXTENDED_LC_MAX = 65535
EXTENDED_LE_MAX = 65536


class Sw(IntEnum):
    """Status words used by the PIV card edge (SP 800-73-4 part 2 §5.6, ISO 7816-4 §5.1.3)."""

    OK = 0x9000
    WARNING_NOT_CHANGED = 0x6200
    VERIFY_FAIL_NO_RETRY = 0x63C0
    MEMORY_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    LAST_COMMAND_EXPECTED = 0x6883
    CHAINING_NOT_SUPPORTED = 0x6884
    SECURITY_CONDITION_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED = 0x6986
    INCORRECT_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    NOT_ENOUGH_MEMORY = 0x6A84
    INCORRECT_P1P2 = 0x6A86
    REFERENCE_NOT_FOUND = 0x6A88
    WRONG_P1P2 = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00


class ApduFormatError(ValueError):
    """A command or response APDU that cannot be encoded or parsed."""


class ApduError(Exception):
    """The card answered with a status word other than 9000. `sw` is the status word as an int."""

    def __init__(self, sw: int, message: str = "") -> None:
        self.sw = sw
        super().__init__(f"{message + ': ' if message else ''}card returned SW {sw:04X}")


class SecurityError(ApduError):
    """69xx: the security status (authentication, PIN) does not allow the command."""


class NotFoundError(ApduError):
    """6A82 / 6A88: data object, key or application not found."""


class WrongDataError(ApduError):
    """67xx, 6Axx (other than not found), 6Bxx: the card rejected the parameters or data."""


class UnsupportedError(ApduError):
    """6Dxx / 6Exx / 6A81: instruction, class or function not supported by this card."""


class VerifyError(ApduError):
    """63Cx: PIN or PUK wrong; `retries` left."""

    def __init__(self, sw: int, message: str = "") -> None:
        super().__init__(sw, message)
        self.retries = sw & 0x0F


class CardMemoryError(ApduError):
    """65xx / 6A84: the card could not write (memory failure or full)."""


def error_for_sw(sw: int, message: str = "") -> ApduError:
    """The most specific typed error for a status word (callers `raise error_for_sw(sw)`)."""
    sw1 = sw >> 8
    if sw & 0xFFF0 == 0x63C0:
        return VerifyError(sw, message)
    if sw in (0x6A82, 0x6A88):
        return NotFoundError(sw, message)
    if sw in (0x6A81,) or sw1 in (0x6D, 0x6E):
        return UnsupportedError(sw, message)
    if sw1 == 0x69:
        return SecurityError(sw, message)
    if sw1 == 0x65 or sw == 0x6A84:
        return CardMemoryError(sw, message)
    if sw1 in (0x67, 0x6A, 0x6B, 0x6C):
        return WrongDataError(sw, message)
    return ApduError(sw, message)


@dataclass(frozen=True)
class CommandApdu:
    """A command APDU. `le` is the number of bytes expected: None = no Le field, 0 means none expected too;
    use SHORT_LE_MAX / EXTENDED_LE_MAX for "as much as you have"."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            v = getattr(self, name)
            if not 0 <= v <= 0xFF:
                raise ApduFormatError(f"{name} out of range: {v}")
        if len(self.data) > EXTENDED_LC_MAX:
            raise ApduFormatError(f"command data too long: {len(self.data)}")
        if self.le is not None and not 0 <= self.le <= EXTENDED_LE_MAX:
            raise ApduFormatError(f"Le out of range: {self.le}")

    def needs_extended(self) -> bool:
        return len(self.data) > SHORT_LC_MAX or (self.le or 0) > SHORT_LE_MAX

    def encode(self, extended: bool = False) -> bytes:
        """Encode as a short APDU, or as an extended one when `extended` (ISO 7816-4 §5.1)."""
        header = bytes([self.cla, self.ins, self.p1, self.p2])
        le = self.le or 0
        if not extended:
            if self.needs_extended():
                raise ApduFormatError("command needs extended length")
            body = bytes([len(self.data)]) + self.data if self.data else b""
            if le:
                body += bytes([le & 0xFF])  # 256 encodes as 00
            return header + body
        if not self.data and not le:
            return header
        body = b""
        if self.data:
            body = b"\x00" + len(self.data).to_bytes(2, "big") + self.data
        if le:
            le_bytes = (le & 0xFFFF).to_bytes(2, "big")  # 65536 encodes as 0000
            body += le_bytes if self.data else b"\x00" + le_bytes
        return header + body

    @classmethod
    def decode(cls, raw: bytes) -> CommandApdu:
        """Parse a command APDU (cases 1-4, short or extended). Used by the card side and by tests."""
        raw = bytes(raw)
        if len(raw) < 4:
            raise ApduFormatError("APDU shorter than 4 bytes")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        n = len(body)
        if n == 0:
            return cls(cla, ins, p1, p2)
        if n == 1:  # case 2 short
            return cls(cla, ins, p1, p2, b"", body[0] or 256)
        if body[0] != 0:  # short Lc
            lc = body[0]
            if n == 1 + lc:
                return cls(cla, ins, p1, p2, body[1:])
            if n == 2 + lc:
                return cls(cla, ins, p1, p2, body[1 : 1 + lc], body[-1] or 256)
            raise ApduFormatError("short APDU length mismatch")
        # extended: 00 followed by two bytes
        if n == 3:  # case 2 extended
            return cls(cla, ins, p1, p2, b"", int.from_bytes(body[1:3], "big") or 65536)
        if n < 3:
            raise ApduFormatError("truncated extended length")
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0:
            raise ApduFormatError("extended Lc of zero")
        if n == 3 + lc:
            return cls(cla, ins, p1, p2, body[3:])
        if n == 5 + lc:
            return cls(cla, ins, p1, p2, body[3 : 3 + lc], int.from_bytes(body[-2:], "big") or 65536)
        raise ApduFormatError("extended APDU length mismatch")


@dataclass(frozen=True)
class ResponseApdu:
    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @classmethod
    def decode(cls, raw: bytes) -> ResponseApdu:
        raw = bytes(raw)
        if len(raw) < 2:
            raise ApduFormatError(f"response shorter than a status word ({len(raw)} bytes)")
        return cls(raw[:-2], int.from_bytes(raw[-2:], "big"))

    def encode(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")


class ApduConnection(Protocol):
    """What a card-edge session needs from a transport (card.transport.PcscConnection provides it)."""

    def send(self, cmd: CommandApdu, deadline: float | None = None) -> bytes: ...

    def send_sw(self, cmd: CommandApdu, deadline: float | None = None) -> tuple[bytes, int]: ...
