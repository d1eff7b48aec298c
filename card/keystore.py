"""The processor's software keystore: a directory of PEM files (dir 0700, secrets 0600), the embedded default.

Public API (enrolment, personalisation and the gate call these)::

    KeyStore.init(path, *, now=None, site=DEFAULT_SITE, passphrase=None) -> KeyStore
        # new CA, empty CRL, the first site's verifier key, management secret; private keys encrypted at rest
    KeyStore.open(path, *, passphrase=None) -> KeyStore    # KeystoreMissingError if absent
        # passphrase None: from card.keyfile.passphrase() (file / environment / prompt), when first needed
    ks.ca_certificate() -> x509.Certificate
    ks.crl() -> x509.CertificateRevocationList
    ks.issue_station(name, *, now=None, lifetime=...) -> x509.Certificate
    ks.station_credentials(name) -> sealed.StationCredentials     # for seal()
    ks.revoke_station(name, *, now=None) -> x509.CertificateRevocationList   # CRL re-signed, number + 1
    ks.refresh_crl(*, now=None) -> x509.CertificateRevocationList            # same entries, new number/dates
    ks.stations() -> list[StationInfo]
    ks.sites() -> list[str];  ks.add_site(site) -> kid      # one verifier key pair per port facility (site)
    ks.rotate_verifier(site=None, *, overlap=..., now=None) -> bytes (new kid)  # old key valid until now+overlap
    ks.retire_verifier(kid);  ks.verifier_kids(site=None) -> list[bytes];  ks.verifier_not_after(kid)
    ks.verifier_public_key(site=None) -> ec.EllipticCurvePublicKey   # a site's current key
    ks.seal_recipients(sites=None) -> list[ec.EllipticCurvePublicKey] # current key of each site: seal() to these
    ks.management_key_for(guid: bytes) -> bytes             # AES-128 PIV 9B key of that card
    ks.issue_card_auth_certificate(guid, public_key, *, now=None) -> x509.Certificate  # CA signs 9E cert
    ks.revoke_card(guid, *, now=None) -> x509.CertificateRevocationList     # lost/stolen card
    ks.backend -> "file" | "pkcs11"                           # pkcs11: every private key in a SoftHSM2/HSM token
    ks.gate_trust(site=None) -> sealed.GateTrust            # site None: every site's keys (processor view)
    ks.export_gate(gate, dest_dir, *, site=None) -> Path    # gate bundle: its site's verifier keys, CA cert, CRL
    ks.export_desk(station, dest_dir, *, sites=None) -> Path  # desk bundle: station key, certs, CRL, recipients
    load_gate_trust(bundle_dir) -> sealed.GateTrust         # = card.bundles.load_gate_bundle (what a gate does)

    KeystoreError (.. KeystoreMissingError, KeystoreExistsError, UnknownStationError, StationExistsError,
                   KeystoreCorruptError)

Seam for an HSM: everything that uses a private key goes through this class (`station_credentials` returns a
signer object, not key bytes), so a PKCS#11 keystore with the same methods can replace it without touching
callers. Layout::

    backend                                                  # "file" (default) or "pkcs11"
    ca.key ca.crt crl.pem management.secret                 # *.key: PKCS#8 encrypted (card.keyfile), 0600
    *.token instead of *.key with the pkcs11 backend          # {"token": LABEL, "label": KEY LABEL}: a handle only
    stations/NAME.key  stations/NAME.crt  stations/NAME.<serial>.revoked.crt
    verifier/SITE/<kid>.key  verifier/SITE/current  verifier/SITE/<kid>.not-after   # per site; rotated keys
    gates/GATE.json                                          # which site a gate bundle was exported for
    cards/<guid>.<serial>.crt                     # issued card-auth certificates (public), for revocation
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from card import keyfile, pki
from card.sealed import GateTrust, StationCredentials

_STATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KID_HEX = re.compile(r"^[0-9a-f]{16}$")
DEFAULT_SITE = "default"
BACKENDS = ("file", "pkcs11")
TOKEN_CA = "cb-ca"  # noqa: S105 - a token label, not a secret; the key officer's token: CA key (and the officer's audit checkpoint key)
HOLDER_REF_KEY = "holder-ref.key"  # HMAC key of pseudonymous holder references (verify.banlist format)
MANAGEMENT_TOKEN = "management.token"  # noqa: S105 - a file name: the management master's handle (pkcs11)
TOKEN_MANAGEMENT = "cb-card-mgmt"  # noqa: S105 - a token label: the card management master (desks and key officer)
MANAGEMENT_LABEL = "management-master"
HOLDER_REF_TOKEN = "holder-ref.token"  # noqa: S105 - a file name; its handle with the pkcs11 backend (the key is in token cb-holder-ref)
DEFAULT_OVERLAP = timedelta(days=90)


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


class KeystorePassphraseError(KeystoreError):
    """No passphrase, or the wrong one, for the encrypted private keys."""


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




def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_key_file(path: Path, passphrase: bytes) -> ec.EllipticCurvePrivateKey:
    """An encrypted PKCS#8 EC key file (plain PEM refused)."""
    try:
        key = keyfile.load_private_key(path.read_bytes(), passphrase)
    except FileNotFoundError as exc:
        raise KeystoreCorruptError(f"missing key file {path}") from exc
    except keyfile.KeyFileError as exc:
        raise KeystorePassphraseError(f"{path}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeystoreCorruptError(f"{path} is not an EC private key")
    return key


def _token_label(prefix: str, name: str) -> str:
    """PKCS#11 token labels are at most 32 characters."""
    label = prefix + name
    return label if len(label) <= 32 else prefix + hashlib.sha256(name.encode()).hexdigest()[: 32 - len(prefix)]


def station_token_label(name: str) -> str:
    return _token_label("cb-desk-", name)


def site_token_label(site: str) -> str:
    return _token_label("cb-site-", site)


def _ref_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name.removesuffix(".key") + ".token")


def check_site_name(site: str) -> None:
    if not _STATION_NAME.match(site):
        raise KeystoreError(f"invalid site name {site!r} (letters, digits, '.', '_', '-'; max 64)")


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

    def __init__(self, path: Path, *, passphrase: bytes | None = None) -> None:
        self.path = Path(path)
        self._passphrase = passphrase
        self._keys: dict[Path, Any] = {}  # decrypted (or looked up in the token) once per process

    @property
    def backend(self) -> str:
        try:
            value = (self.path / "backend").read_text().strip()
        except FileNotFoundError:
            return "file"
        if value not in BACKENDS:
            raise KeystoreCorruptError(f"{self.path / 'backend'}: unknown backend {value!r}")
        return value

    @property
    def token_dir(self) -> Path:
        """The station home's token directory (SoftHSM2): HOME/token beside HOME/keys."""
        return self.path.parent / "token"

    def _token(self, label: str) -> Any:
        from card import pkcs11

        try:
            pkcs11.softhsm_init(self.token_dir, label, pin=pkcs11.token_pin(), so_pin=secrets.token_hex(16))
            return pkcs11.TokenSession.open(label)
        except pkcs11.TokenError as exc:
            raise KeystoreError(f"token: {exc}") from None

    def _generate(self, key_path: Path | None, token: str, label: str, *, derive: bool = False) -> Any:
        """A new EC P-256 private key: a PKCS#8-encrypted file, or a non-extractable key in `token`.
        With `key_path` None the caller stores it (`_store`) once it knows the file name (a verifier's kid)."""
        if self.backend == "file":
            key: Any = pki.new_ec_key()
            ref = self._key_pem(key)
        else:
            from card.pkcs11 import Usage

            key = self._token(token).generate_ec(label, usage=Usage.DERIVE if derive else Usage.SIGN)
            ref = json.dumps({"token": token, "label": label}).encode() + b"\n"
        if key_path is not None:
            self._store(key_path, ref)
        return key

    def _store(self, key_path: Path, ref: bytes) -> None:
        if self.backend == "file":
            _write_file(key_path, ref, 0o600)
        else:
            _write_file(_ref_path(key_path), ref, 0o644)  # a handle, not a key: the token holds the key

    def _has_key(self, key_path: Path) -> bool:
        return key_path.is_file() or _ref_path(key_path).is_file()

    def _forget_key(self, key_path: Path) -> None:
        """Delete a key file, or the token object a handle names."""
        with contextlib.suppress(FileNotFoundError):
            key_path.unlink()
        ref_path = _ref_path(key_path)
        if ref_path.is_file():
            ref = json.loads(ref_path.read_text())
            with contextlib.suppress(KeystoreError):
                self._token(ref["token"]).destroy(ref["label"])
            ref_path.unlink()
        self._keys.pop(key_path, None)

    def key_reference(self, key_path: Path) -> dict[str, str] | None:
        ref_path = _ref_path(key_path)
        return json.loads(ref_path.read_text()) if ref_path.is_file() else None

    def passphrase(self) -> bytes:
        if self._passphrase is None:
            try:
                self._passphrase = keyfile.passphrase()
            except keyfile.KeyFileError as exc:
                raise KeystorePassphraseError(str(exc)) from None
        return self._passphrase

    def _key_pem(self, key: ec.EllipticCurvePrivateKey) -> bytes:
        try:
            return keyfile.encrypt_private_key(key, self.passphrase())
        except keyfile.KeyFileError as exc:
            raise KeystorePassphraseError(str(exc)) from None

    def _load_key(self, path: Path) -> Any:
        key = self._keys.get(path)
        if key is None:
            ref = self.key_reference(path)
            if ref is not None:
                from card import pkcs11

                try:
                    key = self._token(ref["token"]).ec_key(ref["label"])
                except pkcs11.TokenError as exc:
                    raise KeystoreError(f"token: {exc}") from None
            else:
                key = load_key_file(path, self.passphrase())
            self._keys[path] = key
        return key

    # ---- lifecycle

    @classmethod
    def init(
        cls, path: Path, *, now: datetime | None = None, site: str = DEFAULT_SITE, passphrase: bytes | None = None,
        backend: str = "file",
    ) -> KeyStore:
        path = Path(path)
        if (path / "ca.key").exists() or (path / "ca.token").exists():
            raise KeystoreExistsError(f"keystore already initialised at {path}")
        check_site_name(site)
        if backend not in BACKENDS:
            raise KeystoreError(f"unknown key backend {backend!r} (file or pkcs11)")
        when = _now(now)
        store = cls(path, passphrase=passphrase)
        if backend == "file":
            store.passphrase()  # fail before anything is written
        else:
            from card import pkcs11

            try:
                pkcs11.token_pin()
            except pkcs11.TokenError as exc:
                raise KeystoreError(f"token: {exc}") from None
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        for sub in ("stations", "verifier", "gates"):
            (path / sub).mkdir(mode=0o700, exist_ok=True)
        _write_file(path / "backend", backend.encode() + b"\n", 0o644)
        ca_key = store._generate(None, TOKEN_CA, "ca")
        ca_cert = pki.make_ca_certificate(ca_key, now=when)
        if backend == "file":
            _write_file(path / "management.secret", secrets.token_bytes(pki.MASTER_SECRET_LENGTH), 0o600)
        else:  # the master is a non-extractable HMAC key in its token; per-card keys by SP 800-108 in the token
            try:
                store._token(TOKEN_MANAGEMENT).generate_hmac(MANAGEMENT_LABEL)
            except pkcs11.TokenError as exc:
                raise KeystoreError(f"token: {exc}") from None
            _write_file(path / MANAGEMENT_TOKEN, json.dumps({"token": TOKEN_MANAGEMENT, "label": MANAGEMENT_LABEL})
                        .encode() + b"\n", 0o644)
        _write_file(path / "ca.crt", _cert_pem(ca_cert), 0o644)
        store._write_crl(pki.build_crl(ca_key, ca_cert, {}, number=1, now=when))
        store.add_site(site)
        if backend == "pkcs11":  # with a token every secret key is born in it (the file backend makes it on demand)
            store.new_holder_ref_key()
        # The CA key (or its handle) is written last: its presence is what marks the keystore as initialised.
        store._store(path / "ca.key", store._key_pem(ca_key) if backend == "file" else
                     json.dumps({"token": TOKEN_CA, "label": "ca"}).encode() + b"\n")
        return store

    @classmethod
    def open(cls, path: Path, *, passphrase: bytes | None = None) -> KeyStore:
        path = Path(path)
        if not (path / "ca.key").is_file() and not (path / "ca.token").is_file():
            raise KeystoreMissingError(f"no keystore at {path} (run `cardbound keys init`)")
        return cls(path, passphrase=passphrase)

    @property
    def can_issue_cards(self) -> bool:
        return True  # the key officer's keystore holds the CA key

    # ---- CA and CRL

    def ca_certificate(self) -> x509.Certificate:
        return _load_cert(self.path / "ca.crt")

    def _ca_key(self) -> Any:
        return self._load_key(self.path / "ca.key")

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
        # A fresh token label per issue: a re-issued station never finds its revoked key's label taken.
        key = self._generate(key_path, station_token_label(name), f"station:{name}:{secrets.token_hex(4)}")
        cert = pki.issue_station_certificate(
            self._ca_key(), self.ca_certificate(), name, key.public_key(), now=_now(now), lifetime=lifetime
        )
        _write_file(cert_path, _cert_pem(cert), 0o644)
        return cert

    def station_credentials(self, name: str) -> StationCredentials:
        key_path, cert_path = self._station_paths(name)
        if not cert_path.exists():
            raise UnknownStationError(f"unknown station {name!r}")
        return StationCredentials(certificate=_load_cert(cert_path), signer=self._load_key(key_path))

    def revoke_station(self, name: str, *, now: datetime | None = None) -> x509.CertificateRevocationList:
        key_path, cert_path = self._station_paths(name)
        if not cert_path.exists():
            raise UnknownStationError(f"unknown station {name!r}")
        cert = _load_cert(cert_path)
        crl = self._resign_crl({cert.serial_number: _now(now)}, now)
        # The private key is useless now; remove it (or destroy it in the token) so nothing can sign with it.
        self._forget_key(key_path)
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

    # ---- verifier keys, one set per site (port facility)

    def sites(self) -> list[str]:
        return sorted(p.name for p in (self.path / "verifier").iterdir() if p.is_dir() and _STATION_NAME.match(p.name))

    def _site(self, site: str | None) -> str:
        known = self.sites()
        if site is None:
            if len(known) != 1:
                raise KeystoreError(f"name the site: this keystore has {len(known)} ({', '.join(known)})")
            return known[0]
        check_site_name(site)
        if site not in known:
            raise KeystoreError(f"unknown site {site!r} (known: {', '.join(known)}; add it with `keys add-site`)")
        return site

    def add_site(self, site: str) -> bytes:
        """A new port facility with its own verifier key pair. Returns its kid."""
        check_site_name(site)
        site_dir = self.path / "verifier" / site
        if site_dir.exists():
            raise KeystoreExistsError(f"site {site!r} already exists")
        site_dir.mkdir(mode=0o700, parents=True)
        return self._new_verifier(site)

    def _new_verifier(self, site: str) -> bytes:
        token, label = site_token_label(site), f"verifier:{site}:{secrets.token_hex(4)}"
        key = self._generate(None, token, label, derive=True)
        kid = pki.verifier_kid(key.public_key())
        site_dir = self.path / "verifier" / site
        self._store(site_dir / f"{kid.hex()}.key", self._key_pem(key) if self.backend == "file" else
                    json.dumps({"token": token, "label": label}).encode() + b"\n")
        _write_file(site_dir / "current", kid.hex().encode() + b"\n", 0o600)
        return kid

    def _verifier_paths(self, site: str | None = None) -> list[tuple[str, bytes, Path]]:
        sites = self.sites() if site is None else [self._site(site)]
        found = []
        for name in sites:
            site_dir = self.path / "verifier" / name
            stems = sorted({p.stem for p in site_dir.iterdir() if p.suffix in (".key", ".token")})
            for stem in stems:
                if _KID_HEX.match(stem):
                    found.append((name, bytes.fromhex(stem), site_dir / f"{stem}.key"))
        return found

    def verifier_kids(self, site: str | None = None) -> list[bytes]:
        return [kid for _, kid, _ in self._verifier_paths(site)]

    def site_of(self, kid: bytes) -> str:
        for name, known, _ in self._verifier_paths():
            if known == kid:
                return name
        raise KeystoreError(f"no verifier key {kid.hex()}")

    def current_verifier_kid(self, site: str | None = None) -> bytes:
        name = self._site(site)
        try:
            text = (self.path / "verifier" / name / "current").read_text().strip()
        except FileNotFoundError as exc:
            raise KeystoreCorruptError(f"site {name}: no current verifier key") from exc
        if not _KID_HEX.match(text):
            raise KeystoreCorruptError(f"verifier/{name}/current is not a key id")
        return bytes.fromhex(text)

    def _verifier_key(self, kid: bytes) -> Any:
        return self._load_key(self.path / "verifier" / self.site_of(kid) / f"{kid.hex()}.key")

    def verifier_not_after(self, kid: bytes) -> datetime | None:
        """End of the overlap period of a rotated verifier key; None for a site's current key."""
        path = self.path / "verifier" / self.site_of(kid) / f"{kid.hex()}.not-after"
        try:
            return datetime.fromisoformat(path.read_text().strip())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise KeystoreCorruptError(f"{path} is not a date") from exc

    def verifier_public_key(self, site: str | None = None) -> ec.EllipticCurvePublicKey:
        """A site's current verifier public key: enrolment seals new templates to this one."""
        public: ec.EllipticCurvePublicKey = self._verifier_key(self.current_verifier_kid(site)).public_key()
        return public

    def seal_recipients(self, sites: list[str] | None = None) -> list[ec.EllipticCurvePublicKey]:
        """The current verifier public key of each site (all sites by default): seal() to these."""
        return [self.verifier_public_key(name) for name in (self.sites() if sites is None else sites)]

    def rotate_verifier(
        self, site: str | None = None, *, overlap: timedelta = DEFAULT_OVERLAP, now: datetime | None = None
    ) -> bytes:
        """New current verifier key for a site. The old one keeps unsealing cards until now + overlap (then
        gates refuse it: re-seal those cards at the key officer's, `cardbound keys reseal-card`, or re-enrol
        them at a desk), and is deleted by
        `retire_verifier`."""
        name = self._site(site)
        old = self.current_verifier_kid(name)
        until = _now(now) + overlap
        _write_file(self.path / "verifier" / name / f"{old.hex()}.not-after", until.isoformat().encode(), 0o644)
        return self._new_verifier(name)

    def retire_verifier(self, kid: bytes) -> None:
        """Delete an old verifier key: gates exported after this can no longer read cards sealed to it."""
        name = self.site_of(kid)
        if kid == self.current_verifier_kid(name):
            raise KeystoreError("cannot retire the current verifier key (rotate first)")
        self._forget_key(self.path / "verifier" / name / f"{kid.hex()}.key")
        with contextlib.suppress(FileNotFoundError):
            (self.path / "verifier" / name / f"{kid.hex()}.not-after").unlink()

    # ---- cards

    def management_reference(self) -> dict[str, str] | None:
        """The token handle of the card management master (pkcs11 backend), else None (the 0600 file)."""
        path = self.path / MANAGEMENT_TOKEN
        return json.loads(path.read_text()) if path.is_file() else None

    def management_key_for(self, guid: bytes) -> bytes:
        ref = self.management_reference()
        if ref is not None:
            from card import pkcs11

            try:
                master = self._token(ref["token"]).hmac_key(ref["label"])
                return pki.derive_management_key_kbkdf(master.mac, guid)
            except pkcs11.TokenError as exc:
                raise KeystoreError(f"token: {exc}") from None
        try:
            master = (self.path / "management.secret").read_bytes()
        except FileNotFoundError as exc:
            raise KeystoreCorruptError("missing management.secret") from exc
        if len(master) != pki.MASTER_SECRET_LENGTH:
            raise KeystoreCorruptError("management.secret has the wrong length")
        return pki.derive_management_key(master, guid)

    # ---- holder-reference key (HMAC of national register numbers; see card.holderref and verify.banlist)

    def holder_ref_reference(self) -> dict[str, str] | None:
        """The token handle of the holder-reference key (pkcs11 backend), else None."""
        path = self.path / HOLDER_REF_TOKEN
        return json.loads(path.read_text()) if path.is_file() else None

    def has_holder_ref_key(self) -> bool:
        return (self.path / HOLDER_REF_TOKEN).is_file() or (self.path / HOLDER_REF_KEY).is_file()

    def new_holder_ref_key(self) -> Any:
        """Make the holder-reference key: a non-extractable HMAC key in token cb-holder-ref (pkcs11 backend;
        `holder-ref.token` is its handle), or a 0600 file `holder-ref.key`. Never replaces an existing key: every
        holder reference on every card was computed with it."""
        from card import holderref

        if self.has_holder_ref_key():
            raise KeystoreExistsError(f"{self.path} already has a holder-reference key; not replaced")
        if self.backend == "file":
            try:
                return holderref.new_file_key(self.path / HOLDER_REF_KEY)
            except holderref.HolderRefKeyError as exc:
                raise KeystoreError(str(exc)) from None
        from card import pkcs11

        try:
            key = self._token(holderref.TOKEN_HOLDER_REF).generate_hmac(holderref.TOKEN_KEY_LABEL)
        except pkcs11.TokenError as exc:
            raise KeystoreError(f"token: {exc}") from None
        ref = {"token": holderref.TOKEN_HOLDER_REF, "label": holderref.TOKEN_KEY_LABEL}
        _write_file(self.path / HOLDER_REF_TOKEN, json.dumps(ref).encode() + b"\n", 0o644)
        return key

    def ensure_holder_ref_key(self) -> Any:
        return self.holder_ref_key() if self.has_holder_ref_key() else self.new_holder_ref_key()

    def holder_ref_key(self) -> Any:
        """The holder-reference key (`card.holderref.HolderRefKey`): the token's HMAC key or the 0600 file."""
        from card import holderref

        ref = self.holder_ref_reference()
        try:
            if ref is not None:
                self._token(ref["token"])  # this home's token directory, logged in
                return holderref.open_token_key(ref["token"], ref["label"])
            return holderref.load_file_key(self.path / HOLDER_REF_KEY)
        except holderref.HolderRefKeyError as exc:
            raise KeystoreError(f"{exc} (create it with `cardbound keys init` / `cardbound gate pseudonymise "
                                "--new-key`)") from None

    def holder_ref_key_spec(self) -> str:
        """How a gate configuration names the key (`ban_list_key`): the file's path, or its `pkcs11:` URI."""
        from card import holderref

        ref = self.holder_ref_reference()
        return str(self.path / HOLDER_REF_KEY) if ref is None else holderref.token_uri(ref["token"], ref["label"])

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

    # ---- inventory (what `cardbound keys show --json` prints and the evidence pack reads)

    def _backend_of(self, key_path: Path) -> dict[str, str]:
        ref = self.key_reference(key_path)
        if ref is not None:
            return {"backend": "token", "token": ref["token"], "token_label": ref["label"]}
        return {"backend": "file", "file": str(key_path.relative_to(self.path))}

    def inventory(self, *, now: datetime | None = None) -> list[dict[str, Any]]:
        """Every key and certificate with id, algorithm, backend (token or file), usage, validity and status
        (valid / revoked / expired / rotated / stale). No secret ever appears here."""
        when = _now(now)
        items: list[dict[str, Any]] = []

        def validity(cert: x509.Certificate) -> dict[str, str]:
            return {"not_before": cert.not_valid_before_utc.isoformat(),
                    "not_after": cert.not_valid_after_utc.isoformat()}

        def cert_status(cert: x509.Certificate, revoked: bool = False) -> str:
            if revoked:
                return "revoked"
            if when > cert.not_valid_after_utc:
                return "expired"
            return "not_yet_valid" if when < cert.not_valid_before_utc else "valid"

        ca = self.ca_certificate()
        fingerprint = hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest()
        items.append({"id": f"ca:{fingerprint[:16]}", "kind": "ca", "algorithm": "ECDSA P-256 / SHA-256",
                      "usage": "keyCertSign, cRLSign (basicConstraints CA, pathlen 0)",
                      "subject": ca.subject.rfc4514_string(),
                      "sha256": fingerprint, **self._backend_of(self.path / "ca.key"), **validity(ca),
                      "status": cert_status(ca)})
        crl = self.crl()
        revoked_serials = {entry.serial_number for entry in crl}
        nxt = crl.next_update_utc
        items.append({"id": f"crl:{pki.crl_number(crl)}", "kind": "crl", "algorithm": "ECDSA P-256 / SHA-256",
                      "usage": "revocation of station and card-auth certificates", "backend": "file",
                      "number": pki.crl_number(crl), "revoked": len(revoked_serials),
                      "this_update": crl.last_update_utc.isoformat(), "next_update": nxt.isoformat() if nxt else None,
                      "status": "stale" if nxt is None or when > nxt else "valid"})
        for cert_path in sorted((self.path / "stations").glob("*.crt")):
            cert = _load_cert(cert_path)
            revoked = cert_path.name.endswith(".revoked.crt") or cert.serial_number in revoked_serials
            name = cert_path.name.split(".")[0] if cert_path.name.endswith(".revoked.crt") else cert_path.name[:-4]
            key_path = self.path / "stations" / f"{name}.key"
            backend = self._backend_of(key_path) if self._has_key(key_path) and not revoked else {
                "backend": "destroyed"}
            items.append({"id": f"station:{name}:{cert.serial_number:x}", "kind": "station",
                          "algorithm": "ECDSA P-256 / SHA-256 (COSE ES256)",
                          "usage": f"template signing (EKU {pki.OID_EKU_TEMPLATE_SIGNING.dotted_string})",
                          "subject": name, **backend, **validity(cert), "status": cert_status(cert, revoked)})
        for site, kid, key_path in self._verifier_paths():
            until = self.verifier_not_after(kid)
            current = kid == self.current_verifier_kid(site)
            status = "valid" if current else ("expired" if until is not None and when > until else "rotated")
            items.append({"id": f"verifier:{kid.hex()}", "kind": "verifier", "site": site,
                          "algorithm": "ECDH P-256 (COSE ECDH-ES + A256KW)",
                          "usage": "unseal templates (key agreement)",
                          **self._backend_of(key_path), "current": current,
                          "not_after": until.isoformat() if until else None, "status": status})
        for cert_path in sorted((self.path / "cards").glob("*.crt")) if (self.path / "cards").is_dir() else []:
            cert = _load_cert(cert_path)
            guid = bytes.fromhex(cert_path.name.split(".")[0])
            from card.values import CardId

            items.append({"id": f"card-auth:{cert.serial_number:x}", "kind": "card_auth",
                          "card_id": str(CardId.of(guid)),
                          "algorithm": "ECDSA P-256 (generated on the card, slot 9E)",
                          "usage": "card authentication (EKU id-PIV-cardAuth)", "backend": "card", **validity(cert),
                          "status": cert_status(cert, cert.serial_number in revoked_serials)})
        management = self.management_reference()
        if management is not None:
            items.append({"id": "management-master", "kind": "secret",
                          "algorithm": "HMAC-SHA256 key (NIST SP 800-108r1 counter-mode KDF)",
                          "usage": "derives each card's PIV 9B management key (AES-128)", "backend": "token",
                          "token": management["token"], "token_label": management["label"], "status": "valid"})
        elif (self.path / "management.secret").is_file():
            items.append({"id": "management-master", "kind": "secret", "algorithm": "HKDF-SHA256 master, 32 bytes",
                          "usage": "derives each card's PIV 9B management key (AES-128)", "backend": "file",
                          "file": "management.secret", "status": "valid"})
        holder_ref = self.holder_ref_reference()
        if holder_ref is not None or (self.path / HOLDER_REF_KEY).is_file():
            where = ({"backend": "token", "token": holder_ref["token"], "token_label": holder_ref["label"]}
                     if holder_ref is not None else {"backend": "file", "file": HOLDER_REF_KEY})
            items.append({"id": "holder-ref", "kind": "secret", "algorithm": "HMAC-SHA256 key",
                          "usage": "pseudonymous holder references (desk) and ban-list matching (gate)", **where,
                          "status": "valid"})
        for record_path in sorted((self.path / "gates").glob("*.json")) if (self.path / "gates").is_dir() else []:
            record = json.loads(record_path.read_text())
            items.append({"id": f"gate-bundle:{record['gate']}", "kind": "gate_bundle", "site": record["site"],
                          "exported": record["exported"], "verifier_kids": record["kids"], "backend": self.backend,
                          "status": "exported"})
        return items

    # ---- gates and desks (role bundles: see card.bundles for what each holds and how it is checked)

    def gate_trust(self, site: str | None = None) -> GateTrust:
        paths = self._verifier_paths(site)
        keys = [self._load_key(path) for _, _, path in paths]
        not_after = {kid: t for _, kid, _ in paths if (t := self.verifier_not_after(kid)) is not None}
        return GateTrust.create(self.ca_certificate(), self.crl(), keys, not_after=not_after,
                                site=None if site is None else self._site(site))

    def export_gate(self, gate: str, dest: Path, *, site: str | None = None, now: datetime | None = None) -> Path:
        """Write gate GATE's bundle: its site's verifier keys (current and in overlap), the CA certificate, the
        CRL, the holder-reference key (ban list) when there is one. No CA key, no station key, no management
        secret, no other site's key."""
        from card import bundles

        _check_station_name(gate)
        name = self._site(site)
        paths = self._verifier_paths(name)
        verifiers = []
        for _, kid, path in paths:
            ref = self.key_reference(path)
            pem = None if ref is not None else self._key_pem(self._load_key(path))
            verifiers.append(bundles.VerifierEntry(kid, self.verifier_not_after(kid), pem,
                                                   None if ref is None else ref["label"]))
        out = bundles.write_gate_bundle(
            Path(dest), gate=gate, site=name, ca=_cert_pem(self.ca_certificate()),
            crl=self.crl().public_bytes(serialization.Encoding.PEM), verifiers=verifiers, now=_now(now),
            token=self._token_manifest(site_token_label(name)),
            holder_ref_key=holder.read_bytes() if (holder := self.path / HOLDER_REF_KEY).is_file() else None,
            holder_ref_token=self.holder_ref_reference(),
        )
        record = {"gate": gate, "site": name, "exported": _now(now).isoformat(),
                  "kids": [v.kid.hex() for v in verifiers]}
        (self.path / "gates").mkdir(mode=0o700, exist_ok=True)
        _write_file(self.path / "gates" / f"{gate}.json", json.dumps(record).encode(), 0o644)
        return out

    def _token_manifest(self, token: str) -> dict[str, str]:
        """How a station finds its token: the label, and (SoftHSM2) the configuration of this home's token dir."""
        if self.backend != "pkcs11":
            return {}
        from card import pkcs11

        return {"token": token, "softhsm_conf": str(pkcs11.softhsm_conf_path(self.token_dir))}

    def site_of_gate(self, gate: str) -> str:
        """The site a gate's bundle was last exported for."""
        _check_station_name(gate)
        try:
            return str(json.loads((self.path / "gates" / f"{gate}.json").read_text())["site"])
        except (OSError, ValueError, KeyError) as exc:
            raise KeystoreError(f"no bundle was exported for gate {gate!r}") from exc

    def export_gate_trust(self, dest: Path, *, gate: str = "gate", site: str | None = None) -> Path:
        """Compatibility name for `export_gate` (single-site keystores)."""
        return self.export_gate(gate, dest, site=site)

    def export_desk(
        self, station: str, dest: Path, *, sites: list[str] | None = None, now: datetime | None = None
    ) -> Path:
        """Write station STATION's desk bundle: its signing key and certificate, the CA certificate, the CRL,
        the current verifier *public* key of each site it enrols for, the management master secret.
        No CA key, no verifier private key."""
        from card import bundles

        key_path, cert_path = self._station_paths(station)
        if not cert_path.exists():
            raise UnknownStationError(f"unknown station {station!r}")
        names = self.sites() if sites is None else [self._site(x) for x in sites]
        recipients = [(name, self.verifier_public_key(name)) for name in names]
        management = self.management_reference()
        master: bytes | None = None
        if management is None:
            try:
                master = (self.path / "management.secret").read_bytes()
            except FileNotFoundError as exc:
                raise KeystoreCorruptError("missing management.secret") from exc
        holder = self.path / HOLDER_REF_KEY
        holder_ref = self.holder_ref_reference()
        ref = self.key_reference(key_path)
        return bundles.write_desk_bundle(
            Path(dest), station=station, holder_ref_key=holder.read_bytes() if holder.is_file() else None,
            holder_ref_token=holder_ref,
            key_pem=None if ref is not None else self._key_pem(self._load_key(key_path)),
            token=None if ref is None else {**self._token_manifest(ref["token"]), "key": ref["label"]},
            certificate=cert_path.read_bytes(), ca=_cert_pem(self.ca_certificate()),
            crl=self.crl().public_bytes(serialization.Encoding.PEM), recipients=recipients,
            management_secret=master, management_token=management, now=_now(now),
        )


def load_gate_trust(bundle: Path, *, passphrase: bytes | None = None) -> GateTrust:
    """Load a gate bundle written by `KeyStore.export_gate` (checked: role, contents, permissions)."""
    from card import bundles

    return bundles.load_gate_bundle(Path(bundle), passphrase=passphrase)


write_file = _write_file  # for card.bundles: same atomic, final-permission writes
