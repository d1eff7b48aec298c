"""The sealed template: a biometric template signed by the enrolment station, encrypted to the verifiers and
bound to one card. Standard COSE (RFC 9052/9053, RFC 9360), no home-made format.

Public API (enrolment and gate call these)::

    seal(template: bytearray, header: TemplateHeader, binding: CardBinding, station: StationCredentials,
         recipients: EC public key | Sequence[EC public key], *, rng=os.urandom) -> bytes
         # one COSE recipient per verifier key (one per site the holder is admitted to), 1..MAX_RECIPIENTS
    unseal(data: bytes, *, trust: GateTrust, expected: CardBinding, now: datetime) -> UnsealedTemplate
    rewrap(data, *, trust, recipients, now) -> bytes   # key officer: same signed template, new recipients
    recipient_kids(data) -> list[bytes]

    CardBinding(guid: bytes[16], card_key_sha256: bytes[32]);  CardBinding.for_card(guid, public_key_9e)
    TemplateHeader(format_owner, format_type, extractor, model_version, created, expires, quality,
                   visitor_category, holder_ref, samples=None, sample_spread_milli=None)
    StationCredentials(certificate: x509.Certificate, signer: TemplateSigner)  # signer: EC private key or HSM
    GateTrust.create(ca_certificate, crl, verifier_private_keys, *, not_after={kid: datetime}, site=None)
        # all a gate holds (see card.keystore / card.bundles); a key may be an HSM handle (`KeyAgreement`)
    UnsealedTemplate(header, binding, template: bytearray, station_certificate, verifier_kid).wipe()

    SealedTemplateError                # base; every failure of unseal() is one of these, with a `.code`
      MalformedContainerError          #   not our CBOR/COSE structure
        TruncatedContainerError, OversizedContainerError
      UnsupportedFormatError           #   unknown version or algorithm
      UnknownVerifierKeyError          #   no verifier key with that kid, or content key unwrap failed
        NotSealedForThisSiteError      #     none of the recipients is a key of this gate's site
        VerifierKeyExpiredError        #     sealed only to a rotated key of this site whose overlap has ended
      IntegrityError                   #   AES-GCM tag mismatch: ciphertext or authenticated header changed
      UntrustedStationError            #   station cert not issued by the CA / not a station cert
      StationRevokedError              #   station certificate on the CRL
      StationCertificateExpiredError   #   station certificate outside its validity period
      StaleCrlError                    #   the gate's CRL is past its next update (fail closed)
      BadSignatureError                #   ES256 signature does not verify
      TemplateExpiredError / TemplateNotYetValidError
      WrongCardError                   #   bound to another card (GUID or 9E key hash mismatch)
      CardCertificateError             #   from gate_binding(): 9E certificate not valid for this card

    gate_binding(card_auth_certificate, chuid_guid, *, trust, now) -> CardBinding
        # after card authentication: check the 9E certificate against the CA/CRL and the CHUID GUID,
        # and return the binding to pass to unseal() as `expected`

Structure (deterministic CBOR; * = integrity-protected)::

    COSE_Encrypt (tag 96) = [
      *protected {1 alg: 3 A256GCM, 3 content type: 18 COSE_Sign1, "cb.v": 1, "cb.guid": card GUID},
      unprotected {5 IV: 12 bytes},
      *ciphertext = AES-256-GCM(CEK, IV, COSE_Sign1, aad = Enc_structure("Encrypt", protected, h'')),
      [ recipient = [ *protected {1 alg: -31 ECDH-ES+A256KW},
                      unprotected {-1 ephemeral COSE_Key (EC2 P-256), 4 kid: verifier kid},
                      *A256KW(KEK, CEK) ], ... ] ]     # KEK = HKDF-SHA256(ECDH Z, COSE_KDF_Context)
                                                       # one recipient per site key, own ephemeral key each
    COSE_Sign1 (tag 18) = [
      *protected {1 alg: -7 ES256, 3 content type: 60 application/cbor, 33 x5chain: station cert DER},
      unprotected {},
      *payload {1 format owner, 2 format type, 3 extractor, 4 model version, 5 created, 6 expires,
                7 quality, 8 visitor category, 9 holder ref, 10 card GUID, 11 SHA-256(card 9E SPKI),
                12 template, [13 number of samples, 14 sample spread (milli-units)]},
      ES256 signature over Sig_structure("Signature1", protected, h'', payload) ]

Keys 13 and 14 are optional (added after version 1 shipped; containers without them still open): how many
samples the reference averages and the largest distance between two of them (x1000, an integer: the decoder
refuses CBOR floats), so a gate or an auditor can see how consistent the enrolment was.

Sign then encrypt, so that only verifiers learn even the header. The card GUID is in the outer protected
header too (authenticated by GCM, readable before decryption for diagnostics) and must equal the signed one.

Why every single-bit change is rejected: the decoder accepts only deterministic CBOR (one encoding per
value), so a flip that still parses changes a decoded value; every value is either integrity-protected (GCM
over the outer protected header, IV and ciphertext; the recipient protected header through the KDF context;
the ephemeral key through ECDH; the wrapped key through AES-KW's check) or checked exactly (kid, labels).

The template bytes in `UnsealedTemplate.template` are a `bytearray` owned by the caller: call `.wipe()` (or
zero it yourself) as soon as the comparison is done. Nothing in this module keeps a copy, and no copy is ever an
immutable `bytes` object (which could not be wiped and would linger in freed memory): `seal` reads the caller's
bytearray and builds the signed payload, the Sig_structure and the COSE_Sign1 in bytearrays it wipes (the CBOR
encoder only sees a random stand-in, `cose.dumps_spliced`); `unseal` decrypts into a bytearray (`decrypt_into`),
parses it with the template span zeroed (`cose.loads_masked`), copies the template out once and wipes the rest.
The caller wipes its own template after `seal` (`tests/flows/test_parent_memory.py` reads a running gate's memory).
"""

from __future__ import annotations

import contextlib
import hmac
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any, Protocol

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from card import cose, pki
from card.cose import Alg, CborError, Header, KeyAgreement, Tag

FORMAT_VERSION = 1
MAX_SEALED_SIZE = 4096  # hard limit before parsing; a 512-byte template seals to ~1.4 KB
MAX_TEMPLATE_SIZE = 2048
MAX_CERT_SIZE = 1500
MAX_TEXT = 64
MAX_HOLDER_REF = 32
KID_MIN, KID_MAX = 4, 32
IV_LENGTH = 12
CEK_LENGTH = 32
WRAPPED_CEK_LENGTH = CEK_LENGTH + 8
# Each recipient costs ~134 bytes (ephemeral P-256 key, kid, wrapped key): with a 512-byte template, 5 recipients
# keep the container under the 2 KB card object target (measured in tests/card/test_sealed_sites.py).
MAX_RECIPIENTS = 5
TARGET_SEALED_SIZE = 2048
SHA256_LENGTH = 32
CLOCK_SKEW = timedelta(minutes=5)  # tolerated station/gate clock difference for "created"

LABEL_VERSION = "cb.v"
LABEL_GUID = "cb.guid"


class PayloadKey(IntEnum):
    """Keys of the signed payload map (CBEFF-style header, card binding, template)."""

    FORMAT_OWNER = 1
    FORMAT_TYPE = 2
    EXTRACTOR = 3
    MODEL_VERSION = 4
    CREATED = 5
    EXPIRES = 6
    QUALITY = 7
    VISITOR_CATEGORY = 8
    HOLDER_REF = 9
    CARD_GUID = 10
    CARD_KEY_SHA256 = 11
    TEMPLATE = 12
    SAMPLES = 13  # optional
    SAMPLE_SPREAD_MILLI = 14  # optional


_OPTIONAL_PAYLOAD_KEYS = frozenset({int(PayloadKey.SAMPLES), int(PayloadKey.SAMPLE_SPREAD_MILLI)})
MAX_SAMPLES = 100
MAX_SPREAD_MILLI = 2000  # distances between unit templates lie in [0, 2]

# ----------------------------------------------------------------------------------------------- errors


class SealedTemplateError(Exception):
    """A sealed template was rejected. `code` is a stable reason code for audit events and the gate UI."""

    code = "sealed_template_invalid"


class MalformedContainerError(SealedTemplateError):
    code = "container_malformed"


class TruncatedContainerError(MalformedContainerError):
    code = "container_truncated"


class OversizedContainerError(MalformedContainerError):
    code = "container_oversized"


class UnsupportedFormatError(SealedTemplateError):
    code = "container_unsupported"


class UnknownVerifierKeyError(SealedTemplateError):
    code = "verifier_key_unknown"


class NotSealedForThisSiteError(UnknownVerifierKeyError):
    """The template is sealed to other sites' verifier keys only: this gate's site may not read it."""

    code = "sealed_for_other_site"


class VerifierKeyExpiredError(UnknownVerifierKeyError):
    """Sealed only to a rotated verifier key whose overlap period has ended: re-seal at the key officer's station
    (`cardbound keys reseal-card`, no capture) or re-enrol at a desk."""

    code = "verifier_key_expired"


class IntegrityError(SealedTemplateError):
    code = "container_integrity"


class BadSignatureError(SealedTemplateError):
    code = "signature_invalid"


class UntrustedStationError(SealedTemplateError):
    code = "station_untrusted"


class StationRevokedError(SealedTemplateError):
    code = "station_revoked"


class StationCertificateExpiredError(SealedTemplateError):
    code = "station_certificate_expired"


class StaleCrlError(SealedTemplateError):
    code = "crl_stale"


class TemplateExpiredError(SealedTemplateError):
    code = "template_expired"


class TemplateNotYetValidError(SealedTemplateError):
    code = "template_not_yet_valid"


class WrongCardError(SealedTemplateError):
    code = "template_bound_to_other_card"


class CardCertificateError(SealedTemplateError):
    """The card's 9E certificate is not a valid card-auth certificate of this CA for this card's GUID."""

    code = "card_certificate_invalid"


# ----------------------------------------------------------------------------------------------- data


def _utc_seconds(when: datetime, what: str) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware")
    return when.astimezone(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class CardBinding:
    """What ties a template to one card: its GUID (CHUID) and the SHA-256 of its 9E public key SPKI."""

    guid: bytes
    card_key_sha256: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.guid, bytes) or len(self.guid) != pki.GUID_LENGTH:
            raise ValueError(f"card GUID must be {pki.GUID_LENGTH} bytes")
        if not isinstance(self.card_key_sha256, bytes) or len(self.card_key_sha256) != SHA256_LENGTH:
            raise ValueError("card key hash must be 32 bytes")

    @classmethod
    def for_card(cls, guid: bytes, card_auth_public_key: ec.EllipticCurvePublicKey) -> CardBinding:
        return cls(guid, pki.spki_sha256(card_auth_public_key))

    def matches(self, other: CardBinding) -> bool:
        return hmac.compare_digest(self.guid, other.guid) and hmac.compare_digest(
            self.card_key_sha256, other.card_key_sha256
        )


@dataclass(frozen=True)
class TemplateHeader:
    """CBEFF-style header (ISO/IEC 19785, NIST SP 800-76). Times are kept to the second, in UTC."""

    format_owner: int
    format_type: int
    extractor: str
    model_version: str
    created: datetime
    expires: datetime
    quality: int
    visitor_category: str
    holder_ref: bytes  # pseudonymous holder reference, never a name or national number
    samples: int | None = None  # samples averaged into the reference (None: container without key 13)
    sample_spread_milli: int | None = None  # largest pairwise sample distance x1000 (None: not recorded)

    def __post_init__(self) -> None:
        object.__setattr__(self, "created", _utc_seconds(self.created, "created"))
        object.__setattr__(self, "expires", _utc_seconds(self.expires, "expires"))
        for name in ("format_owner", "format_type"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF:
                raise ValueError(f"{name} must be a 16-bit unsigned integer")
        for name in ("extractor", "model_version", "visitor_category"):
            value = getattr(self, name)
            if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT:
                raise ValueError(f"{name} must be a non-empty string of at most {MAX_TEXT} characters")
        if not isinstance(self.quality, int) or isinstance(self.quality, bool) or not 0 <= self.quality <= 100:
            raise ValueError("quality must be 0..100")
        if not isinstance(self.holder_ref, bytes) or not 0 < len(self.holder_ref) <= MAX_HOLDER_REF:
            raise ValueError(f"holder_ref must be 1..{MAX_HOLDER_REF} bytes")
        if self.expires <= self.created:
            raise ValueError("expires must be after created")
        for name, hi in (("samples", MAX_SAMPLES), ("sample_spread_milli", MAX_SPREAD_MILLI)):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= hi):
                raise ValueError(f"{name} must be 0..{hi}")


class TemplateSigner(Protocol):
    """What signs templates: a `cryptography` EC private key, or an HSM/PKCS#11 key with the same method."""

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes: ...


@dataclass(frozen=True)
class StationCredentials:
    certificate: x509.Certificate
    signer: TemplateSigner


@dataclass(frozen=True)
class GateTrust:
    """All a gate needs: the CA certificate, the current CRL and the verifier private key(s) by kid.

    `not_after` gives the end of the overlap period of rotated keys (kid -> time); the current key has none.
    `site` names the port facility whose keys these are (for messages and the inventory).
    Build with `GateTrust.create(...)` (or `card.bundles.load_gate_bundle(dir)`): it checks the CRL's
    signature once, so each unseal only does per-template work.
    """

    ca_certificate: x509.Certificate
    crl: x509.CertificateRevocationList
    verifier_keys: Mapping[bytes, KeyAgreement] = field(repr=False)
    not_after: Mapping[bytes, datetime] = field(default_factory=dict)
    site: str | None = None

    @classmethod
    def create(
        cls,
        ca_certificate: x509.Certificate,
        crl: x509.CertificateRevocationList,
        verifier_private_keys: Iterable[KeyAgreement],
        *,
        not_after: Mapping[bytes, datetime] | None = None,
        site: str | None = None,
    ) -> GateTrust:
        pki.check_crl(crl, ca_certificate)
        keys = {pki.verifier_kid(key.public_key()): key for key in verifier_private_keys}
        if not keys:
            raise ValueError("a gate needs at least one verifier private key")
        return cls(ca_certificate, crl, keys, dict(not_after or {}), site)


@dataclass
class UnsealedTemplate:
    header: TemplateHeader
    binding: CardBinding
    template: bytearray  # caller-owned; wipe after the comparison
    station_certificate: x509.Certificate
    verifier_kid: bytes

    def wipe(self) -> None:
        """Overwrite the template bytes in place, then empty the buffer (if no view of it is still held)."""
        self.template[:] = bytes(len(self.template))  # same length: overwrites in place, no reallocation
        with contextlib.suppress(BufferError):
            del self.template[:]


# ----------------------------------------------------------------------------------------------- seal


def _recipient_keys(recipients: ec.EllipticCurvePublicKey | Sequence[ec.EllipticCurvePublicKey]) -> list[
        ec.EllipticCurvePublicKey]:
    keys = [recipients] if isinstance(recipients, ec.EllipticCurvePublicKey) else list(recipients)
    if not 0 < len(keys) <= MAX_RECIPIENTS:
        raise ValueError(f"a template is sealed to 1..{MAX_RECIPIENTS} verifier keys, not {len(keys)}")
    kids = [pki.verifier_kid(key) for key in keys]
    if len(set(kids)) != len(kids):
        raise ValueError("the same verifier key is listed twice")
    return keys


def _recipients(keys: list[ec.EllipticCurvePublicKey], cek: bytes) -> list[list[Any]]:
    recipient_protected = cose.dumps({Header.ALG: Alg.ECDH_ES_A256KW})
    cose_recipients = []
    for key in keys:
        # RFC 9053 ECDH-ES: a fresh ephemeral key per recipient, so no two recipients share a KEK.
        ephemeral = ec.generate_private_key(ec.SECP256R1())
        kek = cose.ecdh_es_kek(ephemeral, key, recipient_protected)
        cose_recipients.append(
            [
                recipient_protected,
                {Header.EPHEMERAL_KEY: cose.ec2_key(ephemeral.public_key()), Header.KID: pki.verifier_kid(key)},
                aes_key_wrap(kek, cek),
            ]
        )
    return cose_recipients


def seal(
    template: bytes | bytearray,
    header: TemplateHeader,
    binding: CardBinding,
    station: StationCredentials,
    recipients: ec.EllipticCurvePublicKey | Sequence[ec.EllipticCurvePublicKey],
    *,
    rng: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """Sign `template` with the station key, encrypt to every verifier key in `recipients` (one per site the
    holder is admitted to), bind to the card. Returns the COSE_Encrypt bytes to write to the card. Raises
    ValueError on bad input (template too large, too many or duplicate recipients, station certificate that ends
    before the template expires, ...)."""
    keys = _recipient_keys(recipients)
    if not isinstance(template, bytes | bytearray) or not 0 < len(template) <= MAX_TEMPLATE_SIZE:
        raise ValueError(f"template must be 1..{MAX_TEMPLATE_SIZE} bytes")
    cert_der = station.certificate.public_bytes(serialization.Encoding.DER)
    if len(cert_der) > MAX_CERT_SIZE:
        raise ValueError("station certificate too large")
    # A gate checks the station certificate at verification time, so a template must not outlive it.
    if header.expires > station.certificate.not_valid_after_utc:
        raise ValueError("template would outlive the station certificate; renew the station certificate")

    def payload_map(stand_in: bytes) -> dict[int, Any]:
        return {
            PayloadKey.FORMAT_OWNER: header.format_owner,
            PayloadKey.FORMAT_TYPE: header.format_type,
            PayloadKey.EXTRACTOR: header.extractor,
            PayloadKey.MODEL_VERSION: header.model_version,
            PayloadKey.CREATED: int(header.created.timestamp()),
            PayloadKey.EXPIRES: int(header.expires.timestamp()),
            PayloadKey.QUALITY: header.quality,
            PayloadKey.VISITOR_CATEGORY: header.visitor_category,
            PayloadKey.HOLDER_REF: header.holder_ref,
            PayloadKey.CARD_GUID: binding.guid,
            PayloadKey.CARD_KEY_SHA256: binding.card_key_sha256,
            PayloadKey.TEMPLATE: stand_in,
            **({PayloadKey.SAMPLES: header.samples} if header.samples is not None else {}),
            **(
                {PayloadKey.SAMPLE_SPREAD_MILLI: header.sample_spread_milli}
                if header.sample_spread_milli is not None
                else {}
            ),
        }

    sign_protected = cose.dumps(
        {Header.ALG: Alg.ES256, Header.CONTENT_TYPE: cose.CONTENT_TYPE_CBOR, Header.X5CHAIN: cert_der}
    )
    # payload, Sig_structure and COSE_Sign1 all hold the plaintext template: bytearrays, wiped before returning
    payload = cose.dumps_spliced(payload_map, template)
    to_sign = sign1 = bytearray()
    try:
        to_sign = cose.dumps_spliced(lambda p: ["Signature1", sign_protected, b"", p], payload)
        # every signer takes a buffer (cryptography's keys, hashlib in card.pkcs11); the Protocol says bytes
        der_signature = station.signer.sign(to_sign, ec.ECDSA(hashes.SHA256()))  # type: ignore[arg-type]
        raw_signature = cose.es256_raw(der_signature)
        sign1 = cose.dumps_spliced(lambda p: cbor2.CBORTag(Tag.COSE_SIGN1, [sign_protected, {}, p, raw_signature]),
                                   payload)
        return _encrypt(sign1, binding, keys, rng)
    finally:
        for buf in (payload, to_sign, sign1):
            buf[:] = bytes(len(buf))


def _encrypt(sign1: bytearray, binding: CardBinding, keys: list[ec.EllipticCurvePublicKey],
             rng: Callable[[int], bytes]) -> bytes:
    cek = rng(CEK_LENGTH)
    iv = rng(IV_LENGTH)
    enc_protected = cose.dumps(
        {
            Header.ALG: Alg.A256GCM,
            Header.CONTENT_TYPE: cose.CONTENT_TYPE_COSE_SIGN1,
            LABEL_VERSION: FORMAT_VERSION,
            LABEL_GUID: binding.guid,
        }
    )
    ciphertext = AESGCM(cek).encrypt(iv, sign1, cose.enc_structure(enc_protected))

    cose_recipients = _recipients(keys, cek)
    sealed = cose.dumps(cbor2.CBORTag(Tag.COSE_ENCRYPT, [enc_protected, {Header.IV: iv}, ciphertext, cose_recipients]))
    if len(sealed) > MAX_SEALED_SIZE:
        raise ValueError(f"sealed template is {len(sealed)} bytes, over the {MAX_SEALED_SIZE}-byte limit")
    return sealed


# ----------------------------------------------------------------------------------------------- unseal

_ENC_PROTECTED: frozenset[int | str] = frozenset({int(Header.ALG), int(Header.CONTENT_TYPE), LABEL_VERSION, LABEL_GUID})
_ENC_UNPROTECTED: frozenset[int | str] = frozenset({int(Header.IV)})
_RCPT_PROTECTED: frozenset[int | str] = frozenset({int(Header.ALG)})
_RCPT_UNPROTECTED: frozenset[int | str] = frozenset({int(Header.EPHEMERAL_KEY), int(Header.KID)})
_SIGN_PROTECTED: frozenset[int | str] = frozenset({int(Header.ALG), int(Header.CONTENT_TYPE), int(Header.X5CHAIN)})
_PAYLOAD_KEYS: frozenset[int | str] = frozenset(int(k) for k in PayloadKey)
_PAYLOAD_REQUIRED: frozenset[int | str] = _PAYLOAD_KEYS - _OPTIONAL_PAYLOAD_KEYS
_NOTHING: frozenset[int | str] = frozenset()
_MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z


def _decode(data: bytes, what: str) -> Any:
    try:
        return cose.loads_strict(data)
    except CborError as exc:
        cls = TruncatedContainerError if exc.truncated else MalformedContainerError
        raise cls(f"{what}: {exc}") from exc


def _tagged(value: Any, tag: int, length: int, what: str) -> Any:
    if not isinstance(value, cbor2.CBORTag) or value.tag != tag:
        raise MalformedContainerError(f"{what}: not a tagged COSE structure (expected tag {tag})")
    return cose.as_array(value.value, length)


def _recipient(value: Any) -> tuple[bytes, bytes, ec.EllipticCurvePublicKey, bytes]:
    """(kid, protected header bytes, ephemeral key, wrapped CEK) of one ECDH-ES+A256KW recipient."""
    recipient = cose.as_array(value, 3)
    rcpt_protected_bytes = cose.as_bytes(recipient[0], max_len=64)
    rcpt_protected = cose.as_map(_decode(rcpt_protected_bytes, "recipient header"), _RCPT_PROTECTED, _RCPT_PROTECTED)
    if rcpt_protected[Header.ALG] != Alg.ECDH_ES_A256KW:
        raise UnsupportedFormatError(f"unsupported key agreement algorithm {rcpt_protected[Header.ALG]!r}")
    rcpt_unprotected = cose.as_map(recipient[1], _RCPT_UNPROTECTED, _RCPT_UNPROTECTED)
    kid = cose.as_bytes(rcpt_unprotected[Header.KID], min_len=KID_MIN, max_len=KID_MAX)
    wrapped = cose.as_bytes(recipient[2], min_len=WRAPPED_CEK_LENGTH, max_len=WRAPPED_CEK_LENGTH)
    try:
        ephemeral = cose.ec2_public_key(rcpt_unprotected[Header.EPHEMERAL_KEY])
    except CborError:
        raise
    except ValueError as exc:
        raise MalformedContainerError("ephemeral key is not a point on P-256") from exc
    return kid, rcpt_protected_bytes, ephemeral, wrapped


def _decrypt(data: bytes, trust: GateTrust, now: datetime) -> tuple[bytearray, bytes, bytes]:
    """Return (COSE_Sign1 plaintext in a bytearray the caller wipes, GUID from the outer protected header, kid)."""
    outer = _tagged(_decode(data, "container"), Tag.COSE_ENCRYPT, 4, "container")
    enc_protected_bytes = cose.as_bytes(outer[0], max_len=MAX_SEALED_SIZE)
    enc_protected = cose.as_map(_decode(enc_protected_bytes, "protected header"), _ENC_PROTECTED, _ENC_PROTECTED)
    if enc_protected[LABEL_VERSION] != FORMAT_VERSION:
        raise UnsupportedFormatError(f"unsupported container version {enc_protected[LABEL_VERSION]!r}")
    if enc_protected[Header.ALG] != Alg.A256GCM:
        raise UnsupportedFormatError(f"unsupported content encryption {enc_protected[Header.ALG]!r}")
    if enc_protected[Header.CONTENT_TYPE] != cose.CONTENT_TYPE_COSE_SIGN1:
        raise UnsupportedFormatError("unsupported content type")
    guid = cose.as_bytes(enc_protected[LABEL_GUID], min_len=pki.GUID_LENGTH, max_len=pki.GUID_LENGTH)
    unprotected = cose.as_map(outer[1], _ENC_UNPROTECTED, _ENC_UNPROTECTED)
    iv = cose.as_bytes(unprotected[Header.IV], min_len=IV_LENGTH, max_len=IV_LENGTH)
    ciphertext = cose.as_bytes(outer[2], min_len=16, max_len=MAX_SEALED_SIZE)
    recipients = cose.as_array(outer[3])
    if not 0 < len(recipients) <= MAX_RECIPIENTS:
        raise MalformedContainerError(f"container has {len(recipients)} recipients (1..{MAX_RECIPIENTS})")
    parsed = [_recipient(r) for r in recipients]  # every recipient is checked, not only the one we use

    expired: bytes | None = None
    chosen: tuple[bytes, KeyAgreement, bytes, ec.EllipticCurvePublicKey, bytes] | None = None
    for kid, rcpt_protected_bytes, ephemeral, wrapped in parsed:
        for known_kid, key in trust.verifier_keys.items():
            if hmac.compare_digest(known_kid, kid):
                ends = trust.not_after.get(known_kid)
                if ends is not None and now > ends:
                    expired = kid
                elif chosen is None:
                    chosen = (kid, key, rcpt_protected_bytes, ephemeral, wrapped)
    if chosen is None:
        site = f" of site {trust.site}" if trust.site else ""
        if expired is not None:
            raise VerifierKeyExpiredError(
                f"sealed to verifier key {expired.hex()}{site}, whose overlap period has ended: re-seal the card "
                "(`cardbound keys reseal-card`) or re-enrol it"
            )
        listed = ", ".join(p[0].hex() for p in parsed)
        raise NotSealedForThisSiteError(
            f"not sealed for this gate's site{site}: no verifier key of this gate among the recipients ({listed})"
        )
    kid, verifier, rcpt_protected_bytes, ephemeral, wrapped = chosen
    try:
        cek = aes_key_unwrap(cose.ecdh_es_kek(verifier, ephemeral, rcpt_protected_bytes), wrapped)
    except InvalidUnwrap as exc:
        raise UnknownVerifierKeyError("content key unwrap failed: wrong verifier key or altered recipient") from exc
    sign1 = bytearray(len(ciphertext) - 16)  # decrypted in place: the plaintext never exists as `bytes`
    try:
        AESGCM(cek).decrypt_into(iv, ciphertext, cose.enc_structure(enc_protected_bytes), sign1)
    except InvalidTag as exc:
        sign1[:] = bytes(len(sign1))
        raise IntegrityError("authentication tag mismatch: the container was altered") from exc
    return sign1, guid, kid


def _check_station(cert: x509.Certificate, trust: GateTrust, now: datetime) -> None:
    try:
        pki.check_station_certificate(cert, trust.ca_certificate, trust.crl, now=now)
    except pki.CrlStaleError as exc:
        raise StaleCrlError(str(exc)) from exc
    except pki.CertificateRevokedError as exc:
        raise StationRevokedError(str(exc)) from exc
    except (pki.CertificateExpiredError, pki.CertificateNotYetValidError) as exc:
        raise StationCertificateExpiredError(str(exc)) from exc
    except (pki.PkiError, ValueError) as exc:
        raise UntrustedStationError(str(exc)) from exc


def _optional_int(payload: Mapping[Any, Any], key: PayloadKey, hi: int) -> int | None:
    return cose.as_int(payload[key], lo=0, hi=hi) if key in payload else None


def _time(value: Any) -> datetime:
    return datetime.fromtimestamp(cose.as_int(value, lo=0, hi=_MAX_TIMESTAMP), UTC)


def _span(data: bytearray | memoryview, path: Sequence[int], what: str) -> tuple[int, int]:
    try:
        return cose.bstr_span(data, path)
    except CborError as exc:
        cls = TruncatedContainerError if exc.truncated else MalformedContainerError
        raise cls(f"{what}: {exc}") from exc


def _decode_masked(data: bytearray | memoryview, span: tuple[int, int], what: str) -> Any:
    try:
        return cose.loads_masked(data, span)
    except CborError as exc:
        cls = TruncatedContainerError if exc.truncated else MalformedContainerError
        raise cls(f"{what}: {exc}") from exc


def _verify_sign1(
    sign1_plain: bytearray, trust: GateTrust, now: datetime
) -> tuple[Mapping[Any, Any], x509.Certificate, tuple[int, int]]:
    """Check the COSE_Sign1 (held in the caller's bytearray) and return its payload map (template zeroed), the
    station certificate and the template's span in `sign1_plain`. Nothing here copies the template to `bytes`."""
    p0, p1 = _span(sign1_plain, [2], "signed template")  # the payload (plaintext) is only ever used in place
    sign1 = _tagged(_decode_masked(sign1_plain, (p0, p1), "signed template"), Tag.COSE_SIGN1, 4, "signed template")
    protected_bytes = cose.as_bytes(sign1[0], max_len=MAX_SEALED_SIZE)
    protected = cose.as_map(_decode(protected_bytes, "signature header"), _SIGN_PROTECTED, _SIGN_PROTECTED)
    if protected[Header.ALG] != Alg.ES256:
        raise UnsupportedFormatError(f"unsupported signature algorithm {protected[Header.ALG]!r}")
    if protected[Header.CONTENT_TYPE] != cose.CONTENT_TYPE_CBOR:
        raise UnsupportedFormatError("unsupported signed content type")
    cose.as_map(sign1[1], _NOTHING, _NOTHING)
    cose.as_bytes(sign1[2], max_len=MAX_SEALED_SIZE)  # zeros of the payload's length
    signature = cose.as_bytes(sign1[3], min_len=cose.ES256_SIGNATURE_LENGTH, max_len=cose.ES256_SIGNATURE_LENGTH)
    chain = protected[Header.X5CHAIN]
    # RFC 9360: one certificate is a bstr, several an array with the end-entity certificate first.
    leaf_der = chain if isinstance(chain, bytes) else cose.as_array(chain)[0] if chain else None
    leaf_der = cose.as_bytes(leaf_der, min_len=1, max_len=MAX_CERT_SIZE)
    try:
        cert = x509.load_der_x509_certificate(leaf_der)
    except ValueError as exc:
        raise UntrustedStationError("station certificate cannot be parsed") from exc
    _check_station(cert, trust, now)
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)  # checked by pki.check_station_certificate
    payload_plain = memoryview(sign1_plain)[p0:p1]  # a view: no copy
    signed = cose.dumps_spliced(lambda p: ["Signature1", protected_bytes, b"", p], payload_plain)
    try:
        public_key.verify(cose.es256_der(signature), signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise BadSignatureError("template signature does not verify under the station certificate") from exc
    finally:
        signed[:] = bytes(len(signed))
    t0, t1 = _span(payload_plain, [PayloadKey.TEMPLATE], "payload")
    payload = cose.as_map(_decode_masked(payload_plain, (t0, t1), "payload"), _PAYLOAD_KEYS, _PAYLOAD_REQUIRED)
    return payload, cert, (p0 + t0, p0 + t1)


def recipient_kids(data: bytes) -> list[bytes]:
    """The verifier key ids a container is sealed to (readable without any key: they are in the clear)."""
    outer = _tagged(_decode(bytes(data), "container"), Tag.COSE_ENCRYPT, 4, "container")
    return [_recipient(r)[0] for r in cose.as_array(outer[3])]


def rewrap(
    data: bytes,
    *,
    trust: GateTrust,
    recipients: ec.EllipticCurvePublicKey | Sequence[ec.EllipticCurvePublicKey],
    now: datetime,
) -> bytes:
    """Re-seal a container to new verifier keys without a new capture and without touching the signed template.

    Runs where verifier private keys are (the key officer): the content key is unwrapped with any key in `trust`
    (a rotated key past its overlap too), the ciphertext's GCM tag and the station signature are checked, then the
    same protected header, IV and ciphertext are written with fresh recipients. The template is never re-encoded.
    Raises `SealedTemplateError` like `unseal`, ValueError on bad recipients."""
    keys = _recipient_keys(recipients)
    if len(data) > MAX_SEALED_SIZE:
        raise OversizedContainerError(f"sealed template is {len(data)} bytes, limit {MAX_SEALED_SIZE}")
    officer = GateTrust(trust.ca_certificate, trust.crl, trust.verifier_keys, {}, trust.site)  # no overlap end here
    sign1 = bytearray()
    try:
        sign1, _guid, used_kid = _decrypt(bytes(data), officer, now)
        _verify_sign1(sign1, trust, now)  # a revoked or expired station is not re-sealed
        sign1[:] = bytes(len(sign1))  # the plaintext is not needed: only the recipients change
        outer = _tagged(_decode(bytes(data), "container"), Tag.COSE_ENCRYPT, 4, "container")
        cek = b""
        for kid, protected, ephemeral, wrapped in (_recipient(r) for r in cose.as_array(outer[3])):
            if hmac.compare_digest(kid, used_kid):
                cek = aes_key_unwrap(cose.ecdh_es_kek(officer.verifier_keys[used_kid], ephemeral, protected), wrapped)
                break
    except CborError as exc:
        raise MalformedContainerError(str(exc)) from exc
    except InvalidUnwrap as exc:
        raise UnknownVerifierKeyError("content key unwrap failed") from exc
    finally:
        sign1[:] = bytes(len(sign1))
    sealed = cose.dumps(cbor2.CBORTag(Tag.COSE_ENCRYPT, [outer[0], outer[1], outer[2], _recipients(keys, cek)]))
    if len(sealed) > MAX_SEALED_SIZE:
        raise ValueError(f"sealed template is {len(sealed)} bytes, over the {MAX_SEALED_SIZE}-byte limit")
    return sealed


def unseal(data: bytes, *, trust: GateTrust, expected: CardBinding, now: datetime) -> UnsealedTemplate:
    """Check and open a sealed template read from the card whose binding the gate established itself
    (GUID from the CHUID, hash of the 9E key that just passed card authentication).

    Raises a `SealedTemplateError` subclass saying exactly what failed; never returns a partly checked result.
    """
    if not isinstance(data, bytes | bytearray):
        raise MalformedContainerError("sealed template must be bytes")
    if len(data) == 0:
        raise TruncatedContainerError("sealed template is empty")
    if len(data) > MAX_SEALED_SIZE:
        raise OversizedContainerError(f"sealed template is {len(data)} bytes, limit {MAX_SEALED_SIZE}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    sign1 = bytearray()
    try:
        sign1, outer_guid, kid = _decrypt(bytes(data), trust, now)
        payload, cert, (t0, t1) = _verify_sign1(sign1, trust, now)
        header = TemplateHeader(
            format_owner=cose.as_int(payload[PayloadKey.FORMAT_OWNER], lo=0, hi=0xFFFF),
            format_type=cose.as_int(payload[PayloadKey.FORMAT_TYPE], lo=0, hi=0xFFFF),
            extractor=cose.as_text(payload[PayloadKey.EXTRACTOR], max_len=MAX_TEXT),
            model_version=cose.as_text(payload[PayloadKey.MODEL_VERSION], max_len=MAX_TEXT),
            created=_time(payload[PayloadKey.CREATED]),
            expires=_time(payload[PayloadKey.EXPIRES]),
            quality=cose.as_int(payload[PayloadKey.QUALITY], lo=0, hi=100),
            visitor_category=cose.as_text(payload[PayloadKey.VISITOR_CATEGORY], max_len=MAX_TEXT),
            holder_ref=cose.as_bytes(payload[PayloadKey.HOLDER_REF], min_len=1, max_len=MAX_HOLDER_REF),
            samples=_optional_int(payload, PayloadKey.SAMPLES, MAX_SAMPLES),
            sample_spread_milli=_optional_int(payload, PayloadKey.SAMPLE_SPREAD_MILLI, MAX_SPREAD_MILLI),
        )
        binding = CardBinding(
            cose.as_bytes(payload[PayloadKey.CARD_GUID], min_len=pki.GUID_LENGTH, max_len=pki.GUID_LENGTH),
            cose.as_bytes(payload[PayloadKey.CARD_KEY_SHA256], min_len=SHA256_LENGTH, max_len=SHA256_LENGTH),
        )
        cose.as_bytes(payload[PayloadKey.TEMPLATE], min_len=1, max_len=MAX_TEMPLATE_SIZE)  # zeros: its length
        _check_binding_and_time(outer_guid, binding, expected, header, now)
        # the one copy that leaves, a bytearray slice (never `bytes`): the caller's, wiped after the comparison
        return UnsealedTemplate(header, binding, sign1[t0:t1], cert, kid)
    except CborError as exc:
        raise MalformedContainerError(str(exc)) from exc
    except ValueError as exc:  # TemplateHeader/CardBinding validation of signed but nonsensical content
        raise MalformedContainerError(f"signed content is invalid: {exc}") from exc
    finally:
        sign1[:] = bytes(len(sign1))


def _check_binding_and_time(
    outer_guid: bytes, binding: CardBinding, expected: CardBinding, header: TemplateHeader, now: datetime
) -> None:
    if not hmac.compare_digest(outer_guid, binding.guid):
        raise MalformedContainerError("outer and signed card GUIDs differ")
    if not hmac.compare_digest(binding.guid, expected.guid):
        raise WrongCardError(f"template is bound to card {binding.guid.hex()}, not to this card {expected.guid.hex()}")
    if not hmac.compare_digest(binding.card_key_sha256, expected.card_key_sha256):
        raise WrongCardError("template is bound to another card authentication key")
    if header.created > now + CLOCK_SKEW:
        raise TemplateNotYetValidError(f"template created in the future ({header.created.isoformat()})")
    if now >= header.expires:
        raise TemplateExpiredError(f"template expired at {header.expires.isoformat()}")


def gate_binding(
    card_auth_certificate: x509.Certificate, chuid_guid: bytes, *, trust: GateTrust, now: datetime
) -> CardBinding:
    """The binding a gate expects, from what it established itself: call after the card proved possession
    of its 9E key (card.cardauth). Checks the 9E certificate chain, role, validity and revocation against the
    gate's CA and CRL, and that it names the GUID of the card's CHUID."""
    try:
        cert_guid = pki.check_card_auth_certificate(card_auth_certificate, trust.ca_certificate, trust.crl, now=now)
    except pki.CrlStaleError as exc:
        raise StaleCrlError(str(exc)) from exc
    except (pki.PkiError, ValueError) as exc:
        raise CardCertificateError(str(exc)) from exc
    if not hmac.compare_digest(cert_guid, chuid_guid):
        raise CardCertificateError("card-auth certificate names another card than the CHUID")
    public_key = card_auth_certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)  # checked by pki.check_card_auth_certificate
    return CardBinding.for_card(chuid_guid, public_key)
