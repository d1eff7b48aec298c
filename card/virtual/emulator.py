"""The card logic of the virtual PIV card: APDU in, APDU out. No I/O except saving the image.

`process()` never raises: every malformed or unexpected command is answered with a status word, as a
card does.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from card import tlv
from card.apdu import ApduFormatError, CommandApdu
from card.piv import PIV_AID, Ins, KeyType, ManagementKeyType, PinRef, Slot, mgmt_encrypt
from card.virtual.image import CardImage

MAX_CHAIN = 16 * 1024  # more than any object we store; a bigger chain is refused with 6A84
MAX_OBJECT = 12 * 1024
WRITE_FREE_OBJECTS: frozenset[int] = frozenset()  # every PUT DATA needs 9B authentication
APT = tlv.encode(
    0x61,
    tlv.encode_many(
        [
            (0x4F, bytes.fromhex("000010000100")),
            (0x79, tlv.encode(0x4F, PIV_AID[:5])),
            (0x50, b"cardbound virtual PIV"),
        ]
    ),
)


class SwError(Exception):
    def __init__(self, sw: int) -> None:
        super().__init__(f"{sw:04X}")
        self.sw = sw


def make_atr(t0: bool, extended: bool) -> bytes:
    """T=1 (or T=0) ATR with a card-capabilities byte announcing chaining and, optionally, extended length."""
    caps = 0x80 | (0x40 if extended else 0x00)
    historical = bytes([0x80, 0x73, 0xC0, 0x21, caps])  # category 80, compact-TLV 73: card capabilities
    if t0:
        return bytes([0x3B, len(historical)]) + historical
    body = bytes([0x80 | len(historical), 0x01]) + historical  # T0 (TD1 present), TD1 = T=1
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes([tck])


@dataclass
class _Chain:
    ins: int
    p1: int
    p2: int
    data: bytearray


class VirtualPivCard:
    """PIV-subset card state machine backed by a `CardImage`."""

    def __init__(self, image: CardImage, *, t0: bool = False, extended: bool = True) -> None:
        self.image = image
        self.t0 = t0
        self.extended = extended and not t0
        self.atr = make_atr(t0, self.extended)
        self.reset()

    def reset(self) -> None:
        """Power cycle: volatile state (selection, authentication, buffers) is lost, the image stays."""
        self.selected = False
        self.mgmt_authenticated = False
        self.pin_verified = False
        self._witness: bytes | None = None
        self._chain: _Chain | None = None
        self._pending = b""

    # -- framing --

    def process(self, raw: bytes) -> bytes:
        try:
            return self._process(bytes(raw))
        except SwError as exc:
            return exc.sw.to_bytes(2, "big")
        except Exception:  # a card answers, it does not crash
            return b"\x6f\x00"

    def _process(self, raw: bytes) -> bytes:
        try:
            cmd = CommandApdu.decode(raw)
        except ApduFormatError:
            self._chain = None
            raise SwError(0x6700) from None
        is_extended = len(raw) >= 7 and raw[4] == 0
        if is_extended and not self.extended:
            raise SwError(0x6700)
        if cmd.cla & 0xE0 or cmd.cla & 0x0F:  # only the interindustry class, no secure messaging / channels
            raise SwError(0x6E00)
        if cmd.ins == Ins.GET_RESPONSE:
            return self._get_response(cmd.le or 256)
        self._pending = b""
        if cmd.cla & 0x10:
            return self._chain_part(cmd)
        data = cmd.data
        if self._chain is not None:
            chain, self._chain = self._chain, None
            # a different command ends an abandoned chain: its data is dropped, never half-applied
            if (chain.ins, chain.p1, chain.p2) == (cmd.ins, cmd.p1, cmd.p2):
                data = bytes(chain.data) + data
        response = self._dispatch(cmd.ins, cmd.p1, cmd.p2, data)
        return self._respond(response, cmd.le, is_extended)

    def _chain_part(self, cmd: CommandApdu) -> bytes:
        if self._chain is None:
            self._chain = _Chain(cmd.ins, cmd.p1, cmd.p2, bytearray())
        elif (self._chain.ins, self._chain.p1, self._chain.p2) != (cmd.ins, cmd.p1, cmd.p2):
            self._chain = None
            raise SwError(0x6883)
        self._chain.data += cmd.data
        if len(self._chain.data) > MAX_CHAIN:
            self._chain = None
            raise SwError(0x6A84)
        return b"\x90\x00"

    def _respond(self, data: bytes, le: int | None, is_extended: bool) -> bytes:
        if not data:
            return b"\x90\x00"
        if is_extended:
            limit = le or 0
            if len(data) <= limit:
                return data + b"\x90\x00"
            self._pending = data[limit:]
            return data[:limit] + self._more()
        if self.t0:
            if le is None:  # T=0 case 4: the card announces the data, the reader fetches it
                self._pending = data
                return self._more()
            if le != len(data) and len(data) < 256:
                raise SwError(0x6C00 | len(data))  # wrong Le: here is the exact length
        limit = le or 256
        if len(data) <= limit:
            return data + b"\x90\x00"
        self._pending = data[limit:]
        return data[:limit] + self._more()

    def _more(self) -> bytes:
        return bytes([0x61, min(len(self._pending), 256) & 0xFF])

    def _get_response(self, le: int) -> bytes:
        if not self._pending:
            raise SwError(0x6985)
        chunk, self._pending = self._pending[:le], self._pending[le:]
        return chunk + (self._more() if self._pending else b"\x90\x00")

    # -- commands --

    def _dispatch(self, ins: int, p1: int, p2: int, data: bytes) -> bytes:
        if ins == Ins.SELECT:
            return self._select(p1, p2, data)
        if not self.selected:
            raise SwError(0x6985)
        handler = {
            Ins.GET_DATA: self._get_data,
            Ins.PUT_DATA: self._put_data,
            Ins.GENERAL_AUTHENTICATE: self._general_authenticate,
            Ins.GENERATE_ASYMMETRIC: self._generate,
            Ins.VERIFY: self._verify,
            Ins.CHANGE_REFERENCE: self._change_reference,
            Ins.RESET_RETRY: self._reset_retry,
            Ins.SET_MGMT_KEY: self._set_mgmt_key,
        }.get(ins)  # type: ignore[call-overload]
        if handler is None:
            raise SwError(0x6D00)
        result: bytes = handler(p1, p2, data)
        return result

    def _select(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 != 0x04:
            raise SwError(0x6A86)
        if len(data) < 5 or not PIV_AID.startswith(data):
            self.selected = False
            raise SwError(0x6A82)
        self.selected = True
        self.mgmt_authenticated = False
        self._witness = None
        return APT

    @staticmethod
    def _object_id(data: bytes) -> tuple[int, bytes]:
        try:
            items = tlv.parse(data)
        except tlv.TlvError:
            raise SwError(0x6A80) from None
        if not items or items[0].tag != 0x5C or not 1 <= len(items[0].value) <= 3:
            raise SwError(0x6A80)
        return int.from_bytes(items[0].value, "big"), b"".join(bytes(i) for i in items[1:])

    def _get_data(self, p1: int, p2: int, data: bytes) -> bytes:
        if (p1, p2) != (0x3F, 0xFF):
            raise SwError(0x6A86)
        object_id, rest = self._object_id(data)
        if rest:
            raise SwError(0x6A80)
        value = self.image.objects.get(object_id)
        if value is None:
            raise SwError(0x6A82)
        return tlv.encode(0x53, value)

    def _put_data(self, p1: int, p2: int, data: bytes) -> bytes:
        if (p1, p2) != (0x3F, 0xFF):
            raise SwError(0x6A86)
        object_id, rest = self._object_id(data)
        if object_id not in WRITE_FREE_OBJECTS and not self.mgmt_authenticated:
            raise SwError(0x6982)
        try:
            value = tlv.unpack(0x53, rest)
        except tlv.TlvError:
            raise SwError(0x6A80) from None
        if len(value) > MAX_OBJECT:
            raise SwError(0x6A84)
        if value:
            self.image.objects[object_id] = value
        else:
            self.image.objects.pop(object_id, None)
        self.image.save()  # committed only now, atomically, with the last APDU of the chain
        return b""

    def _general_authenticate(self, alg: int, key_ref: int, data: bytes) -> bytes:
        try:
            fields = tlv.parse_dict(tlv.unpack(0x7C, data))
        except tlv.TlvError:
            raise SwError(0x6A80) from None
        if key_ref == Slot.CARD_MANAGEMENT:
            return self._mgmt_auth(alg, fields)
        if key_ref in (Slot.CARD_AUTH, Slot.AUTHENTICATION, Slot.SIGNATURE):
            if key_ref != Slot.CARD_AUTH and not self.pin_verified:
                raise SwError(0x6982)
            return self._internal_auth(alg, key_ref, fields)
        raise SwError(0x6A88)

    def _mgmt_auth(self, alg: int, fields: dict[int, bytes]) -> bytes:
        if alg != self.image.mgmt_alg:
            raise SwError(0x6A86)
        key_type = ManagementKeyType(alg)
        key = self.image.mgmt_key
        if fields.get(0x80) == b"" and set(fields) == {0x80}:
            self.mgmt_authenticated = False
            self._witness = secrets.token_bytes(key_type.challenge_len)
            return tlv.encode(0x7C, tlv.encode(0x80, mgmt_encrypt(key_type, key, self._witness)))
        witness, self._witness = self._witness, None
        if witness is None or set(fields) != {0x80, 0x81}:
            raise SwError(0x6985)
        if len(fields[0x80]) != len(witness) or not hmac.compare_digest(fields[0x80], witness):
            raise SwError(0x6982)
        if len(fields[0x81]) != key_type.challenge_len:
            raise SwError(0x6A80)
        self.mgmt_authenticated = True
        return tlv.encode(0x7C, tlv.encode(0x82, mgmt_encrypt(key_type, key, fields[0x81])))

    def _internal_auth(self, alg: int, slot: int, fields: dict[int, bytes]) -> bytes:
        stored = self.image.keys.get(slot)
        if stored is None:
            raise SwError(0x6A88)
        key_alg, der = stored
        if alg != key_alg:
            raise SwError(0x6A86)
        if fields.get(0x82) != b"" or 0x81 not in fields:
            raise SwError(0x6A80)
        challenge = fields[0x81]
        if len(challenge) != 32:
            raise SwError(0x6A80)
        private = serialization.load_der_private_key(der, password=None)
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise SwError(0x6F00)
        signature = private.sign(challenge, ec.ECDSA(Prehashed(hashes.SHA256())))
        return tlv.encode(0x7C, tlv.encode(0x82, signature))

    def _generate(self, p1: int, slot: int, data: bytes) -> bytes:
        if p1 != 0x00 or slot not in (
            Slot.AUTHENTICATION,
            Slot.SIGNATURE,
            Slot.KEY_MANAGEMENT,
            Slot.CARD_AUTH,
        ):
            raise SwError(0x6A86)
        if not self.mgmt_authenticated:
            raise SwError(0x6982)
        try:
            alg = tlv.parse_dict(tlv.unpack(0xAC, data))[0x80]
        except (tlv.TlvError, KeyError):
            raise SwError(0x6A80) from None
        if alg != bytes([KeyType.ECCP256]):
            raise SwError(0x6A80)
        private = ec.generate_private_key(ec.SECP256R1())
        der = private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.image.keys[slot] = (KeyType.ECCP256, der)
        self.image.save()
        point = private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return tlv.encode(0x7F49, tlv.encode(0x86, point))

    @staticmethod
    def _pin_value(block: bytes) -> bytes:
        if len(block) != 8:
            raise SwError(0x6A80)
        return block.rstrip(b"\xff")

    def _check_ref(self, ref: int, value: bytes) -> None:
        """Compare a PIN/PUK, counting tries; blocked after PIN_TRIES wrong ones."""
        is_pin = ref == PinRef.PIN
        tries = self.image.pin_tries if is_pin else self.image.puk_tries
        if tries <= 0:
            raise SwError(0x6983)
        stored = self.image.pin if is_pin else self.image.puk
        if len(value) == len(stored) and hmac.compare_digest(value, stored):
            if is_pin:
                self.image.pin_tries = 3
            else:
                self.image.puk_tries = 3
            self.image.save()
            return
        tries -= 1
        if is_pin:
            self.image.pin_tries = tries
            self.pin_verified = False
        else:
            self.image.puk_tries = tries
        self.image.save()
        raise SwError(0x63C0 | tries)

    def _verify(self, p1: int, ref: int, data: bytes) -> bytes:
        if ref != PinRef.PIN:
            raise SwError(0x6A88)
        if p1 == 0xFF:
            self.pin_verified = False
            return b""
        if p1 != 0x00:
            raise SwError(0x6A86)
        if not data:
            if self.pin_verified:
                return b""
            raise SwError(0x63C0 | self.image.pin_tries)
        self._check_ref(PinRef.PIN, self._pin_value(data))
        self.pin_verified = True
        return b""

    def _change_reference(self, p1: int, ref: int, data: bytes) -> bytes:
        if p1 != 0x00 or ref not in (PinRef.PIN, PinRef.PUK) or len(data) != 16:
            raise SwError(0x6A80)
        old, new = self._pin_value(data[:8]), self._pin_value(data[8:])
        if len(new) < 6:
            raise SwError(0x6A80)
        self._check_ref(ref, old)
        if ref == PinRef.PIN:
            self.image.pin = new
        else:
            self.image.puk = new
        self.image.save()
        return b""

    def _reset_retry(self, p1: int, ref: int, data: bytes) -> bytes:
        if p1 != 0x00 or ref != PinRef.PIN or len(data) != 16:
            raise SwError(0x6A80)
        puk, new = self._pin_value(data[:8]), self._pin_value(data[8:])
        if len(new) < 6:
            raise SwError(0x6A80)
        self._check_ref(PinRef.PUK, puk)
        self.image.pin = new
        self.image.pin_tries = 3
        self.image.save()
        return b""

    def _set_mgmt_key(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 != 0xFF or p2 not in (0xFF, 0xFE):
            raise SwError(0x6A86)
        if not self.mgmt_authenticated:
            raise SwError(0x6982)
        if len(data) < 3 or data[1] != Slot.CARD_MANAGEMENT or data[2] != len(data) - 3:
            raise SwError(0x6A80)
        try:
            key_type = ManagementKeyType(data[0])
        except ValueError:
            raise SwError(0x6A80) from None
        key = data[3:]
        if len(key) != key_type.key_len:
            raise SwError(0x6A80)
        self.image.mgmt_alg = key_type
        self.image.mgmt_key = key
        self.image.save()
        return b""
