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
    ks.gate_trust(site=None) -> sealed.GateTrust            # site None: every site's keys (processor view)
    ks.export_gate(gate, dest_dir, *, site=None) -> Path    # gate bundle: its site's verifier keys, CA cert, CRL
    ks.export_desk(station, dest_dir, *, sites=None) -> Path  # desk bundle: station key, certs, CRL, recipients
    load_gate_trust(bundle_dir) -> sealed.GateTrust         # = card.bundles.load_gate_bundle (what a gate does)

    KeystoreError (.. KeystoreMissingError, KeystoreExistsError, UnknownStationError, StationExistsError,
                   KeystoreCorruptError)

Seam for an HSM: everything that uses a private key goes through this class (`station_credentials` returns a
signer object, not key bytes), so a PKCS#11 keystore with the same methods can replace it without touching
callers. Layout::

    ca.key ca.crt crl.pem management.secret                 # *.key: PKCS#8 encrypted (card.keyfile), 0600
    stations/NAME.key  stations/NAME.crt  stations/NAME.<serial>.revoked.crt
    verifier/SITE/<kid>.key  verifier/SITE/current  verifier/SITE/<kid>.not-after   # per site; rotated keys
    gates/GATE.json                                          # which site a gate bundle was exported for
    cards/<guid>.<serial>.crt                     # issued card-auth certificates (public), for revocation
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from card import keyfile, pki
from card.sealed import GateTrust, StationCredentials

_STATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KID_HEX = re.compile(r"^[0-9a-f]{16}$")
DEFAULT_SITE = "default"
HOLDER_REF_KEY = "holder-ref.key"  # HMAC key of pseudonymous holder references (verify.banlist format)
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
        self._keys: dict[Path, ec.EllipticCurvePrivateKey] = {}  # decrypted once per process (scrypt is slow)

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

    def _load_key(self, path: Path) -> ec.EllipticCurvePrivateKey:
        key = self._keys.get(path)
        if key is None:
            key = self._keys[path] = load_key_file(path, self.passphrase())
        return key

    # ---- lifecycle

    @classmethod
    def init(
        cls, path: Path, *, now: datetime | None = None, site: str = DEFAULT_SITE, passphrase: bytes | None = None
    ) -> KeyStore:
        path = Path(path)
        if (path / "ca.key").exists():
            raise KeystoreExistsError(f"keystore already initialised at {path}")
        check_site_name(site)
        when = _now(now)
        store = cls(path, passphrase=passphrase)
        store.passphrase()  # fail before anything is written
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        for sub in ("stations", "verifier", "gates"):
            (path / sub).mkdir(mode=0o700, exist_ok=True)
        ca_key = pki.new_ec_key()
        ca_cert = pki.make_ca_certificate(ca_key, now=when)
        _write_file(path / "management.secret", secrets.token_bytes(pki.MASTER_SECRET_LENGTH), 0o600)
        _write_file(path / "ca.crt", _cert_pem(ca_cert), 0o644)
        store._write_crl(pki.build_crl(ca_key, ca_cert, {}, number=1, now=when))
        store.add_site(site)
        # The CA key is written last: its presence is what marks the keystore as initialised.
        _write_file(path / "ca.key", store._key_pem(ca_key), 0o600)
        return store

    @classmethod
    def open(cls, path: Path, *, passphrase: bytes | None = None) -> KeyStore:
        path = Path(path)
        if not (path / "ca.key").is_file():
            raise KeystoreMissingError(f"no keystore at {path} (run `cardbound keys init`)")
        return cls(path, passphrase=passphrase)

    @property
    def can_issue_cards(self) -> bool:
        return True  # the key officer's keystore holds the CA key

    # ---- CA and CRL

    def ca_certificate(self) -> x509.Certificate:
        return _load_cert(self.path / "ca.crt")

    def _ca_key(self) -> ec.EllipticCurvePrivateKey:
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
        key = pki.new_ec_key()
        cert = pki.issue_station_certificate(
            self._ca_key(), self.ca_certificate(), name, key.public_key(), now=_now(now), lifetime=lifetime
        )
        _write_file(key_path, self._key_pem(key), 0o600)
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
        key = pki.new_ec_key()
        kid = pki.verifier_kid(key.public_key())
        site_dir = self.path / "verifier" / site
        _write_file(site_dir / f"{kid.hex()}.key", self._key_pem(key), 0o600)
        _write_file(site_dir / "current", kid.hex().encode() + b"\n", 0o600)
        return kid

    def _verifier_paths(self, site: str | None = None) -> list[tuple[str, bytes, Path]]:
        sites = self.sites() if site is None else [self._site(site)]
        found = []
        for name in sites:
            for key_path in sorted((self.path / "verifier" / name).glob("*.key")):
                if _KID_HEX.match(key_path.stem):
                    found.append((name, bytes.fromhex(key_path.stem), key_path))
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

    def _verifier_key(self, kid: bytes) -> ec.EllipticCurvePrivateKey:
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
        return self._verifier_key(self.current_verifier_kid(site)).public_key()

    def seal_recipients(self, sites: list[str] | None = None) -> list[ec.EllipticCurvePublicKey]:
        """The current verifier public key of each site (all sites by default): seal() to these."""
        return [self.verifier_public_key(name) for name in (self.sites() if sites is None else sites)]

    def rotate_verifier(
        self, site: str | None = None, *, overlap: timedelta = DEFAULT_OVERLAP, now: datetime | None = None
    ) -> bytes:
        """New current verifier key for a site. The old one keeps unsealing cards until now + overlap (then
        gates refuse it: re-seal those cards at a desk, `cardbound enrol --reseal`), and is deleted by
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
        (self.path / "verifier" / name / f"{kid.hex()}.key").unlink()
        with contextlib.suppress(FileNotFoundError):
            (self.path / "verifier" / name / f"{kid.hex()}.not-after").unlink()

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

    # ---- gates and desks (role bundles: see card.bundles for what each holds and how it is checked)

    def gate_trust(self, site: str | None = None) -> GateTrust:
        paths = self._verifier_paths(site)
        keys = [self._load_key(path) for _, _, path in paths]
        not_after = {kid: t for _, kid, _ in paths if (t := self.verifier_not_after(kid)) is not None}
        return GateTrust.create(self.ca_certificate(), self.crl(), keys, not_after=not_after,
                                site=None if site is None else self._site(site))

    def export_gate(self, gate: str, dest: Path, *, site: str | None = None, now: datetime | None = None) -> Path:
        """Write gate GATE's bundle: its site's verifier keys (current and in overlap), the CA certificate, the
        CRL. No CA key, no station key, no management secret, no other site's key."""
        from card import bundles

        _check_station_name(gate)
        name = self._site(site)
        paths = self._verifier_paths(name)
        verifiers = [
            bundles.VerifierEntry(kid, self.verifier_not_after(kid), self._key_pem(self._load_key(path)))
            for _, kid, path in paths
        ]
        out = bundles.write_gate_bundle(
            Path(dest), gate=gate, site=name, ca=_cert_pem(self.ca_certificate()),
            crl=self.crl().public_bytes(serialization.Encoding.PEM), verifiers=verifiers, now=_now(now),
        )
        record = {"gate": gate, "site": name, "exported": _now(now).isoformat(),
                  "kids": [v.kid.hex() for v in verifiers]}
        (self.path / "gates").mkdir(mode=0o700, exist_ok=True)
        _write_file(self.path / "gates" / f"{gate}.json", json.dumps(record).encode(), 0o644)
        return out

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
        try:
            master = (self.path / "management.secret").read_bytes()
        except FileNotFoundError as exc:
            raise KeystoreCorruptError("missing management.secret") from exc
        holder = self.path / HOLDER_REF_KEY
        return bundles.write_desk_bundle(
            Path(dest), station=station, holder_ref_key=holder.read_bytes() if holder.is_file() else None,
            key_pem=self._key_pem(self._load_key(key_path)),
            certificate=cert_path.read_bytes(), ca=_cert_pem(self.ca_certificate()),
            crl=self.crl().public_bytes(serialization.Encoding.PEM), recipients=recipients,
            management_secret=master, now=_now(now),
        )


def load_gate_trust(bundle: Path, *, passphrase: bytes | None = None) -> GateTrust:
    """Load a gate bundle written by `KeyStore.export_gate` (checked: role, contents, permissions)."""
    from card import bundles

    return bundles.load_gate_bundle(Path(bundle), passphrase=passphrase)


write_file = _write_file  # for card.bundles: same atomic, final-permission writes
