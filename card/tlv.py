"""BER-TLV as used by the PIV card edge (SP 800-73-4 part 2 §3.3 / ISO 7816-4 §5.2): encode and parse.

Tags are kept as integers in their on-the-wire form (0x5FC102, 0x7F49) so that code reads like the standard.
Parsing is strict: anything malformed raises `TlvError`, never IndexError or a silent truncation.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


class TlvError(ValueError):
    """Malformed BER-TLV data."""


# Card objects are small; a length of more than 3 bytes (16 MiB) cannot be a valid PIV object.
_MAX_LENGTH_BYTES = 3


def encode_tag(tag: int) -> bytes:
    if tag < 0:
        raise TlvError("negative tag")
    if tag == 0:
        return b"\x00"
    return tag.to_bytes((tag.bit_length() + 7) // 8, "big")


def encode_length(length: int) -> bytes:
    if length < 0:
        raise TlvError("negative length")
    if length < 0x80:
        return bytes([length])
    n = (length.bit_length() + 7) // 8
    if n > _MAX_LENGTH_BYTES:
        raise TlvError(f"length {length} too large")
    return bytes([0x80 | n]) + length.to_bytes(n, "big")


def encode(tag: int, value: bytes) -> bytes:
    """One TLV: tag, definite length, value."""
    return encode_tag(tag) + encode_length(len(value)) + bytes(value)


def encode_many(items: Iterable[tuple[int, bytes]]) -> bytes:
    return b"".join(encode(t, v) for t, v in items)


def _read_tag(data: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(data):
        raise TlvError("truncated tag")
    first = data[offset]
    tag = first
    offset += 1
    if first & 0x1F == 0x1F:  # multi-byte tag: continuation bytes while b8 is set
        for _ in range(3):
            if offset >= len(data):
                raise TlvError("truncated multi-byte tag")
            b = data[offset]
            tag = (tag << 8) | b
            offset += 1
            if not b & 0x80:
                break
        else:
            raise TlvError("tag longer than 4 bytes")
    return tag, offset


def _read_length(data: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(data):
        raise TlvError("truncated length")
    first = data[offset]
    offset += 1
    if first < 0x80:
        return first, offset
    n = first & 0x7F
    if n == 0:
        raise TlvError("indefinite length not allowed")
    if n > _MAX_LENGTH_BYTES:
        raise TlvError("length field too long")
    if offset + n > len(data):
        raise TlvError("truncated length")
    return int.from_bytes(data[offset : offset + n], "big"), offset + n


@dataclass(frozen=True)
class Tlv:
    tag: int
    value: bytes

    def __bytes__(self) -> bytes:
        return encode(self.tag, self.value)


def iter_tlv(data: bytes) -> Iterator[Tlv]:
    """Parse a concatenation of TLVs; the whole input must be consumed."""
    data = bytes(data)
    offset = 0
    while offset < len(data):
        tag, offset = _read_tag(data, offset)
        length, offset = _read_length(data, offset)
        end = offset + length
        if end > len(data):
            raise TlvError(f"value of tag {tag:X} truncated ({len(data) - offset} of {length} bytes)")
        yield Tlv(tag, data[offset:end])
        offset = end


def parse(data: bytes) -> list[Tlv]:
    return list(iter_tlv(data))


def parse_dict(data: bytes) -> dict[int, bytes]:
    """Parse TLVs into tag -> value; a repeated tag is an error (PIV templates never repeat tags)."""
    out: dict[int, bytes] = {}
    for item in iter_tlv(data):
        if item.tag in out:
            raise TlvError(f"duplicate tag {item.tag:X}")
        out[item.tag] = item.value
    return out


def unpack(tag: int, data: bytes) -> bytes:
    """Expect exactly one TLV with `tag` and return its value."""
    items = parse(data)
    if len(items) != 1 or items[0].tag != tag:
        found = ",".join(f"{i.tag:X}" for i in items) or "nothing"
        raise TlvError(f"expected tag {tag:X}, found {found}")
    return items[0].value
