"""Keys in a PKCS#11 token (SoftHSM2 in tests and the demo; a site's HSM module in production), via `python-pkcs11`.

Every private and secret key is generated *in* the token with `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE` true and
`CKA_EXTRACTABLE` false, and used only through it. The objects below have the same methods as the `cryptography`
keys the rest of the code takes, so they plug in where a software key did:

    TokenEcKey       ECDSA P-256 signing (`sign(data, ECDSA(SHA256())) -> DER`: CA, enrolment station) and
                     ECDH (`exchange(ECDH(), peer) -> shared secret`: verifier keys); `public_key()`
    TokenEd25519Key  EdDSA (`sign(data) -> 64 bytes`: audit checkpoints); `public_key()`
    TokenHmacKey     HMAC-SHA256 on a GENERIC_SECRET key (`mac(data) -> 32 bytes`: holder references)

SoftHSM2 2.6.1 facts this relies on (measured, see ../shared/COMPONENT-NOTES.md): no `ECDSA_SHA256`, so we hash with
SHA-256 and sign the digest with `CKM_ECDSA` (raw r‖s, converted to DER for X.509/CMS callers); `CKM_ECDH1_DERIVE`
with `CKD_NULL` returns the raw shared secret (HKDF is then done in software, as COSE ECDH-ES specifies); `CKM_EDDSA`
on `CKK_EC_EDWARDS` keys; `CKM_SHA256_HMAC` on `CKK_GENERIC_SECRET`.

A station home's token: `HOME/token/softhsm2.conf` (`directories.tokendir = HOME/token/store`), named by
`SOFTHSM2_CONF`; the token's files are encrypted under its PIN by SoftHSM2 itself (software, not hardware).
The PIN: `$CARDBOUND_TOKEN_PIN_FILE` (0600) or `$CARDBOUND_TOKEN_PIN`; nothing else (fail closed).

Public API::

    softhsm_init(token_dir, label, *, pin, so_pin) -> Path        # conf file; the token is created if absent
    use_softhsm(token_dir)                                          # point this process at that token directory
    TokenSession.open(label, *, pin=None, module=None) -> TokenSession   # close() / context manager
    session.generate_ec(label, *, usage) / generate_ed25519(label) / generate_hmac(label)
    session.ec_key(label) / ed25519_key(label) / hmac_key(label)    # TokenKeyMissingError if absent
    session.objects() -> list[TokenObject]                          # inventory (label, class, type, extractable)
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pkcs11
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pkcs11 import KDF, Attribute, KeyType, Mechanism, ObjectClass

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
MODULE_ENV = "CARDBOUND_PKCS11_MODULE"
PIN_ENV = "CARDBOUND_TOKEN_PIN"
PIN_FILE_ENV = "CARDBOUND_TOKEN_PIN_FILE"
SOFTHSM_CONF_ENV = "SOFTHSM2_CONF"
P256_OID = "1.2.840.10045.3.1.7"
ED25519_PARAMS = bytes.fromhex("06032b6570")  # DER OBJECT IDENTIFIER 1.3.101.112 (RFC 8410)


class TokenError(Exception):
    """The token cannot be used (module, PIN, key missing). One line for the operator."""


class TokenKeyMissingError(TokenError):
    pass


class Usage(StrEnum):
    SIGN = "sign"  # CA, enrolment station: ECDSA only
    DERIVE = "derive"  # verifier: ECDH only


# Attributes every private or secret key gets: in the token, behind the PIN, never readable, never exportable.
_LOCKED = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.MODIFIABLE: False,
}


def _module() -> str:
    return os.environ.get(MODULE_ENV) or DEFAULT_MODULE


# One logged-in session per token label for the whole process (PKCS#11 login is per application anyway). Key objects
# look their handle up through this on every use, so a module re-initialisation (SoftHSM2 only sees tokens created
# after C_Initialize once it is re-initialised) invalidates nothing that callers hold.
_SESSIONS: dict[str, Any] = {}
_PINS: dict[str, str] = {}


def _reinitialize() -> None:
    loaded = pkcs11._loaded.get(_module())
    if loaded is None or not loaded.initialized:
        return
    _SESSIONS.clear()  # handles die with C_Finalize
    loaded.reinitialize()


def _session(label: str, pin: str | None = None) -> Any:
    found = _SESSIONS.get(label)
    if found is not None:
        return found
    try:
        library = pkcs11.lib(_module())
        token = library.get_token(token_label=label)
        secret = pin if pin is not None else _PINS.get(label) or token_pin()
        try:
            session = token.open(rw=True, user_pin=secret)
        except pkcs11.UserAlreadyLoggedIn:
            session = token.open(rw=True)
    except pkcs11.NoSuchToken:
        raise TokenError(f"no PKCS#11 token labelled {label!r} ({SOFTHSM_CONF_ENV}="
                         f"{os.environ.get(SOFTHSM_CONF_ENV, 'unset')})") from None
    except pkcs11.PinIncorrect:
        raise TokenError(f"wrong PIN for token {label!r}") from None
    except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
        raise TokenError(f"PKCS#11 token {label!r} unusable: {type(exc).__name__}: {exc}") from None
    _SESSIONS[label] = session
    _PINS[label] = secret
    return session


def _object(token_label: str, key_label: str, object_class: ObjectClass, key_type: KeyType) -> Any:
    try:
        return _session(token_label).get_key(object_class=object_class, key_type=key_type, label=key_label)
    except pkcs11.NoSuchKey:
        raise TokenKeyMissingError(f"token {token_label!r} holds no {key_type.name} "
                                   f"{object_class.name.lower()} {key_label!r}") from None
    except pkcs11.MultipleObjectsReturned:
        raise TokenError(f"token {token_label!r} holds several keys labelled {key_label!r}") from None


def softhsm_conf_path(token_dir: Path) -> Path:
    return Path(token_dir) / "softhsm2.conf"


def use_softhsm(token_dir: Path) -> Path:
    """Point this process's SoftHSM2 at `token_dir` (before the module is first loaded, or reinitialised)."""
    conf = softhsm_conf_path(token_dir)
    if not conf.is_file():
        raise TokenError(f"no token at {token_dir} (initialise it with `cardbound keys init --backend pkcs11`)")
    if os.environ.get(SOFTHSM_CONF_ENV) != str(conf):
        os.environ[SOFTHSM_CONF_ENV] = str(conf)
        _reinitialize()  # the module reads SOFTHSM2_CONF in C_Initialize
    return conf


def softhsm_init(token_dir: Path, label: str, *, pin: str, so_pin: str) -> Path:
    """Create `token_dir` (0700) with its SoftHSM2 configuration, and a token `label` in it unless present."""
    token_dir = Path(token_dir)
    store = token_dir / "store"
    store.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(token_dir, 0o700)
    conf = softhsm_conf_path(token_dir)
    if not conf.exists():
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"directories.tokendir = {store}\nobjectstore.backend = file\nlog.level = ERROR\n"
                    "slots.removable = false\n")
    env = {**os.environ, SOFTHSM_CONF_ENV: str(conf)}
    shown = subprocess.run(["softhsm2-util", "--show-slots"], env=env, capture_output=True, text=True, check=False)
    labels = {line.split(":", 1)[1].strip() for line in shown.stdout.splitlines() if line.strip().startswith("Label:")}
    if label not in labels:
        done = subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin],
            env=env, capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            raise TokenError(f"softhsm2-util could not create token {label!r}: {done.stderr.strip() or done.stdout}")
        if os.environ.get(SOFTHSM_CONF_ENV) == str(conf):
            _reinitialize()  # an initialised module does not see a token created after C_Initialize
    use_softhsm(token_dir)
    return conf


def token_pin() -> str:
    path = os.environ.get(PIN_FILE_ENV)
    if path:
        p = Path(path)
        try:
            info = p.stat()
        except OSError as exc:
            raise TokenError(f"${PIN_FILE_ENV}: cannot read {p}: {exc.strerror}") from None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) or info.st_uid != os.geteuid():
            raise TokenError(f"${PIN_FILE_ENV}: {p} must be this user's and not readable by others (chmod 600)")
        pin = p.read_text().split("\n", 1)[0].strip()
    else:
        pin = os.environ.get(PIN_ENV, "")
    if not pin:
        raise TokenError(f"the token PIN is needed: set ${PIN_FILE_ENV} (a 0600 file) or ${PIN_ENV}")
    return pin


def _public_point(public_obj: Any) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING around the point (PKCS#11 v2.40 §2.3.3); return the point."""
    raw = bytes(public_obj[Attribute.EC_POINT])
    if raw[:1] == b"\x04" and len(raw) >= 2:
        length = raw[1]
        if length < 0x80 and len(raw) == 2 + length:
            return raw[2:]
        if length == 0x81 and len(raw) == 3 + raw[2]:
            return raw[3:]
    return raw


class TokenEcKey:
    """An EC P-256 key pair in the token; the private half never leaves it."""

    def __init__(self, token_label: str, label: str, public: ec.EllipticCurvePublicKey) -> None:
        self.token_label = token_label
        self.label = label
        self._public = public

    @property
    def _private(self) -> Any:
        return _object(self.token_label, self.label, ObjectClass.PRIVATE_KEY, KeyType.EC)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        """ECDSA P-256 with SHA-256, DER-encoded like `cryptography`'s (SoftHSM2 has CKM_ECDSA only)."""
        if not isinstance(signature_algorithm, ec.ECDSA) or not isinstance(signature_algorithm.algorithm,
                                                                            hashes.SHA256):
            raise TokenError("token keys sign ECDSA with SHA-256 only")
        raw = self.sign_raw(data)
        return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))

    def sign_raw(self, data: bytes) -> bytes:
        """r‖s (64 bytes) over SHA-256(data): what COSE ES256 carries."""
        try:
            return bytes(self._private.sign(hashlib.sha256(data).digest(), mechanism=Mechanism.ECDSA))
        except AttributeError:  # python-pkcs11 offers sign() only on a key with CKA_SIGN
            raise TokenError(f"token key {self.label} is not a signing key") from None
        except pkcs11.PKCS11Error as exc:
            raise TokenError(f"token refused to sign with {self.label}: {type(exc).__name__}") from None

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        """Raw ECDH shared secret (CKM_ECDH1_DERIVE, CKD_NULL); the derived object lives in the session only."""
        if not isinstance(algorithm, ec.ECDH):
            raise TokenError("only ECDH key agreement")
        point = peer_public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        try:
            secret = self._private.derive_key(
                KeyType.GENERIC_SECRET, 256, mechanism_param=(KDF.NULL, None, point),
                template={Attribute.TOKEN: False, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
            )
            value = bytes(secret[Attribute.VALUE])
            secret.destroy()
            return value
        except AttributeError:  # derive_key() exists only on a key with CKA_DERIVE
            raise TokenError(f"token key {self.label} is not a key-agreement key") from None
        except pkcs11.PKCS11Error as exc:
            raise TokenError(f"token refused ECDH with {self.label}: {type(exc).__name__}") from None


class TokenEd25519Key:
    """An Ed25519 key pair in the token (audit checkpoints: signed notes)."""

    def __init__(self, token_label: str, label: str, public_raw: bytes) -> None:
        self.token_label = token_label
        self.label = label
        self._public = ed25519.Ed25519PublicKey.from_public_bytes(public_raw)

    @property
    def _private(self) -> Any:
        return _object(self.token_label, self.label, ObjectClass.PRIVATE_KEY, KeyType.EC_EDWARDS)

    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        try:
            return bytes(self._private.sign(data, mechanism=Mechanism.EDDSA))
        except pkcs11.PKCS11Error as exc:
            raise TokenError(f"token refused to sign with {self.label}: {type(exc).__name__}") from None


class TokenHmacKey:
    """A non-extractable HMAC-SHA256 key (holder references: HMAC(key, national register number)).
    Implements `card.holderref.HolderRefKey`: the desk and the gate use it through the token, never its value."""

    backend = "token"

    def __init__(self, token_label: str, label: str) -> None:
        self.token_label = token_label
        self.label = label
        self._key_id: str | None = None

    @property
    def key_id(self) -> str:
        """Public fingerprint (card.holderref.fingerprint), computed once through the token."""
        if self._key_id is None:
            from card.holderref import fingerprint

            self._key_id = fingerprint(self)
        return self._key_id

    def __repr__(self) -> str:
        return f"TokenHmacKey(token={self.token_label!r}, label={self.label!r})"

    def mac(self, data: bytes) -> bytes:
        try:
            key = _object(self.token_label, self.label, ObjectClass.SECRET_KEY, KeyType.GENERIC_SECRET)
            return bytes(key.sign(bytes(data), mechanism=Mechanism.SHA256_HMAC))
        except AttributeError:  # python-pkcs11 offers sign() only on a key with CKA_SIGN
            raise TokenError(f"token key {self.label} is not an HMAC key") from None
        except pkcs11.PKCS11Error as exc:
            raise TokenError(f"token refused HMAC with {self.label}: {type(exc).__name__}") from None


@dataclass(frozen=True)
class TokenObject:
    label: str
    object_class: str
    key_type: str
    extractable: bool | None
    sensitive: bool | None


class TokenSession:
    """A logged-in read-write session on one token (shared by the process; see `_session`)."""

    def __init__(self, label: str) -> None:
        self.label = label

    @classmethod
    def open(cls, label: str, *, pin: str | None = None, module: str | None = None) -> TokenSession:
        if module is not None:
            os.environ[MODULE_ENV] = module
        if pin is not None and label in _SESSIONS and _PINS.get(label) != pin:
            raise TokenError(f"wrong PIN for token {label!r}")
        _session(label, pin)
        return cls(label)

    @property
    def _session(self) -> Any:
        return _session(self.label)

    def close(self) -> None:
        """Sessions are shared by the process and closed at exit; nothing to do per user."""

    def __enter__(self) -> TokenSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exists(self, label: str) -> bool:
        return any(True for _ in self._session.get_objects({Attribute.LABEL: label}))

    def _refuse_duplicate(self, label: str) -> None:
        if self._exists(label):
            raise TokenError(f"the token already holds a key labelled {label!r}")

    def generate_ec(self, label: str, *, usage: Usage) -> TokenEcKey:
        self._refuse_duplicate(label)
        params = self._session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: pkcs11.util.ec.encode_named_curve_parameters(P256_OID)}, local=True
        )
        private_template = {**_LOCKED, Attribute.SIGN: usage is Usage.SIGN, Attribute.DERIVE: usage is Usage.DERIVE,
                            Attribute.DECRYPT: False, Attribute.UNWRAP: False}
        public_template = {Attribute.TOKEN: True, Attribute.VERIFY: usage is Usage.SIGN,
                           Attribute.DERIVE: usage is Usage.DERIVE}
        params.generate_keypair(store=True, label=label, private_template=private_template,
                                public_template=public_template, mechanism=Mechanism.EC_KEY_PAIR_GEN)
        return self.ec_key(label)

    def ec_key(self, label: str) -> TokenEcKey:
        self._get(label, ObjectClass.PRIVATE_KEY, KeyType.EC)
        public_obj = self._get(label, ObjectClass.PUBLIC_KEY, KeyType.EC)
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _public_point(public_obj))
        return TokenEcKey(self.label, label, public)

    def generate_ed25519(self, label: str) -> TokenEd25519Key:
        self._refuse_duplicate(label)
        params = self._session.create_domain_parameters(
            KeyType.EC_EDWARDS, {Attribute.EC_PARAMS: ED25519_PARAMS}, local=True
        )
        params.generate_keypair(store=True, label=label,
                                private_template={**_LOCKED, Attribute.SIGN: True, Attribute.DERIVE: False},
                                public_template={Attribute.TOKEN: True, Attribute.VERIFY: True},
                                mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN)
        return self.ed25519_key(label)

    def ed25519_key(self, label: str) -> TokenEd25519Key:
        self._get(label, ObjectClass.PRIVATE_KEY, KeyType.EC_EDWARDS)
        public_obj = self._get(label, ObjectClass.PUBLIC_KEY, KeyType.EC_EDWARDS)
        return TokenEd25519Key(self.label, label, _public_point(public_obj))

    def generate_hmac(self, label: str) -> TokenHmacKey:
        self._refuse_duplicate(label)
        self._session.generate_key(
            KeyType.GENERIC_SECRET, 256, store=True, label=label,
            template={**_LOCKED, Attribute.SIGN: True, Attribute.VERIFY: True, Attribute.ENCRYPT: False,
                      Attribute.DERIVE: False, Attribute.WRAP: False},
            mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
        )
        return self.hmac_key(label)

    def hmac_key(self, label: str) -> TokenHmacKey:
        self._get(label, ObjectClass.SECRET_KEY, KeyType.GENERIC_SECRET)
        return TokenHmacKey(self.label, label)

    def _get(self, label: str, object_class: ObjectClass, key_type: KeyType) -> Any:
        return _object(self.label, label, object_class, key_type)

    def destroy(self, label: str) -> int:
        """Delete every object labelled `label` (a revoked station's key, a retired verifier key)."""
        objects = list(self._session.get_objects({Attribute.LABEL: label}))
        for obj in objects:
            obj.destroy()
        return len(objects)

    def objects(self) -> list[TokenObject]:
        found = []
        for obj in self._session.get_objects():
            klass = ObjectClass(obj[Attribute.CLASS])
            secret = klass in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY)
            found.append(TokenObject(
                label=str(obj[Attribute.LABEL]), object_class=klass.name.lower(),
                key_type=KeyType(obj[Attribute.KEY_TYPE]).name.lower(),
                extractable=bool(obj[Attribute.EXTRACTABLE]) if secret else None,
                sensitive=bool(obj[Attribute.SENSITIVE]) if secret else None,
            ))
        return sorted(found, key=lambda o: (o.label, o.object_class))
