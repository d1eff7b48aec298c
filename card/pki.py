"""The processor's small PKI: issuing CA, enrolment-station certificates, the CRL, card-authentication
certificates, verifier key identifiers and the per-card management key derivation.

Pure functions over `cryptography` objects; no files (see `card.keystore` for storage). Public API:

    new_ec_key() -> ec.EllipticCurvePrivateKey                              # P-256
    make_ca_certificate(key, name, *, now, lifetime) -> x509.Certificate    # self-signed issuing CA
    issue_station_certificate(ca_key, ca_cert, name, public_key, *, now, lifetime) -> x509.Certificate
    issue_card_auth_certificate(ca_key, ca_cert, guid, public_key, *, now, lifetime) -> x509.Certificate
    build_crl(ca_key, ca_cert, revoked: Mapping[int, datetime], *, number, now, lifetime)
        -> x509.CertificateRevocationList
    crl_number(crl) -> int
    verifier_kid(public_key) -> bytes                                       # 8-byte SHA-256 thumbprint
    spki_sha256(public_key) -> bytes                                        # card binding hash
    derive_management_key(master_secret, guid) -> bytes                     # AES-128 key for PIV slot 9B
    derive_management_key_kbkdf(prf, guid) -> bytes     # the same with the master in a token (SP 800-108 KDF)
    check_station_certificate(cert, ca_cert, crl, *, now) -> None           # raises PkiError subclasses
    check_card_auth_certificate(cert, ca_cert, crl, *, now) -> bytes        # returns the GUID from the SAN
    check_trust(ca_cert, crl, *, now, previous_crl_number=None, warn_ahead=3 days) -> TrustHealth
        # the gate's start / self-check: CA profile + validity, CRL signature, thisUpdate, nextUpdate, number

Certificates are told apart by extended key usage, so that no certificate can act in another role: a card's
9E key signs any challenge without a PIN, so a gate must never accept a card-auth certificate as a station.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# EKU for enrolment-station template signing. A 2.25 (UUID) OID: unique without registration (ITU-T X.667).
OID_EKU_TEMPLATE_SIGNING = x509.ObjectIdentifier("2.25.192153949033050852331728176762184023606")
# id-PIV-cardAuth (NIST SP 800-73-4 / FIPS 201-3): EKU of the card-authentication certificate (slot 9E).
OID_EKU_PIV_CARD_AUTH = x509.ObjectIdentifier("2.16.840.1.101.3.6.8")

GUID_LENGTH = 16
KID_LENGTH = 8
MASTER_SECRET_LENGTH = 32
MANAGEMENT_KEY_LENGTH = 16  # AES-128, PIV algorithm 08
# Domain separation for HKDF: changing this string changes every card's management key.
_MGMT_KDF_SALT = b"cardbound/piv/9B/management-key/v1"

DEFAULT_CA_LIFETIME = timedelta(days=3650)
DEFAULT_STATION_LIFETIME = timedelta(days=3 * 365)
DEFAULT_CARD_AUTH_LIFETIME = timedelta(days=5 * 365)
DEFAULT_CRL_LIFETIME = timedelta(days=30)


class PkiError(Exception):
    """A certificate or CRL failed a check. `code` is a stable reason code for audit events."""

    code = "pki_error"


class NotIssuedByCaError(PkiError):
    code = "not_issued_by_ca"


class WrongCertificateRoleError(PkiError):
    code = "wrong_certificate_role"


class CertificateRevokedError(PkiError):
    code = "certificate_revoked"


class CertificateExpiredError(PkiError):
    code = "certificate_expired"


class CertificateNotYetValidError(PkiError):
    code = "certificate_not_yet_valid"


class CrlInvalidError(PkiError):
    code = "crl_invalid"


class CrlStaleError(PkiError):
    code = "crl_stale"


class CaSigner(Protocol):
    """The CA's private key: a `cryptography` EC key, or a PKCS#11 token key (`card.pkcs11.TokenEcKey`)."""

    def public_key(self) -> ec.EllipticCurvePublicKey: ...

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes: ...


# AlgorithmIdentifier ecdsa-with-SHA256 (RFC 5758 §3.2: parameters absent), DER.
_ECDSA_SHA256_ALGID = bytes.fromhex("300a06082a8648ce3d040302")


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _sign(builder: Any, key: CaSigner) -> Any:
    """Sign a certificate or CRL builder with `key`. A `cryptography` key signs directly. Any other signer (an
    HSM key) signs the TBS bytes, and the standard outer structure (RFC 5280 §4.1 / §5.1: SEQUENCE { tbs,
    signatureAlgorithm, BIT STRING signature }) is assembled around them; the TBS comes from the same builder
    signed once with a throw-away P-256 key, so it already names ecdsa-with-SHA256 as its signature algorithm."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return builder.sign(key, hashes.SHA256())
    draft = builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    is_crl = isinstance(draft, x509.CertificateRevocationList)
    tbs = draft.tbs_certlist_bytes if is_crl else draft.tbs_certificate_bytes
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    der = _der(0x30, tbs + _ECDSA_SHA256_ALGID + _der(0x03, b"\x00" + signature))
    public = key.public_key()
    signed: x509.Certificate | x509.CertificateRevocationList
    if is_crl:
        signed = x509.load_der_x509_crl(der)
        ok = signed.is_signature_valid(public)
    else:
        signed = x509.load_der_x509_certificate(der)
        ok = _self_check(signed, public)
    if not ok:
        raise PkiError("the CA signer produced a signature that does not verify")
    return signed


def _sign_cert(builder: x509.CertificateBuilder, key: CaSigner) -> x509.Certificate:
    cert = _sign(builder, key)
    assert isinstance(cert, x509.Certificate)
    return cert


def _sign_crl(builder: x509.CertificateRevocationListBuilder, key: CaSigner) -> x509.CertificateRevocationList:
    crl = _sign(builder, key)
    assert isinstance(crl, x509.CertificateRevocationList)
    return crl


def _self_check(cert: x509.Certificate, public: ec.EllipticCurvePublicKey) -> bool:
    try:
        public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _require_p256(public_key: object) -> ec.EllipticCurvePublicKey:
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, ec.SECP256R1):
        raise ValueError("expected an ECDSA P-256 public key")
    return public_key


def spki_der(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def spki_sha256(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo: what a sealed template binds the card's 9E key by."""
    return hashlib.sha256(spki_der(public_key)).digest()


def verifier_kid(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """Key identifier of a verifier key: SHA-256 thumbprint of its SPKI, truncated to 8 bytes."""
    return spki_sha256(_require_p256(public_key))[:KID_LENGTH]


def derive_management_key(master_secret: bytes, guid: bytes) -> bytes:
    """Per-card PIV management key (slot 9B, AES-128), diversified from a 32-byte master secret and the GUID.

    HKDF-SHA256 (RFC 5869; a two-step KDF approved by NIST SP 800-56C r2 whose expand step is the
    SP 800-108r1 feedback-mode KDF with HMAC). Knowing one card's key reveals nothing about another's.
    """
    if len(master_secret) != MASTER_SECRET_LENGTH:
        raise ValueError(f"master secret must be {MASTER_SECRET_LENGTH} bytes")
    if len(guid) != GUID_LENGTH:
        raise ValueError(f"card GUID must be {GUID_LENGTH} bytes")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=MANAGEMENT_KEY_LENGTH,
        salt=_MGMT_KDF_SALT,
        info=b"AES-128 " + guid,
    )
    return hkdf.derive(master_secret)


def derive_management_key_kbkdf(prf: Callable[[bytes], bytes], guid: bytes) -> bytes:
    """The per-card key when the master is a non-extractable HMAC key in a PKCS#11 token (pkcs11 backend):
    NIST SP 800-108r1 KDF in counter mode with HMAC-SHA256 as PRF, computed by the token (`prf` = its
    `mac`): K(1) = PRF([1]_32 || Label || 0x00 || Context || [128]_32), Label = the domain string above,
    Context = the GUID; the key is its first 16 bytes (`cryptography`'s KBKDFHMAC computes the same, tested).
    The master never leaves the token; only the one card's key does (the desk needs it for the card's 9B
    challenge-response). A keystore uses one derivation for its whole life (the backend is fixed at init)."""
    if len(guid) != GUID_LENGTH:
        raise ValueError(f"card GUID must be {GUID_LENGTH} bytes")
    fixed = _MGMT_KDF_SALT + b"\x00" + bytes(guid) + (8 * MANAGEMENT_KEY_LENGTH).to_bytes(4, "big")
    block = prf((1).to_bytes(4, "big") + fixed)
    if len(block) != 32:
        raise ValueError("the PRF must be HMAC-SHA256")
    return bytes(block[:MANAGEMENT_KEY_LENGTH])


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cardbound"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca_certificate(
    key: CaSigner,
    name: str = "cardbound issuing CA",
    *,
    now: datetime,
    lifetime: timedelta = DEFAULT_CA_LIFETIME,
) -> x509.Certificate:
    subject = _name(name)
    public_key = _require_p256(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    return _sign_cert(builder, key)


def _leaf_builder(
    ca_key: CaSigner,
    ca_cert: x509.Certificate,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    eku: x509.ObjectIdentifier,
    now: datetime,
    lifetime: timedelta,
) -> x509.CertificateBuilder:
    not_after = min(now + lifetime, ca_cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(_require_p256(public_key))
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(_require_p256(ca_key.public_key())),
            critical=False,
        )
    )


def issue_station_certificate(
    ca_key: CaSigner,
    ca_cert: x509.Certificate,
    name: str,
    public_key: ec.EllipticCurvePublicKey,
    *,
    now: datetime,
    lifetime: timedelta = DEFAULT_STATION_LIFETIME,
) -> x509.Certificate:
    """Certificate of an enrolment station's template-signing key (EKU: template signing only)."""
    builder = _leaf_builder(
        ca_key, ca_cert, _name(f"station:{name}"), public_key, OID_EKU_TEMPLATE_SIGNING, now, lifetime
    )
    return _sign_cert(builder, ca_key)


def issue_card_auth_certificate(
    ca_key: CaSigner,
    ca_cert: x509.Certificate,
    guid: bytes,
    public_key: ec.EllipticCurvePublicKey,
    *,
    now: datetime,
    lifetime: timedelta = DEFAULT_CARD_AUTH_LIFETIME,
) -> x509.Certificate:
    """Card-authentication (9E) certificate. As FIPS 201-3 does for PIV, the card UUID is carried as a
    `urn:uuid:` URI in the subjectAltName; EKU id-PIV-cardAuth."""
    if len(guid) != GUID_LENGTH:
        raise ValueError(f"card GUID must be {GUID_LENGTH} bytes")
    urn = uuid.UUID(bytes=guid).urn
    builder = _leaf_builder(
        ca_key, ca_cert, _name(f"card:{guid.hex()}"), public_key, OID_EKU_PIV_CARD_AUTH, now, lifetime
    ).add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(urn)]), critical=False)
    return _sign_cert(builder, ca_key)


def build_crl(
    ca_key: CaSigner,
    ca_cert: x509.Certificate,
    revoked: Mapping[int, datetime],
    *,
    number: int,
    now: datetime,
    lifetime: timedelta = DEFAULT_CRL_LIFETIME,
) -> x509.CertificateRevocationList:
    """A CRL signed by the CA listing `revoked` (serial -> revocation time), with CRL number `number`."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + lifetime)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for serial, when in sorted(revoked.items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    return _sign_crl(builder, ca_key)


def crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return 0


def check_crl(crl: x509.CertificateRevocationList, ca_cert: x509.Certificate) -> None:
    """The CRL is signed by this CA (checked once when a gate loads its trust)."""
    if crl.issuer != ca_cert.subject:
        raise CrlInvalidError("CRL was not issued by the trusted CA")
    ca_public = ca_cert.public_key()
    if not isinstance(ca_public, ec.EllipticCurvePublicKey) or not crl.is_signature_valid(ca_public):
        raise CrlInvalidError("CRL signature is not valid under the trusted CA")


def check_crl_fresh(crl: x509.CertificateRevocationList, *, now: datetime) -> None:
    next_update = crl.next_update_utc
    # Fail closed: a gate whose CRL has passed its next update may be missing revocations.
    if next_update is None or now > next_update:
        raise CrlStaleError(f"CRL expired at {next_update}; load a fresh gate trust bundle")


@dataclass(frozen=True)
class TrustHealth:
    """What a gate's self-check reports about its CA and CRL (`check_trust`). `problems` make a gate refuse to
    start (fail closed); `warnings` are said ahead of time (a CRL close to its next update)."""

    problems: tuple[str, ...]
    warnings: tuple[str, ...]
    crl_number: int
    crl_next_update: datetime | None
    ca_not_after: datetime

    @property
    def ok(self) -> bool:
        return not self.problems


CRL_WARNING_AHEAD = timedelta(days=3)
CLOCK_SKEW = timedelta(minutes=5)


def check_trust(
    ca_cert: x509.Certificate,
    crl: x509.CertificateRevocationList,
    *,
    now: datetime,
    previous_crl_number: int | None = None,
    warn_ahead: timedelta = CRL_WARNING_AHEAD,
) -> TrustHealth:
    """The checks a real verifier makes on its trust anchors, for the gate's start and self-check:
    the CA certificate's profile (CA, keyCertSign + cRLSign) and validity now; the CRL's signature and issuer,
    `thisUpdate` not in the future, `nextUpdate` not passed (and a warning `warn_ahead` before it), and its number
    not lower than the last one this gate accepted (`previous_crl_number`: a replayed old CRL would un-revoke)."""
    problems: list[str] = []
    warnings: list[str] = []
    try:
        basic = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = ca_cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not basic.ca or not usage.key_cert_sign or not usage.crl_sign:
            problems.append("ca_profile: the CA certificate is not a CA with keyCertSign and cRLSign")
    except x509.ExtensionNotFound:
        problems.append("ca_profile: the CA certificate lacks basicConstraints or keyUsage")
    if now > ca_cert.not_valid_after_utc:
        problems.append(f"ca_expired: the CA certificate expired at {ca_cert.not_valid_after_utc.isoformat()}")
    elif now < ca_cert.not_valid_before_utc - CLOCK_SKEW:
        problems.append(f"ca_not_yet_valid: the CA certificate starts at {ca_cert.not_valid_before_utc.isoformat()}")
    try:
        check_crl(crl, ca_cert)
    except CrlInvalidError as exc:
        problems.append(f"crl_invalid: {exc}")
    if crl.last_update_utc > now + CLOCK_SKEW:
        problems.append(f"crl_from_the_future: thisUpdate {crl.last_update_utc.isoformat()} is after now (clock?)")
    number = crl_number(crl)
    if previous_crl_number is not None and number < previous_crl_number:
        problems.append(f"crl_rolled_back: CRL number {number} is lower than {previous_crl_number} already seen")
    next_update = crl.next_update_utc
    if next_update is None or now > next_update:
        problems.append(f"crl_stale: the CRL's nextUpdate {next_update} has passed")
    elif next_update - now <= warn_ahead:
        warnings.append(f"crl_expires_soon: the CRL's nextUpdate is {next_update.isoformat()}; load a fresh bundle")
    return TrustHealth(tuple(problems), tuple(warnings), number, next_update, ca_cert.not_valid_after_utc)


def _check_leaf(
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    crl: x509.CertificateRevocationList,
    eku: x509.ObjectIdentifier,
    role: str,
    now: datetime,
) -> None:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise NotIssuedByCaError(f"{role} certificate was not issued by the trusted CA") from exc
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError) as exc:
        raise WrongCertificateRoleError(f"{role} certificate lacks EKU/basic constraints") from exc
    if basic.ca or eku not in list(usages) or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in list(usages):
        raise WrongCertificateRoleError(f"certificate is not a {role} certificate")
    try:
        key_usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise WrongCertificateRoleError(f"{role} certificate lacks keyUsage") from exc
    if not key_usage.digital_signature or key_usage.key_cert_sign or key_usage.crl_sign:
        raise WrongCertificateRoleError(f"{role} certificate's keyUsage is not digitalSignature only")
    if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
        raise CertificateRevokedError(f"{role} certificate {cert.serial_number:x} is revoked")
    if now > cert.not_valid_after_utc:
        raise CertificateExpiredError(f"{role} certificate expired at {cert.not_valid_after_utc}")
    if now < cert.not_valid_before_utc:
        raise CertificateNotYetValidError(f"{role} certificate not valid before {cert.not_valid_before_utc}")


def check_station_certificate(
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    crl: x509.CertificateRevocationList,
    *,
    now: datetime,
) -> None:
    """Raise a `PkiError` unless `cert` is a current, unrevoked station certificate from this CA."""
    check_crl_fresh(crl, now=now)
    _check_leaf(cert, ca_cert, crl, OID_EKU_TEMPLATE_SIGNING, "station", now)
    _require_p256(cert.public_key())


def card_auth_guid(cert: x509.Certificate) -> bytes:
    """The card GUID from a card-auth certificate's `urn:uuid:` subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError) as exc:
        raise WrongCertificateRoleError("card-auth certificate has no subjectAltName") from exc
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.lower().startswith("urn:uuid:"):
            try:
                return uuid.UUID(uri[len("urn:uuid:") :]).bytes
            except ValueError as exc:
                raise WrongCertificateRoleError("card-auth certificate has a malformed UUID") from exc
    raise WrongCertificateRoleError("card-auth certificate carries no urn:uuid: name")


def check_card_auth_certificate(
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    crl: x509.CertificateRevocationList,
    *,
    now: datetime,
) -> bytes:
    """Check a 9E certificate against the CA and CRL; return the card GUID it names."""
    check_crl_fresh(crl, now=now)
    _check_leaf(cert, ca_cert, crl, OID_EKU_PIV_CARD_AUTH, "card-auth", now)
    _require_p256(cert.public_key())
    return card_auth_guid(cert)
