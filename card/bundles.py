"""Role bundles: what an enrolment desk and a gate hold, written by the key officer, checked by the station at start.

A station never opens the processor keystore (that holds the CA key, and every site's verifier keys): the key
officer exports a bundle per station with `cardbound keys export-desk STATION DIR` / `export-gate GATE DIR`, and
the station refuses to start with a bundle that holds more than its role needs, or a secret file that group or
others can read.

Desk bundle (directory 0700)::

    bundle.json            {"format": 1, "role": "desk", "station": NAME, "backend": "file",
                            "recipients": [{"site": SITE, "kid": HEX, "file": "recipient-SITE.pem"}, ...]}
    station.key    0600    the station's template-signing key (PKCS#8, encrypted under the key passphrase)
    station.crt            its certificate (EKU template signing), issued by the CA
    ca.crt, crl.pem        the issuing CA certificate and the current CRL
    recipient-SITE.pem     the current verifier PUBLIC key of each site this desk enrols for
    management.secret 0600 master for per-card PIV management keys (needed to write a card; see docs/keys.md);
                           with the pkcs11 backend the manifest's "management": {"token", "label"} names it instead
    holder-ref.key  0600   the holder-reference (HMAC) key, when the keystore has one (the desk pseudonymises);
                           with the pkcs11 backend the manifest's "holder_ref": {"token", "label"} names it instead

Gate bundle (directory 0700)::

    bundle.json            {"format": 1, "role": "gate", "gate": GATE, "site": SITE, "backend": "file",
                            "verifiers": [{"kid": HEX, "not_after": ISO-8601 or null}, ...]}
    verifier-KID.key 0600  this site's verifier private key(s): the current one, and rotated ones in overlap
    holder-ref.key  0600   the holder-reference (HMAC) key for the ban list, when the keystore has one (pkcs11:
                           the manifest's "holder_ref": {"token", "label"}); the gate configuration's
                           `ban_list_key` names it (`gate_holder_ref_key_spec`)
    ca.crt, crl.pem

With the PKCS#11 backend no key file is written: the manifest says `"backend": "pkcs11"` and names the token
(`"pkcs11": {"token": LABEL, "softhsm_conf": PATH}`, plus `"key"` for the desk's station key and `"label"` per
verifier); the station opens that token with its PIN, and refuses a token that holds a private or secret key of
another role (a desk's token may hold `station:*` keys only, a gate's `verifier:*` keys only).

Nothing else may be in a bundle: a CA key, a station key in a gate bundle, a verifier private key in a desk bundle,
any other private key (checked by content, not only by name), unknown files or sub-directories are refused.

Public API::

    write_desk_bundle(...), write_gate_bundle(...)     # used by card.keystore.KeyStore.export_desk / export_gate
    check_bundle(dir, role) -> dict                    # the manifest, after every check; BundleError subclasses
    load_gate_bundle(dir, *, passphrase=None, previous_crl_number=None) -> GateTrust
        # refuses an expired/wrong CA and a forged, future-dated or rolled-back CRL (card.pki.check_trust)
    DeskBundle.open(dir, *, passphrase=None) -> DeskBundle   # what `cardbound enrol` and the desk use
    DeskKeys                                           # protocol enrolment needs (KeyStore and DeskBundle have it)
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from card import keyfile, pki
from card.keystore import (
    KeystoreCorruptError,
    KeystoreError,
    KeystoreMissingError,
    KeystorePassphraseError,
    UnknownStationError,
    check_site_name,
    load_key_file,
    write_file,
)
from card.sealed import GateTrust, StationCredentials

FORMAT = 1
MANIFEST = "bundle.json"
ROLE_DESK = "desk"
ROLE_GATE = "gate"
_PUBLIC = 0o644
_SECRET = 0o600


class BundleError(KeystoreError):
    """A role bundle cannot be used as it is. One line, says what to do."""


class BundleMissingError(BundleError, KeystoreMissingError):
    pass


class BundleRoleError(BundleError):
    """The bundle is for another role (a desk bundle given to a gate, or the processor keystore itself)."""


class BundleOverreachError(BundleError):
    """The bundle holds a key or file its role must not have."""


class BundlePermissionError(BundleError):
    """A secret file (or the bundle directory) is open to group or others, or belongs to another user."""


class BlankCardError(KeystoreError):
    """A desk cannot personalise a blank card: that needs the CA key, which only the key officer holds."""


@dataclass(frozen=True)
class VerifierEntry:
    kid: bytes
    not_after: datetime | None
    key_pem: bytes | None  # encrypted PKCS#8; None with the pkcs11 backend
    label: str | None = None  # the key's label in the site's token (pkcs11 backend)


class DeskKeys(Protocol):
    """What enrolment needs from its keys (a desk bundle, or the processor keystore at the key officer's)."""

    @property
    def can_issue_cards(self) -> bool: ...  # False for a desk bundle: blank cards go to the key officer

    @property
    def path(self) -> Path: ...  # the bundle (or keystore) directory; the issued-card register sits in it

    def crl(self) -> x509.CertificateRevocationList: ...

    def station_credentials(self, name: str) -> StationCredentials: ...

    def seal_recipients(self, sites: list[str] | None = None) -> list[ec.EllipticCurvePublicKey]: ...

    def management_key_for(self, guid: bytes) -> bytes: ...

    def issue_card_auth_certificate(
        self, guid: bytes, public_key: ec.EllipticCurvePublicKey, *, now: datetime | None = None
    ) -> x509.Certificate: ...


# ------------------------------------------------------------------------------------------------ writing


def _prepare(dest: Path) -> None:
    if (dest / "ca.key").exists():
        raise BundleRoleError(f"{dest} holds a CA key: export a bundle into an empty directory, not the keystore")
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(dest, 0o700)
    for old in dest.iterdir():  # a re-export replaces the bundle as a whole (no stale rotated or foreign keys)
        if old.is_file() and (old.name in _ALLOWED_NAMES or old.name.startswith(("verifier-", "recipient-"))):
            old.unlink()


def _manifest(dest: Path, manifest: dict[str, Any]) -> None:
    write_file(dest / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode() + b"\n", _PUBLIC)


def write_gate_bundle(
    dest: Path, *, gate: str, site: str, ca: bytes, crl: bytes, verifiers: list[VerifierEntry], now: datetime,
    token: dict[str, str] | None = None, holder_ref_key: bytes | None = None,
    holder_ref_token: dict[str, str] | None = None,
) -> Path:
    _prepare(dest)
    if holder_ref_key is not None and holder_ref_token is not None:
        raise BundleOverreachError("the holder-reference key is either in a token or a file, not both")
    if holder_ref_key is not None:  # the gate matches its ban list with it
        write_file(dest / HOLDER_REF_KEY, holder_ref_key, _SECRET)
    write_file(dest / "ca.crt", ca, _PUBLIC)
    write_file(dest / "crl.pem", crl, _PUBLIC)
    for entry in verifiers:
        if entry.key_pem is not None:
            write_file(dest / f"verifier-{entry.kid.hex()}.key", entry.key_pem, _SECRET)
    manifest: dict[str, Any] = {
        "format": FORMAT, "role": ROLE_GATE, "gate": gate, "site": site, "backend": "pkcs11" if token else "file",
        "exported": now.isoformat(),
        "verifiers": [{"kid": e.kid.hex(), "not_after": e.not_after.isoformat() if e.not_after else None,
                       **({"label": e.label} if e.label else {})} for e in verifiers],
    }
    if token:
        manifest["pkcs11"] = token
    if holder_ref_token:
        manifest["holder_ref"] = {"token": holder_ref_token["token"], "label": holder_ref_token["label"]}
    _manifest(dest, manifest)
    return dest


def write_desk_bundle(
    dest: Path, *, station: str, key_pem: bytes | None, certificate: bytes, ca: bytes, crl: bytes,
    recipients: list[tuple[str, ec.EllipticCurvePublicKey]], management_secret: bytes | None, now: datetime,
    holder_ref_key: bytes | None = None, token: dict[str, str] | None = None,
    holder_ref_token: dict[str, str] | None = None, management_token: dict[str, str] | None = None,
) -> Path:
    _prepare(dest)
    if holder_ref_key is not None and holder_ref_token is not None:
        raise BundleOverreachError("the holder-reference key is either in a token or a file, not both")
    if key_pem is not None:
        write_file(dest / "station.key", key_pem, _SECRET)
    write_file(dest / "station.crt", certificate, _PUBLIC)
    write_file(dest / "ca.crt", ca, _PUBLIC)
    write_file(dest / "crl.pem", crl, _PUBLIC)
    if (management_secret is None) == (management_token is None):
        raise BundleOverreachError("the card management master is either in a token or a file (exactly one)")
    if management_secret is not None:
        write_file(dest / "management.secret", management_secret, _SECRET)
    if holder_ref_key is not None:
        write_file(dest / HOLDER_REF_KEY, holder_ref_key, _SECRET)
    listed = []
    for site, key in recipients:
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        write_file(dest / f"recipient-{site}.pem", pem, _PUBLIC)
        listed.append({"site": site, "kid": pki.verifier_kid(key).hex(), "file": f"recipient-{site}.pem"})
    manifest: dict[str, Any] = {
        "format": FORMAT, "role": ROLE_DESK, "station": station, "backend": "pkcs11" if token else "file",
        "exported": now.isoformat(), "recipients": listed,
    }
    if token:
        manifest["pkcs11"] = token
    if management_token:  # a handle: the master stays in its token, per-card keys are derived there
        manifest["management"] = {"token": management_token["token"], "label": management_token["label"]}
    if holder_ref_token:  # a handle: the HMAC key stays in its token (card.holderref.TOKEN_HOLDER_REF)
        manifest["holder_ref"] = {"token": holder_ref_token["token"], "label": holder_ref_token["label"]}
    _manifest(dest, manifest)
    return dest


# ------------------------------------------------------------------------------------------------ checking

HOLDER_REF_KEY = "holder-ref.key"
_ALLOWED_NAMES = {MANIFEST, "ca.crt", "crl.pem", "station.key", "station.crt", "management.secret", HOLDER_REF_KEY}
_ROLE_FILES = {
    ROLE_DESK: {MANIFEST, "ca.crt", "crl.pem", "station.key", "station.crt", "management.secret", HOLDER_REF_KEY},
    ROLE_GATE: {MANIFEST, "ca.crt", "crl.pem", HOLDER_REF_KEY},
}
_ROLE_SECRETS = {ROLE_DESK: {"station.key", "management.secret", HOLDER_REF_KEY}, ROLE_GATE: {HOLDER_REF_KEY}}
_WHAT = {
    "ca.key": "the CA private key (only the key officer's keystore holds it)",
    "station.key": "an enrolment station's signing key",
    "management.secret": "the card management master secret",
}


def _role_allows(role: str, name: str) -> bool:
    if name in _ROLE_FILES[role]:
        return True
    if role == ROLE_GATE:
        return name.startswith("verifier-") and name.endswith(".key")
    return name.startswith("recipient-") and name.endswith(".pem")


def _is_secret(role: str, name: str) -> bool:
    return name in _ROLE_SECRETS[role] or (role == ROLE_GATE and name.startswith("verifier-"))


def _check_private(path: Path, what: str) -> None:
    info = path.stat()
    if info.st_uid != os.geteuid():
        raise BundlePermissionError(f"{what} {path} belongs to another user (uid {info.st_uid}); refused")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BundlePermissionError(
            f"{what} {path} is open to group or others (mode {stat.S_IMODE(info.st_mode):04o}): chmod 600 it"
        )


def check_bundle(bundle: Path, role: str) -> dict[str, Any]:
    """Every check a station makes on its bundle before using it. Returns the manifest."""
    bundle = Path(bundle)
    if not (bundle / MANIFEST).is_file():
        if (bundle / "ca.key").exists():
            raise BundleRoleError(f"{bundle} is the processor keystore (it holds the CA key), not a {role} bundle: "
                                  f"export one with `cardbound keys export-{role}`")
        raise BundleMissingError(f"no {role} bundle at {bundle} (export one with `cardbound keys export-{role}`)")
    try:
        manifest = json.loads((bundle / MANIFEST).read_text())
    except (ValueError, OSError) as exc:
        raise KeystoreCorruptError(f"{bundle / MANIFEST} is unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise KeystoreCorruptError(f"{bundle / MANIFEST}: unknown bundle format")
    if manifest.get("role") != role:
        raise BundleRoleError(f"{bundle} is a {manifest.get('role')!r} bundle, not a {role} bundle")
    info = bundle.stat()
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or info.st_uid != os.geteuid():
        raise BundlePermissionError(f"bundle directory {bundle} is writable by others or not ours: chmod 700 it")
    for entry in sorted(bundle.iterdir()):
        name = entry.name
        if not entry.is_file() or entry.is_symlink():
            raise BundleOverreachError(f"{role} bundle {bundle} holds {name!r}, which is not a plain file; refused")
        if not _role_allows(role, name):
            what = _WHAT.get(name)
            if what is None and name.startswith("verifier-") and name.endswith(".key"):
                what = "a verifier private key (only gates hold those)"
            if what is None and name.endswith((".key", ".secret")):
                what = "a private key"
            if what is not None:
                raise BundleOverreachError(f"{role} bundle {bundle} holds {what} ({name}): a {role} must not have "
                                           f"it; remove the file and re-export with `cardbound keys export-{role}`")
            raise BundleOverreachError(f"{role} bundle {bundle} holds an unexpected file {name!r}; refused")
        if _is_secret(role, name):
            _check_private(entry, "secret file")
        elif b"PRIVATE KEY" in entry.read_bytes()[:4096]:
            raise BundleOverreachError(f"{role} bundle {bundle}: {name} contains a private key; refused")
    return manifest


def _open_token(bundle: Path, manifest: dict[str, Any], role: str, allowed_prefix: str) -> Any:
    """Open the token a pkcs11 bundle names, after checking it holds no key of another role."""
    from card import pkcs11

    ref = manifest.get("pkcs11")
    if not isinstance(ref, dict) or not isinstance(ref.get("token"), str):
        raise KeystoreCorruptError(f"{bundle / MANIFEST}: pkcs11 backend without a token")
    try:
        if ref.get("softhsm_conf"):
            pkcs11.use_softhsm(Path(ref["softhsm_conf"]).parent)
        session = pkcs11.TokenSession.open(ref["token"])
        for obj in session.objects():
            if obj.object_class in ("private_key", "secret_key") and not obj.label.startswith(allowed_prefix):
                raise BundleOverreachError(f"the {role}'s token {ref['token']!r} holds {obj.label!r}: a {role} must "
                                           f"not have it (only {allowed_prefix}* keys)")
            if obj.extractable:
                raise BundleOverreachError(f"token key {obj.label!r} is extractable; refused")
    except pkcs11.TokenError as exc:
        raise KeystoreError(f"token: {exc}") from None
    return session


def _open_single_key_token(manifest: dict[str, Any], token: str, label: str, what: str) -> Any:
    """Open a token that must hold one secret key, `label` (the holder-reference key, the card management
    master): refused when it holds any other private or secret key, or an extractable one."""
    from card import pkcs11

    conf = (manifest.get("pkcs11") or {}).get("softhsm_conf") if isinstance(manifest.get("pkcs11"), dict) else None
    try:
        if conf:
            pkcs11.use_softhsm(Path(conf).parent)
        session = pkcs11.TokenSession.open(token)
        for obj in session.objects():
            if obj.object_class in ("private_key", "secret_key") and obj.label != label:
                raise BundleOverreachError(f"the {what} token {token!r} holds {obj.label!r}: it must hold the "
                                           f"{what} only")
            if obj.extractable:
                raise BundleOverreachError(f"token key {obj.label!r} is extractable; refused")
    except pkcs11.TokenError as exc:
        raise KeystoreError(f"token: {exc}") from None
    return session


def _passphrase(given: bytes | None) -> bytes:
    if given is not None:
        return given
    try:
        return keyfile.passphrase()
    except keyfile.KeyFileError as exc:
        raise KeystorePassphraseError(str(exc)) from None


def _cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise KeystoreCorruptError(f"unreadable certificate {path}") from exc


def _crl(path: Path) -> x509.CertificateRevocationList:
    try:
        return x509.load_pem_x509_crl(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise KeystoreCorruptError(f"unreadable CRL {path}") from exc


def load_gate_bundle(
    bundle: Path, *, passphrase: bytes | None = None, previous_crl_number: int | None = None
) -> GateTrust:
    """What a gate does at start: check the bundle, then load its site's verifier keys, the CA and the CRL."""
    bundle = Path(bundle)
    manifest = check_bundle(bundle, ROLE_GATE)
    site = manifest.get("site")
    if not isinstance(site, str):
        raise KeystoreCorruptError(f"{bundle / MANIFEST}: no site")
    check_site_name(site)
    not_after: dict[bytes, datetime] = {}
    listed = {}
    for entry in manifest.get("verifiers") or []:
        try:
            kid = bytes.fromhex(entry["kid"])
            listed[kid] = entry
            if entry.get("not_after"):
                not_after[kid] = datetime.fromisoformat(entry["not_after"])
        except (KeyError, TypeError, ValueError) as exc:
            raise KeystoreCorruptError(f"{bundle / MANIFEST}: bad verifier entry") from exc
    keys: list[Any] = []
    if manifest.get("backend") == "pkcs11":
        from card import pkcs11

        if any(bundle.glob("verifier-*.key")) or (bundle / HOLDER_REF_KEY).exists():
            raise BundleOverreachError(f"gate bundle {bundle} uses a token but also holds key files; refused")
        session = _open_token(bundle, manifest, ROLE_GATE, "verifier:")
        for kid, entry in listed.items():
            try:
                key = session.ec_key(str(entry.get("label")))
            except pkcs11.TokenError as exc:
                raise KeystoreError(f"token: {exc}") from None
            if pki.verifier_kid(key.public_key()) != kid:
                raise KeystoreCorruptError(f"token key {entry.get('label')!r} is not verifier key {kid.hex()}")
            keys.append(key)
    secret = None
    for path in sorted(bundle.glob("verifier-*.key")):
        secret = _passphrase(passphrase) if secret is None else secret
        key = load_key_file(path, secret)
        kid = pki.verifier_kid(key.public_key())
        if path.name != f"verifier-{kid.hex()}.key" or kid not in listed:
            raise KeystoreCorruptError(f"{path} does not hold the key its name and the manifest say")
        keys.append(key)
    ca, crl = _cert(bundle / "ca.crt"), _crl(bundle / "crl.pem")
    health = pki.check_trust(ca, crl, now=datetime.now(UTC), previous_crl_number=previous_crl_number)
    # Refused at start: an expired or wrong CA, a forged, future-dated or rolled-back CRL. A stale CRL is not
    # refused here: every card is then refused with its own reason (crl_stale), so the gate reports and logs it.
    fatal = [p for p in health.problems if not p.startswith("crl_stale")]
    if fatal:
        raise KeystoreCorruptError(f"gate bundle at {bundle}: {'; '.join(fatal)}")
    try:
        return GateTrust.create(ca, crl, keys, not_after=not_after, site=site)
    except (pki.PkiError, ValueError) as exc:
        raise KeystoreCorruptError(f"gate bundle at {bundle} is invalid: {exc}") from exc


def gate_holder_ref_key_spec(bundle: Path) -> str | None:
    """How the gate configuration names the holder-reference key this gate bundle carries (`ban_list_key`): the
    bundle's 0600 file, or the `pkcs11:` URI of the token key its manifest names; None when it carries none."""
    from card import holderref

    bundle = Path(bundle)
    manifest = check_bundle(bundle, ROLE_GATE)
    ref = manifest.get("holder_ref")
    if isinstance(ref, dict) and isinstance(ref.get("token"), str) and isinstance(ref.get("label"), str):
        return holderref.token_uri(ref["token"], ref["label"])
    return str(bundle / HOLDER_REF_KEY) if (bundle / HOLDER_REF_KEY).is_file() else None


class DeskBundle:
    """An enrolment desk's keys, from its bundle. Implements `DeskKeys`."""

    def __init__(self, path: Path, manifest: dict[str, Any], passphrase: bytes | None) -> None:
        self.path = path
        self.station = str(manifest.get("station"))
        self._manifest = manifest
        self._passphrase = passphrase
        self._signer: Any = None

    @classmethod
    def open(cls, path: Path, *, passphrase: bytes | None = None) -> DeskBundle:
        path = Path(path)
        manifest = check_bundle(path, ROLE_DESK)
        token = manifest.get("backend") == "pkcs11"
        if token and any((path / name).exists() for name in ("station.key", HOLDER_REF_KEY)):
            raise BundleOverreachError(f"desk bundle {path} uses a token but also holds a key file; refused")
        if "holder_ref" in manifest and (path / HOLDER_REF_KEY).exists():
            raise BundleOverreachError(f"desk bundle {path} names a token holder-reference key and holds a file")
        if "management" in manifest and (path / "management.secret").exists():
            raise BundleOverreachError(f"desk bundle {path} names a token management master and holds a file")
        if not ((path / "station.key").is_file() or token) or not (path / "station.crt").is_file():
            raise KeystoreCorruptError(f"desk bundle {path} lacks its station key or certificate")
        return cls(path, manifest, passphrase)

    def ca_certificate(self) -> x509.Certificate:
        return _cert(self.path / "ca.crt")

    def crl(self) -> x509.CertificateRevocationList:
        return _crl(self.path / "crl.pem")

    @property
    def holder_ref_key_path(self) -> Path:
        """The holder-reference key file (checked 0600 by `open`) of a file-backend bundle."""
        return self.path / HOLDER_REF_KEY

    @property
    def has_holder_ref_key(self) -> bool:
        return "holder_ref" in self._manifest or (self.path / HOLDER_REF_KEY).is_file()

    def holder_ref_key(self) -> Any:
        """The holder-reference key the desk pseudonymises national numbers with (`card.holderref.HolderRefKey`):
        the HMAC key in its token when the manifest names one (used through the token), else the 0600 file."""
        from card import holderref

        ref = self._manifest.get("holder_ref")
        if ref is None:
            try:
                return holderref.load_file_key(self.path / HOLDER_REF_KEY)
            except holderref.HolderRefKeyError as exc:
                raise KeystoreMissingError(f"desk bundle {self.path}: {exc}") from None
        if not isinstance(ref, dict) or not isinstance(ref.get("token"), str) or not isinstance(ref.get("label"), str):
            raise KeystoreCorruptError(f"{self.path / MANIFEST}: bad holder_ref entry")
        session = _open_single_key_token(self._manifest, ref["token"], ref["label"], "holder-reference key")
        try:
            return holderref.open_token_key(session.label, ref["label"])
        except holderref.HolderRefKeyError as exc:
            raise KeystoreError(str(exc)) from None

    def station_credentials(self, name: str) -> StationCredentials:
        if name != self.station:
            raise UnknownStationError(f"this desk bundle is for station {self.station!r}, not {name!r}")
        if self._signer is None and self._manifest.get("backend") == "pkcs11":
            from card import pkcs11

            session = _open_token(self.path, self._manifest, ROLE_DESK, "station:")
            try:
                self._signer = session.ec_key(str(self._manifest["pkcs11"].get("key")))
            except pkcs11.TokenError as exc:
                raise KeystoreError(f"token: {exc}") from None
        if self._signer is None:
            self._passphrase = _passphrase(self._passphrase)
            self._signer = load_key_file(self.path / "station.key", self._passphrase)
        certificate = _cert(self.path / "station.crt")
        if certificate.public_key() != self._signer.public_key():
            raise KeystoreCorruptError(f"desk bundle {self.path}: station key and certificate do not match")
        return StationCredentials(certificate=certificate, signer=self._signer)

    def sites(self) -> list[str]:
        return [str(r["site"]) for r in self._manifest.get("recipients") or []]

    def seal_recipients(self, sites: list[str] | None = None) -> list[ec.EllipticCurvePublicKey]:
        wanted = self.sites() if sites is None else sites
        unknown = sorted(set(wanted) - set(self.sites()))
        if unknown:
            raise KeystoreError(f"this desk enrols for {', '.join(self.sites())}, not for {', '.join(unknown)}")
        keys = []
        for entry in self._manifest.get("recipients") or []:
            if entry["site"] not in wanted:
                continue
            path = self.path / f"recipient-{entry['site']}.pem"
            try:
                key = serialization.load_pem_public_key(path.read_bytes())
            except (OSError, ValueError) as exc:
                raise KeystoreCorruptError(f"unreadable recipient key {path}") from exc
            if not isinstance(key, ec.EllipticCurvePublicKey) or pki.verifier_kid(key).hex() != entry.get("kid"):
                raise KeystoreCorruptError(f"{path} is not the verifier key the manifest names")
            keys.append(key)
        if not keys:
            raise KeystoreCorruptError(f"desk bundle {self.path} names no verifier recipient")
        return keys

    def management_key_for(self, guid: bytes) -> bytes:
        ref = self._manifest.get("management")
        if ref is not None:  # pkcs11: the master is an HMAC key in its token; the card's key is derived there
            from card import pkcs11

            if not isinstance(ref, dict) or not isinstance(ref.get("token"), str) or \
                    not isinstance(ref.get("label"), str):
                raise KeystoreCorruptError(f"{self.path / MANIFEST}: bad management entry")
            session = _open_single_key_token(self._manifest, ref["token"], ref["label"], "card management master")
            try:
                return pki.derive_management_key_kbkdf(session.hmac_key(ref["label"]).mac, guid)
            except pkcs11.TokenError as exc:
                raise KeystoreError(f"token: {exc}") from None
        try:
            master = (self.path / "management.secret").read_bytes()
        except FileNotFoundError as exc:
            raise KeystoreCorruptError(f"desk bundle {self.path} lacks management.secret") from exc
        if len(master) != pki.MASTER_SECRET_LENGTH:
            raise KeystoreCorruptError("management.secret has the wrong length")
        return pki.derive_management_key(master, guid)

    @property
    def can_issue_cards(self) -> bool:
        return False

    def issue_card_auth_certificate(
        self, guid: bytes, public_key: ec.EllipticCurvePublicKey, *, now: datetime | None = None
    ) -> x509.Certificate:
        raise BlankCardError(
            "blank card: it must be personalised at the key officer's station first "
            "(`cardbound keys personalise-card`); a desk holds no CA key"
        )
