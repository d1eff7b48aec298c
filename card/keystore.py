"""The processor's software keystore: a directory of PEM files (dir 0700, secrets 0600), the embedded default.

Public API (enrolment, personalisation and the gate call these)::

    KeyStore.init(path, *, now=None) -> KeyStore     # new CA, empty CRL, verifier key, management secret
    KeyStore.open(path) -> KeyStore                         # KeystoreMissingError if absent
    ks.ca_certificate() -> x509.Certificate
    ks.crl() -> x509.CertificateRevocationList
    ks.issue_station(name, *, now=None, lifetime=...) -> x509.Certificate
    ks.station_credentials(name) -> sealed.StationCredentials     # for seal()
    ks.revoke_station(name, *, now=None) -> x509.CertificateRevocationList   # CRL re-signed, number + 1
    ks.refresh_crl(*, now=None) -> x509.CertificateRevocationList            # same entries, new number/dates
    ks.stations() -> list[StationInfo]
    ks.rotate_verifier() -> bytes (new kid);  ks.retire_verifier(kid);  ks.verifier_kids() -> list[bytes]
    ks.verifier_public_key() -> ec.EllipticCurvePublicKey   # the current one: seal() to this
    ks.management_key_for(guid: bytes) -> bytes             # AES-128 PIV 9B key of that card
    ks.issue_card_auth_certificate(guid, public_key, *, now=None) -> x509.Certificate  # CA signs 9E cert
    ks.revoke_card(guid, *, now=None) -> x509.CertificateRevocationList     # lost/stolen card
    ks.gate_trust() -> sealed.GateTrust
    ks.export_gate_trust(dest_dir) -> Path           # CA cert + CRL + verifier private keys, nothing else
    load_gate_trust(bundle_dir) -> sealed.GateTrust         # what a gate does at start

    KeystoreError (.. KeystoreMissingError, KeystoreExistsError, UnknownStationError, StationExistsError,
                   KeystoreCorruptError)

Seam for an HSM: everything that uses a private key goes through this class (`station_credentials` returns a
signer object, not key bytes), so a PKCS#11 keystore with the same methods can replace it without touching
callers. Layout::

    ca.key ca.crt crl.pem management.secret
    stations/NAME.key  stations/NAME.crt  stations/NAME.<serial>.revoked.crt
    verifier/<kid>.key  verifier/current
    cards/<guid>.<serial>.crt                     # issued card-auth certificates (public), for revocation
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from card import pki
from card.sealed import GateTrust, StationCredentials

_STATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KID_HEX = re.compile(r"^[0-9a-f]{16}$")
_BUNDLE_KEY = re.compile(r"^verifier-([0-9a-f]{16})\.key$")


class KeystoreError(Exception):
    """Keystore problem the operator can act on (one line)."""


class KeystoreMissingError(KeystoreError):
    pass


class KeystoreExistsError(KeystoreError):
    pass


class UnknownStationError(KeystoreError):
    pass


class StationExistsError(KeystoreError):
    pass


class KeystoreCorruptError(KeystoreError):
    pass


@dataclass(frozen=True)
class StationInfo:
    name: str
    serial: int
    not_after: datetime
    revoked: bool


def _now(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else now


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with the final permissions from the first byte (no window where a secret is 0644)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            fd = -1
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd != -1:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise KeystoreCorruptError(f"missing key file {path}") from exc
    except ValueError as exc:
        raise KeystoreCorruptError(f"unreadable key file {path}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeystoreCorruptError(f"{path} is not an EC private key")
    return key


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError as exc:
        raise KeystoreCorruptError(f"missing certificate {path}") from exc
    except ValueError as exc:
        raise KeystoreCorruptError(f"unreadable certificate {path}") from exc


def _load_crl(path: Path) -> x509.CertificateRevocationList:
    try:
        return x509.load_pem_x509_crl(path.read_bytes())
    except FileNotFoundError as exc:
        raise KeystoreCorruptError(f"missing CRL {path}") from exc
    except ValueError as exc:
        raise KeystoreCorruptError(f"unreadable CRL {path}") from exc


def _check_station_name(name: str) -> None:
    if not _STATION_NAME.match(name):
        raise KeystoreError(f"invalid station name {name!r} (letters, digits, '.', '_', '-'; max 64)")


class KeyStore:
    """A software keystore directory. Not safe for concurrent writers (one operator at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # ---- lifecycle

    @classmethod
    def init(cls, path: Path, *, now: datetime | None = None) -> KeyStore:
        path = Path(path)
        if (path / "ca.key").exists():
            raise KeystoreExistsError(f"keystore already initialised at {path}")
        when = _now(now)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        for sub in ("stations", "verifier"):
            (path / sub).mkdir(mode=0o700, exist_ok=True)
        store = cls(path)
        ca_key = pki.new_ec_key()
        ca_cert = pki.make_ca_certificate(ca_key, now=when)
        _write_file(path / "management.secret", secrets.token_bytes(pki.MASTER_SECRET_LENGTH), 0o600)
        _write_file(path / "ca.crt", _cert_pem(ca_cert), 0o644)
        store._write_crl(pki.build_crl(ca_key, ca_cert, {}, number=1, now=when))
        store.rotate_verifier()
        # The CA key is written last: its presence is what marks the keystore as initialised.
        _write_file(path / "ca.key", _key_pem(ca_key), 0o600)
        return store

    @classmethod
    def open(cls, path: Path) -> KeyStore:
        path = Path(path)
        if not (path / "ca.key").is_file():
            raise KeystoreMissingError(f"no keystore at {path} (run `cardbound keys init`)")
        return cls(path)

    # ---- CA and CRL

    def ca_certificate(self) -> x509.Certificate:
        return _load_cert(self.path / "ca.crt")

    def _ca_key(self) -> ec.EllipticCurvePrivateKey:
        return _load_key(self.path / "ca.key")

    def crl(self) -> x509.CertificateRevocationList:
        return _load_crl(self.path / "crl.pem")

    def _write_crl(self, crl: x509.CertificateRevocationList) -> None:
        _write_file(self.path / "crl.pem", crl.public_bytes(serialization.Encoding.PEM), 0o644)

    def _resign_crl(self, extra: dict[int, datetime], now: datetime | None) -> x509.CertificateRevocationList:
        when = _now(now)
        old = self.crl()
        revoked = {entry.serial_number: entry.revocation_date_utc for entry in old}
        revoked.update(extra)
        crl = pki.build_crl(self._ca_key(), self.ca_certificate(), revoked, number=pki.crl_number(old) + 1, now=when)
        self._write_crl(crl)
        return crl

    def refresh_crl(self, *, now: datetime | None = None) -> x509.CertificateRevocationList:
        """Re-sign the CRL (same entries) before its next update passes: gates fail closed on a stale CRL."""
        return self._resign_crl({}, now)

    # ---- stations

    def _station_paths(self, name: str) -> tuple[Path, Path]:
        _check_station_name(name)
        return self.path / "stations" / f"{name}.key", self.path / "stations" / f"{name}.crt"

    def issue_station(
        self, name: str, *, now: datetime | None = None, lifetime: timedelta = pki.DEFAULT_STATION_LIFETIME
    ) -> x509.Certificate:
        key_path, cert_path = self._station_paths(name)
        if cert_path.exists():
            raise StationExistsError(f"station {name!r} already has a certificate (revoke it first)")
        key = pki.new_ec_key()
        cert = pki.issue_station_certificate(
            self._ca_key(), self.ca_certificate(), name, key.public_key(), now=_now(now), lifetime=lifetime
        )
        _write_file(key_path, _key_pem(key), 0o600)
        _write_file(cert_path, _cert_pem(cert), 0o644)
        return cert

    def station_credentials(self, name: str) -> StationCredentials:
        key_path, cert_path = self._station_paths(name)
        if not cert_path.exists():
            raise UnknownStationError(f"unknown station {name!r}")
        return StationCredentials(certificate=_load_cert(cert_path), signer=_load_key(key_path))

    def revoke_station(self, name: str, *, now: datetime | None = None) -> x509.CertificateRevocationList:
        key_path, cert_path = self._station_paths(name)
        if not cert_path.exists():
            raise UnknownStationError(f"unknown station {name!r}")
        cert = _load_cert(cert_path)
        crl = self._resign_crl({cert.serial_number: _now(now)}, now)
        # The private key is useless now; remove it so a copy of the keystore cannot sign with it.
        with contextlib.suppress(FileNotFoundError):
            key_path.unlink()
        os.replace(cert_path, cert_path.with_name(f"{name}.{cert.serial_number:x}.revoked.crt"))
        return crl

    def stations(self) -> list[StationInfo]:
        result = []
        for cert_path in sorted((self.path / "stations").glob("*.crt")):
            cert = _load_cert(cert_path)
            revoked = cert_path.name.endswith(".revoked.crt")
            name = cert_path.name.split(".")[0] if revoked else cert_path.name[: -len(".crt")]
            result.append(StationInfo(name, cert.serial_number, cert.not_valid_after_utc, revoked))
        return result

    # ---- verifier keys

    def verifier_kids(self) -> list[bytes]:
        kids = []
        for key_path in sorted((self.path / "verifier").glob("*.key")):
            if _KID_HEX.match(key_path.stem):
                kids.append(bytes.fromhex(key_path.stem))
        return kids

    def current_verifier_kid(self) -> bytes:
        try:
            text = (self.path / "verifier" / "current").read_text().strip()
        except FileNotFoundError as exc:
            raise KeystoreCorruptError("no current verifier key") from exc
        if not _KID_HEX.match(text):
            raise KeystoreCorruptError("verifier/current is not a key id")
        return bytes.fromhex(text)

    def _verifier_key(self, kid: bytes) -> ec.EllipticCurvePrivateKey:
        return _load_key(self.path / "verifier" / f"{kid.hex()}.key")

    def verifier_public_key(self) -> ec.EllipticCurvePublicKey:
        """The current verifier public key: enrolment seals new templates to this one."""
        return self._verifier_key(self.current_verifier_kid()).public_key()

    def rotate_verifier(self) -> bytes:
        """New current verifier key. Old keys stay (gates can still unseal old cards) until retired."""
        key = pki.new_ec_key()
        kid = pki.verifier_kid(key.public_key())
        _write_file(self.path / "verifier" / f"{kid.hex()}.key", _key_pem(key), 0o600)
        _write_file(self.path / "verifier" / "current", kid.hex().encode() + b"\n", 0o600)
        return kid

    def retire_verifier(self, kid: bytes) -> None:
        """Delete an old verifier key: gates exported after this can no longer read cards sealed to it."""
        if kid == self.current_verifier_kid():
            raise KeystoreError("cannot retire the current verifier key (rotate first)")
        path = self.path / "verifier" / f"{kid.hex()}.key"
        if not path.exists():
            raise KeystoreError(f"no verifier key {kid.hex()}")
        path.unlink()

    # ---- cards

    def management_key_for(self, guid: bytes) -> bytes:
        try:
            master = (self.path / "management.secret").read_bytes()
        except FileNotFoundError as exc:
            raise KeystoreCorruptError("missing management.secret") from exc
        if len(master) != pki.MASTER_SECRET_LENGTH:
            raise KeystoreCorruptError("management.secret has the wrong length")
        return pki.derive_management_key(master, guid)

    def issue_card_auth_certificate(
        self, guid: bytes, public_key: ec.EllipticCurvePublicKey, *, now: datetime | None = None
    ) -> x509.Certificate:
        cert = pki.issue_card_auth_certificate(self._ca_key(), self.ca_certificate(), guid, public_key, now=_now(now))
        # Kept (public data) so a lost or stolen card can be revoked by its GUID.
        cards = self.path / "cards"
        cards.mkdir(mode=0o700, exist_ok=True)
        _write_file(cards / f"{guid.hex()}.{cert.serial_number:x}.crt", _cert_pem(cert), 0o644)
        return cert

    def revoke_card(self, guid: bytes, *, now: datetime | None = None) -> x509.CertificateRevocationList:
        """Revoke every card-auth certificate issued for this GUID (lost/stolen card): gates refuse it."""
        paths = sorted((self.path / "cards").glob(f"{guid.hex()}.*.crt")) if len(guid) == 16 else []
        if not paths:
            raise KeystoreError(f"no card-auth certificate was issued for card {guid.hex()}")
        when = _now(now)
        return self._resign_crl({_load_cert(path).serial_number: when for path in paths}, now)

    # ---- gates

    def gate_trust(self) -> GateTrust:
        keys = [self._verifier_key(kid) for kid in self.verifier_kids()]
        return GateTrust.create(self.ca_certificate(), self.crl(), keys)

    def export_gate_trust(self, dest: Path) -> Path:
        """Write the gate trust bundle (the only secrets a gate holds are the verifier keys)."""
        dest = Path(dest)
        dest.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(dest, 0o700)
        for old in dest.glob("verifier-*.key"):
            old.unlink()
        _write_file(dest / "ca.crt", _cert_pem(self.ca_certificate()), 0o644)
        _write_file(dest / "crl.pem", self.crl().public_bytes(serialization.Encoding.PEM), 0o644)
        for kid in self.verifier_kids():
            _write_file(dest / f"verifier-{kid.hex()}.key", _key_pem(self._verifier_key(kid)), 0o600)
        return dest


def load_gate_trust(bundle: Path) -> GateTrust:
    """Load a gate trust bundle written by `KeyStore.export_gate_trust`."""
    bundle = Path(bundle)
    if not (bundle / "ca.crt").is_file():
        raise KeystoreMissingError(f"no gate trust bundle at {bundle}")
    keys = [_load_key(path) for path in sorted(bundle.iterdir()) if _BUNDLE_KEY.match(path.name) is not None]
    try:
        return GateTrust.create(_load_cert(bundle / "ca.crt"), _load_crl(bundle / "crl.pem"), keys)
    except (pki.PkiError, ValueError) as exc:
        raise KeystoreCorruptError(f"gate trust bundle at {bundle} is invalid: {exc}") from exc
