"""The small subset of COSE (RFC 9052 / RFC 9053) the sealed template uses, over `cbor2` and `cryptography`.

Only what the container needs: strict deterministic CBOR decoding with size limits, the Sig_structure and
Enc_structure, ES256 signatures (DER <-> raw r||s), and the ECDH-ES + A256KW key agreement (alg -31) with the
COSE_KDF_Context of RFC 9053 §5.2. Nothing here knows the container's layout (see `card.sealed`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from enum import IntEnum
from typing import Any, Protocol

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class Header(IntEnum):
    """COSE common header labels (RFC 9052 §3.1, RFC 9360)."""

    ALG = 1
    CONTENT_TYPE = 3
    KID = 4
    IV = 5
    EPHEMERAL_KEY = -1  # ECDH ephemeral public key (RFC 9053 §6.4.1)
    X5CHAIN = 33


class Alg(IntEnum):
    """COSE algorithm identifiers (RFC 9053)."""

    ES256 = -7
    A256GCM = 3
    A256KW = -5
    ECDH_ES_A256KW = -31


class Tag(IntEnum):
    COSE_SIGN1 = 18
    COSE_ENCRYPT = 96


class KeyParam(IntEnum):
    """COSE_Key labels for an EC2 key (RFC 9052 §7, RFC 9053 §7.1)."""

    KTY = 1
    CRV = -1
    X = -2
    Y = -3


KTY_EC2 = 2
CRV_P256 = 1
P256_COORD = 32
ES256_SIGNATURE_LENGTH = 64
CONTENT_TYPE_COSE_SIGN1 = 18  # CoAP content format: application/cose; cose-type="cose-sign1"
CONTENT_TYPE_CBOR = 60  # CoAP content format: application/cbor

_MAX_DEPTH = 8
_ALLOWED_TAGS = frozenset({int(Tag.COSE_SIGN1), int(Tag.COSE_ENCRYPT)})


class CborError(ValueError):
    """The bytes are not the strict deterministic CBOR we accept. `truncated` says whether more bytes
    would have been needed."""

    def __init__(self, message: str, *, truncated: bool = False) -> None:
        super().__init__(message)
        self.truncated = truncated


def _scan(data: bytes | bytearray | memoryview, pos: int, depth: int) -> int:
    """Walk one CBOR item without allocating anything: every declared length is checked against the bytes
    actually present, so a forged length can never make the decoder allocate more than the input size."""
    end = len(data)
    if depth > _MAX_DEPTH:
        raise CborError("CBOR nested too deeply")
    if pos >= end:
        raise CborError("CBOR item truncated", truncated=True)
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if info < 24:
        value = info
    elif info <= 27:
        width = 1 << (info - 24)
        if pos + width > end:
            raise CborError("CBOR length truncated", truncated=True)
        value = int.from_bytes(data[pos : pos + width], "big")
        pos += width
        if value < (24 if width == 1 else 1 << (4 * width)):
            raise CborError("non-minimal CBOR length")
    else:
        raise CborError("indefinite-length or reserved CBOR item")
    if major in (0, 1):
        return pos
    if major in (2, 3):
        if value > end - pos:
            raise CborError("CBOR string runs past the end", truncated=True)
        return pos + value
    if major == 4:
        if value > end - pos:
            raise CborError("CBOR array longer than the data", truncated=True)
        for _ in range(value):
            pos = _scan(data, pos, depth + 1)
        return pos
    if major == 5:
        if 2 * value > end - pos:
            raise CborError("CBOR map longer than the data", truncated=True)
        for _ in range(2 * value):
            pos = _scan(data, pos, depth + 1)
        return pos
    if major == 6:
        if value not in _ALLOWED_TAGS:
            raise CborError(f"unexpected CBOR tag {value}")
        return _scan(data, pos, depth + 1)
    raise CborError("CBOR simple values and floats are not used here")


def dumps(obj: Any) -> bytes:
    """Deterministic CBOR encoding (RFC 8949 §4.2)."""
    return cbor2.dumps(obj, canonical=True)


def loads_strict(data: bytes) -> Any:
    """Decode exactly one deterministic CBOR item filling all of `data`.

    Rejects trailing bytes, indefinite lengths, non-minimal lengths, duplicate or unsorted map keys,
    floats/simple values and unknown tags, so every byte sequence we accept has exactly one meaning: a
    single flipped bit always changes the decoded value (or fails here).
    """
    end = _scan(data, 0, 0)
    if end != len(data):
        raise CborError("trailing bytes after CBOR item")
    try:
        value = cbor2.loads(data, allow_duplicate_keys=False, allow_indefinite=False, max_depth=_MAX_DEPTH + 2)
        canonical = dumps(value)
    except Exception as exc:  # the boundary: whatever cbor2 raises on hostile input becomes one typed error
        raise CborError(f"invalid CBOR: {exc}") from exc
    if canonical != data:
        raise CborError("CBOR is not in deterministic encoding")
    return value


# Wipeable encoding and decoding. A reference template must never sit in an immutable `bytes` object (it cannot be
# wiped and stays in freed memory until reused), but cbor2 only produces and consumes `bytes`. So a secret byte
# string is never given to cbor2: encoding uses a random stand-in of the same length (a CBOR byte string's encoding
# depends only on its length) and the secret is copied into a bytearray at the stand-in's offset; decoding finds the
# secret's span with the allocation-free scanner and hands cbor2 a copy in which that span is zeroed.

SECRET_MIN = 16  # a shorter stand-in could occur elsewhere in the encoding by chance


def dumps_spliced(build: Callable[[bytes], Any], secret: bytes | bytearray | memoryview) -> bytearray:
    """Deterministic CBOR of `build(stand_in)` with `secret` written where the stand-in byte string is, in a
    bytearray the caller wipes. `build` must place the stand-in exactly once, as a byte string. A secret shorter
    than `SECRET_MIN` is encoded as it is (a random stand-in that short could recur by chance; nothing that short is
    a template, which is 512 bytes)."""
    n = len(secret)
    if n < SECRET_MIN:
        return bytearray(dumps(build(bytes(secret))))
    stand_in = os.urandom(n)
    encoded = dumps(build(stand_in))
    at = encoded.find(stand_in)
    if at < 0 or encoded.find(stand_in, at + 1) >= 0:
        raise ValueError("the stand-in must occur exactly once in the encoding")
    out = bytearray(encoded)
    out[at : at + n] = secret
    return out


def _head(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int, int]:
    """(major type, argument, position after the head) of the CBOR item at `pos` (already scanned: well formed)."""
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if info < 24:
        return major, info, pos
    width = 1 << (info - 24)
    return major, int.from_bytes(data[pos : pos + width], "big"), pos + width


def bstr_span(data: bytes | bytearray | memoryview, path: Sequence[int]) -> tuple[int, int]:
    """(start, end) of the content of the byte string that `path` leads to inside the single CBOR item `data`:
    each step is an array index on an array or an unsigned integer key on a map; tags are stepped through.
    Nothing is copied; CborError if the item is not well formed or the path does not lead to a byte string."""
    end = _scan(data, 0, 0)
    if end != len(data):
        raise CborError("trailing bytes after CBOR item")
    pos = 0
    for step in path:
        major, value, pos = _head(data, pos)
        while major == 6:
            major, value, pos = _head(data, pos)
        if major == 4:
            if not 0 <= step < value:
                raise CborError(f"array has no item {step}")
            for _ in range(step):
                pos = _scan(data, pos, 0)
        elif major == 5:
            for _ in range(value):
                key_major, key, after_key = _head(data, pos)
                if key_major == 0 and key == step:
                    pos = after_key
                    break
                pos = _scan(data, _scan(data, pos, 0), 0)
            else:
                raise CborError(f"map has no key {step}")
        else:
            raise CborError("path runs through something that is neither an array nor a map")
    major, value, pos = _head(data, pos)
    if major != 2:
        raise CborError("expected a byte string")
    return pos, pos + value


def loads_masked(data: bytes | bytearray | memoryview, span: tuple[int, int]) -> Any:
    """`loads_strict` of `data` with the bytes of `span` zeroed first (the caller reads the secret from `data`
    itself). Every other byte is checked as strictly as `loads_strict` does; a byte string's content is never
    subject to the deterministic-encoding rules, so zeroing it changes nothing about what is accepted."""
    masked = bytearray(data)
    try:
        masked[span[0] : span[1]] = bytes(span[1] - span[0])
        return loads_strict(bytes(masked))
    finally:
        masked[:] = bytes(len(masked))


def as_array(value: Any, length: int | None = None) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise CborError("expected a CBOR array")
    if length is not None and len(value) != length:
        raise CborError(f"expected a CBOR array of {length} items, got {len(value)}")
    return value


def as_map(value: Any, allowed: frozenset[int | str], required: frozenset[int | str]) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise CborError("expected a CBOR map")
    for key in value:
        # bool is an int in Python; the scanner already refuses CBOR true/false.
        if key not in allowed:
            raise CborError(f"unexpected map key {key!r}")
    missing = required - set(value)
    if missing:
        raise CborError(f"missing map keys {sorted(map(str, missing))}")
    return value


def as_bytes(value: Any, *, min_len: int = 0, max_len: int) -> bytes:
    if not isinstance(value, bytes) or not min_len <= len(value) <= max_len:
        raise CborError("expected a byte string of the right length")
    return value


def as_int(value: Any, *, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise CborError("expected an integer in range")
    return value


def as_text(value: Any, *, max_len: int) -> str:
    if not isinstance(value, str) or len(value) > max_len:
        raise CborError("expected a text string of the right length")
    return value


def sig_structure(body_protected: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """Sig_structure for COSE_Sign1 (RFC 9052 §4.4)."""
    return dumps(["Signature1", body_protected, external_aad, payload])


def enc_structure(protected: bytes, external_aad: bytes = b"") -> bytes:
    """Enc_structure for COSE_Encrypt (RFC 9052 §5.3): the AEAD additional data."""
    return dumps(["Encrypt", protected, external_aad])


def es256_raw(der_signature: bytes) -> bytes:
    """DER ECDSA signature (as `cryptography` makes it) -> COSE raw r||s."""
    r, s = decode_dss_signature(der_signature)
    return r.to_bytes(P256_COORD, "big") + s.to_bytes(P256_COORD, "big")


def es256_der(raw_signature: bytes) -> bytes:
    if len(raw_signature) != ES256_SIGNATURE_LENGTH:
        raise ValueError("ES256 signature must be 64 bytes")
    r = int.from_bytes(raw_signature[:P256_COORD], "big")
    s = int.from_bytes(raw_signature[P256_COORD:], "big")
    return encode_dss_signature(r, s)


def ec2_key(public_key: ec.EllipticCurvePublicKey) -> dict[int, Any]:
    """COSE_Key (EC2, P-256) of a public key, x and y as 32-byte strings."""
    numbers = public_key.public_numbers()
    return {
        KeyParam.KTY: KTY_EC2,
        KeyParam.CRV: CRV_P256,
        KeyParam.X: numbers.x.to_bytes(P256_COORD, "big"),
        KeyParam.Y: numbers.y.to_bytes(P256_COORD, "big"),
    }


_EC2_KEYS: frozenset[int | str] = frozenset(int(k) for k in KeyParam)


def ec2_public_key(value: Any) -> ec.EllipticCurvePublicKey:
    """Parse an EC2 P-256 COSE_Key: CborError on structure, ValueError if the point is not on the curve."""
    key = as_map(value, _EC2_KEYS, _EC2_KEYS)
    if key[KeyParam.KTY] != KTY_EC2 or key[KeyParam.CRV] != CRV_P256:
        raise CborError("ephemeral key is not an EC2 P-256 key")
    x = as_bytes(key[KeyParam.X], min_len=P256_COORD, max_len=P256_COORD)
    y = as_bytes(key[KeyParam.Y], min_len=P256_COORD, max_len=P256_COORD)
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)


class KeyAgreement(Protocol):
    """An EC private key that can agree a secret: `cryptography`'s, or a PKCS#11 handle (card.pkcs11)."""

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes: ...

    def public_key(self) -> ec.EllipticCurvePublicKey: ...


def ecdh_es_kek(
    private_key: KeyAgreement | ec.EllipticCurvePrivateKey,
    peer_public_key: ec.EllipticCurvePublicKey,
    recipient_protected: bytes,
) -> bytes:
    """Key-encryption key for ECDH-ES + A256KW: HKDF-SHA256 over the ECDH secret with the COSE_KDF_Context
    of RFC 9053 §5.2 (AlgorithmID = the key-wrap algorithm, no party info, SuppPubInfo = [256, protected])."""
    shared = private_key.exchange(ec.ECDH(), peer_public_key)
    party_info = [None, None, None]
    context = dumps([int(Alg.A256KW), party_info, party_info, [256, recipient_protected]])
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=context).derive(shared)
