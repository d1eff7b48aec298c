"""PIV card edge client (NIST SP 800-73-4 part 2, the subset cardbound needs), in the style of yubikit's
piv.py.

One `PivSession` per selected PIV applet, one method per card command. Status words other than 9000 raise the
typed errors of `card.apdu` (each carries `.sw`); malformed card answers raise `PivFormatError`.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from dataclasses import dataclass
from enum import IntEnum
from types import ModuleType

from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from card import tlv
from card.apdu import (
    EXTENDED_LE_MAX,
    SHORT_LE_MAX,
    ApduConnection,
    CommandApdu,
    NotFoundError,
    VerifyError,
    error_for_sw,
)

PIV_AID = bytes.fromhex("A000000308000010000100")


class Ins(IntEnum):
    VERIFY = 0x20
    CHANGE_REFERENCE = 0x24
    RESET_RETRY = 0x2C
    GENERATE_ASYMMETRIC = 0x47
    GENERAL_AUTHENTICATE = 0x87
    SELECT = 0xA4
    GET_RESPONSE = 0xC0
    GET_DATA = 0xCB
    PUT_DATA = 0xDB
    SET_MGMT_KEY = 0xFF  # Yubico extension, also what YubiKeys implement


class Slot(IntEnum):
    AUTHENTICATION = 0x9A
    CARD_MANAGEMENT = 0x9B
    SIGNATURE = 0x9C
    KEY_MANAGEMENT = 0x9D
    CARD_AUTH = 0x9E


class KeyType(IntEnum):
    RSA2048 = 0x07
    ECCP256 = 0x11
    ECCP384 = 0x14


class ManagementKeyType(IntEnum):
    TDES = 0x03
    AES128 = 0x08
    AES192 = 0x0A
    AES256 = 0x0C

    @property
    def key_len(self) -> int:
        return {0x03: 24, 0x08: 16, 0x0A: 24, 0x0C: 32}[self.value]

    @property
    def challenge_len(self) -> int:
        return 8 if self is ManagementKeyType.TDES else 16


class PinRef(IntEnum):
    PIN = 0x80
    PUK = 0x81


class ObjectId(IntEnum):
    CARD_AUTH = 0x5FC101  # X.509 certificate for card authentication (slot 9E)
    CHUID = 0x5FC102
    AUTHENTICATION = 0x5FC105
    SECURITY = 0x5FC106
    CAPABILITY = 0x5FC107  # CCC
    FACIAL = 0x5FC108  # deliberately NOT used for the template, see docs/card.md
    SIGNATURE = 0x5FC10A
    KEY_MANAGEMENT = 0x5FC10B
    DISCOVERY = 0x7E
    # cardbound: the sealed (signed + encrypted) face template. Vendor range 5FFF00-5FFFFF (SP 800-73-4 part 1
    # §3.5), so middleware and auditors never mistake it for the PIV facial image.
    SEALED_TEMPLATE = 0x5FFF10

    @property
    def tag_bytes(self) -> bytes:
        return tlv.encode_tag(self.value)


DEFAULT_MANAGEMENT_KEY = bytes.fromhex("010203040506070801020304050607080102030405060708")
# SP 800-73-4 part 1 §3.1.2 allows a FASC-N of all 9s (agency code 9999) for non-federal issuers; this is its
# BCD encoding, as also written by Yubico's tools.
FASCN_PLACEHOLDER = bytes.fromhex("D4E739DA739CED39CE739D836858210842108421C84210C3EB")
TAG_DYN_AUTH = 0x7C
TAG_WITNESS = 0x80
TAG_CHALLENGE = 0x81
TAG_RESPONSE = 0x82
TAG_DATA = 0x53
TAG_OBJ_ID = 0x5C


class PivFormatError(ValueError):
    """The card returned data that does not follow the PIV data model."""


class BadResponseError(PivFormatError):
    """The card's answer to our management key challenge was wrong: the card does not hold the key we do."""


def _cipher(key_type: ManagementKeyType, key: bytes) -> Cipher[modes.ECB]:
    if len(key) != key_type.key_len:
        raise ValueError(f"{key_type.name} key must be {key_type.key_len} bytes")
    algorithm = TripleDES(key) if key_type is ManagementKeyType.TDES else algorithms.AES(key)
    # ECB on one random block is exactly what SP 800-73-4 specifies for the 9B challenge-response.
    return Cipher(algorithm, modes.ECB())  # noqa: S305


def mgmt_encrypt(key_type: ManagementKeyType, key: bytes, block: bytes) -> bytes:
    enc = _cipher(key_type, key).encryptor()
    return enc.update(block) + enc.finalize()


def mgmt_decrypt(key_type: ManagementKeyType, key: bytes, block: bytes) -> bytes:
    dec = _cipher(key_type, key).decryptor()
    return dec.update(block) + dec.finalize()


@dataclass(frozen=True)
class Chuid:
    """Card Holder Unique Identifier (SP 800-73-4 part 1 §3.1.2, table 9). Unsigned: `signature` stays
    empty."""

    guid: bytes
    expiry: dt.date
    fascn: bytes = FASCN_PLACEHOLDER
    signature: bytes = b""

    def __post_init__(self) -> None:
        if len(self.guid) != 16:
            raise PivFormatError("CHUID GUID must be 16 bytes")
        if len(self.fascn) != 25:
            raise PivFormatError("FASC-N must be 25 bytes")

    def encode(self) -> bytes:
        return tlv.encode_many(
            [
                (0x30, self.fascn),
                (0x34, self.guid),
                (0x35, self.expiry.strftime("%Y%m%d").encode()),
                (0x3E, self.signature),
                (0xFE, b""),
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> Chuid:
        try:
            fields = tlv.parse_dict(data)
            expiry = dt.datetime.strptime(fields[0x35].decode("ascii"), "%Y%m%d").date()
            return cls(guid=fields[0x34], expiry=expiry, fascn=fields[0x30], signature=fields.get(0x3E, b""))
        except (KeyError, UnicodeDecodeError, ValueError) as exc:
            if isinstance(exc, PivFormatError):
                raise
            raise PivFormatError(f"malformed CHUID: {exc}") from None


def encode_ccc(card_id: bytes) -> bytes:
    """A Card Capability Container (SP 800-73-4 part 1 §3.1.1) declaring a PIV data model card."""
    if len(card_id) != 14:
        raise ValueError("CCC card identifier must be 14 bytes")
    return tlv.encode_many(
        [
            (0xF0, bytes.fromhex("A000000116FF02") + card_id),  # GSC-RID, manufacturer, card type, id
            (0xF1, b"\x21"),
            (0xF2, b"\x21"),
            (0xF3, b""),
            (0xF4, b"\x00"),
            (0xF5, b"\x10"),
            (0xF6, b""),
            (0xF7, b""),
            (0xFA, b""),
            (0xFB, b""),
            (0xFC, b""),
            (0xFD, b""),
            (0xFE, b""),
        ]
    )


def encode_certificate_object(cert: x509.Certificate) -> bytes:
    """70 certificate, 71 CertInfo (0 = uncompressed), FE error detection code."""
    der = cert.public_bytes(serialization.Encoding.DER)
    return tlv.encode_many([(0x70, der), (0x71, b"\x00"), (0xFE, b"")])


def decode_certificate_object(data: bytes) -> x509.Certificate:
    try:
        fields = tlv.parse_dict(data)
        if fields.get(0x71, b"\x00") != b"\x00":
            raise PivFormatError("compressed certificates are not supported")
        return x509.load_der_x509_certificate(fields[0x70])
    except (KeyError, ValueError) as exc:
        if isinstance(exc, PivFormatError):
            raise
        raise PivFormatError(f"malformed certificate object: {exc}") from None


def _pin_block(pin: str | bytes) -> bytes:
    raw = pin.encode("ascii") if isinstance(pin, str) else bytes(pin)
    if not 6 <= len(raw) <= 8:
        raise ValueError("PIN/PUK must be 6 to 8 characters")
    return raw.ljust(8, b"\xff")


class PivSession:
    """A selected PIV applet. `deadline` (absolute, time.monotonic) bounds every command when set."""

    def __init__(self, connection: ApduConnection, deadline: float | None = None) -> None:
        self.connection = connection
        self.deadline = deadline
        self.application_property_template = self.select()

    def _send(self, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> bytes:
        return self.connection.send(CommandApdu(0x00, ins, p1, p2, data, le), self.deadline)

    # -- commands, one each --

    def select(self) -> bytes:
        """SELECT the PIV application; returns the Application Property Template (61)."""
        return self._send(Ins.SELECT, 0x04, 0x00, PIV_AID, SHORT_LE_MAX)

    def get_data(self, object_id: int) -> bytes:
        """GET DATA: the object's content (inside tag 53). NotFoundError (6A82) when the object is absent."""
        response = self._send(
            Ins.GET_DATA, 0x3F, 0xFF, tlv.encode(TAG_OBJ_ID, tlv.encode_tag(object_id)), EXTENDED_LE_MAX
        )
        try:
            return tlv.unpack(TAG_DATA, response)
        except tlv.TlvError as exc:
            raise PivFormatError(f"GET DATA {object_id:X}: {exc}") from None

    def get_data_or_none(self, object_id: int) -> bytes | None:
        try:
            return self.get_data(object_id)
        except NotFoundError:
            return None

    def put_data(self, object_id: int, data: bytes) -> None:
        """PUT DATA (needs management key authentication). Empty `data` deletes the object."""
        self._send(
            Ins.PUT_DATA,
            0x3F,
            0xFF,
            tlv.encode(TAG_OBJ_ID, tlv.encode_tag(object_id)) + tlv.encode(TAG_DATA, data),
        )

    def authenticate(self, key_type: ManagementKeyType, management_key: bytes, rng: ModuleType = secrets) -> None:
        """Mutual authentication with the card management key (9B): GENERAL AUTHENTICATE witness/challenge.

        Raises SecurityError when the card rejects our key, BadResponseError when the card's answer is
        wrong."""
        key_type = ManagementKeyType(key_type)
        witness_resp = self._send(
            Ins.GENERAL_AUTHENTICATE,
            key_type,
            Slot.CARD_MANAGEMENT,
            tlv.encode(TAG_DYN_AUTH, tlv.encode(TAG_WITNESS, b"")),
        )
        try:
            encrypted_witness = tlv.parse_dict(tlv.unpack(TAG_DYN_AUTH, witness_resp))[TAG_WITNESS]
        except (tlv.TlvError, KeyError):
            raise PivFormatError("malformed witness from card") from None
        if len(encrypted_witness) != key_type.challenge_len:
            raise PivFormatError("witness has the wrong length")
        witness = mgmt_decrypt(key_type, management_key, encrypted_witness)
        challenge = rng.token_bytes(key_type.challenge_len)
        response = self._send(
            Ins.GENERAL_AUTHENTICATE,
            key_type,
            Slot.CARD_MANAGEMENT,
            tlv.encode(TAG_DYN_AUTH, tlv.encode(TAG_WITNESS, witness) + tlv.encode(TAG_CHALLENGE, challenge)),
        )
        try:
            card_answer = tlv.parse_dict(tlv.unpack(TAG_DYN_AUTH, response))[TAG_RESPONSE]
        except (tlv.TlvError, KeyError):
            raise PivFormatError("malformed challenge response from card") from None
        if not hmac.compare_digest(card_answer, mgmt_encrypt(key_type, management_key, challenge)):
            raise BadResponseError("card failed the management key challenge")

    def generate_key(self, slot: Slot, key_type: KeyType = KeyType.ECCP256) -> ec.EllipticCurvePublicKey:
        """GENERATE ASYMMETRIC KEY PAIR (needs management key authentication); returns the public key."""
        if key_type is not KeyType.ECCP256:
            raise ValueError("only EC P-256 is supported")
        response = self._send(
            Ins.GENERATE_ASYMMETRIC, 0x00, slot, tlv.encode(0xAC, tlv.encode(0x80, bytes([key_type])))
        )
        try:
            point = tlv.parse_dict(tlv.unpack(0x7F49, response))[0x86]
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        except (tlv.TlvError, KeyError, ValueError):
            raise PivFormatError("malformed public key from card") from None

    def sign_challenge(self, slot: Slot, challenge: bytes, key_type: KeyType = KeyType.ECCP256) -> bytes:
        """GENERAL AUTHENTICATE, internal authenticate: the card signs `challenge` (a 32-byte value,
        taken as a
        SHA-256 sized digest) with the key in `slot`. For 9E no PIN is needed (SP 800-116
        contactless/PKI-CAK).
        Returns the DER ECDSA signature."""
        if len(challenge) != 32:
            raise ValueError("challenge must be 32 bytes")
        body = tlv.encode(TAG_RESPONSE, b"") + tlv.encode(TAG_CHALLENGE, challenge)
        response = self._send(Ins.GENERAL_AUTHENTICATE, key_type, slot, tlv.encode(TAG_DYN_AUTH, body), SHORT_LE_MAX)
        try:
            return tlv.parse_dict(tlv.unpack(TAG_DYN_AUTH, response))[TAG_RESPONSE]
        except (tlv.TlvError, KeyError):
            raise PivFormatError("malformed signature response from card") from None

    def verify_pin(self, pin: str) -> None:
        """VERIFY the PIN. VerifyError (with .retries) when wrong; SecurityError 6983 when blocked."""
        self._send(Ins.VERIFY, 0x00, PinRef.PIN, _pin_block(pin))

    def get_pin_attempts(self) -> int:
        """Retries left (VERIFY with no data). Returns -1 when the PIN is already verified in this session."""
        _, sw = self.connection.send_sw(CommandApdu(0x00, Ins.VERIFY, 0x00, PinRef.PIN), self.deadline)
        if sw == 0x9000:
            return -1
        if sw & 0xFFF0 == 0x63C0:
            return sw & 0x0F
        raise error_for_sw(sw, "PIN status")

    def change_reference(self, ref: PinRef, old: str, new: str) -> None:
        """CHANGE REFERENCE DATA for the PIN or PUK."""
        self._send(Ins.CHANGE_REFERENCE, 0x00, ref, _pin_block(old) + _pin_block(new))

    def change_pin(self, old: str, new: str) -> None:
        self.change_reference(PinRef.PIN, old, new)

    def change_puk(self, old: str, new: str) -> None:
        self.change_reference(PinRef.PUK, old, new)

    def unblock_pin(self, puk: str, new_pin: str) -> None:
        """RESET RETRY COUNTER with the PUK."""
        self._send(Ins.RESET_RETRY, 0x00, PinRef.PIN, _pin_block(puk) + _pin_block(new_pin))

    def set_management_key(self, key_type: ManagementKeyType, key: bytes, require_touch: bool = False) -> None:
        """Replace the 9B key (Yubico INS FF; needs management key authentication first)."""
        key_type = ManagementKeyType(key_type)
        if len(key) != key_type.key_len:
            raise ValueError(f"{key_type.name} key must be {key_type.key_len} bytes")
        data = bytes([key_type, Slot.CARD_MANAGEMENT, len(key)]) + key
        self._send(Ins.SET_MGMT_KEY, 0xFF, 0xFE if require_touch else 0xFF, data)

    # -- data objects with structure --

    def get_chuid(self) -> Chuid:
        return Chuid.decode(self.get_data(ObjectId.CHUID))

    def put_chuid(self, chuid: Chuid) -> None:
        self.put_data(ObjectId.CHUID, chuid.encode())

    def get_certificate(self, object_id: ObjectId = ObjectId.CARD_AUTH) -> x509.Certificate:
        return decode_certificate_object(self.get_data(object_id))

    def put_certificate(self, cert: x509.Certificate, object_id: ObjectId = ObjectId.CARD_AUTH) -> None:
        self.put_data(object_id, encode_certificate_object(cert))

    def put_ccc(self, card_id: bytes) -> None:
        self.put_data(ObjectId.CAPABILITY, encode_ccc(card_id))


__all__ = [
    "PIV_AID",
    "BadResponseError",
    "Chuid",
    "Ins",
    "KeyType",
    "ManagementKeyType",
    "ObjectId",
    "PinRef",
    "PivFormatError",
    "PivSession",
    "Slot",
    "VerifyError",
]
