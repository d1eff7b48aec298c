"""The pack's manifest: `SHA256SUMS` (the `sha256sum` format: "<hex>  <path>") of every file, signed with the
processor's evidence key (ECDSA P-256) as a detached DER signature over the file, `SHA256SUMS.sig`. The public key
travels in the pack as `evidence-key.pub.pem`; its SHA-256 fingerprint is what the auditor compares with the one
the processor gave them out of band. Checkable without cardbound:

    sha256sum -c SHA256SUMS
    openssl dgst -sha256 -verify evidence-key.pub.pem -signature SHA256SUMS.sig SHA256SUMS
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SUMS = "SHA256SUMS"
SIG = "SHA256SUMS.sig"
PUBKEY = "evidence-key.pub.pem"
UNLISTED = {SUMS, SIG}  # the only files of a pack that SHA256SUMS does not list
KEY_FILE = "evidence.key"


class ManifestError(ValueError):
    pass


def load_or_create_key(keys_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The processor's evidence signing key, `keys/evidence.key` (PKCS#8 PEM, 0600), created on first use."""
    path = keys_dir / KEY_FILE
    if not path.exists():
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return key
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ManifestError(f"{path}: not an EC private key")
    return loaded


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(pub_pem: bytes) -> str:
    """SHA-256 of the DER public key, as `openssl pkey -pubin -outform DER | sha256sum` prints it."""
    pub = serialization.load_pem_public_key(pub_pem)
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def files(root: Path) -> Iterator[str]:
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            rel = Path(dirpath, n).relative_to(root).as_posix()
            if rel not in UNLISTED:
                yield rel


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write(root: Path, key: ec.EllipticCurvePrivateKey) -> int:
    (root / PUBKEY).write_bytes(public_pem(key))
    names = sorted(files(root))
    for n in names:
        if "\n" in n or "\\" in n:
            raise ManifestError(f"file name not representable in SHA256SUMS: {n!r}")
    text = "".join(f"{sha256_file(root / n)}  {n}\n" for n in names)
    (root / SUMS).write_text(text, encoding="utf-8")
    (root / SIG).write_bytes(key.sign(text.encode("utf-8"), ec.ECDSA(hashes.SHA256())))
    return len(names)


@dataclass
class ManifestReport:
    findings: list[str] = field(default_factory=list)
    checked: int = 0
    fingerprint: str | None = None

    @property
    def ok(self) -> bool:
        return not self.findings


def verify(root: Path, progress: Callable[[int, int], None] | None = None,
           expected_fingerprint: str | None = None) -> ManifestReport:
    r = ManifestReport()
    sums, sig, pub = root / SUMS, root / SIG, root / PUBKEY
    for p in (sums, sig, pub):
        if not p.is_file():
            r.findings.append(f"MISSING: {p.name} (the pack cannot be checked without it)")
    if r.findings:
        return r
    data = sums.read_bytes()
    try:
        key = serialization.load_pem_public_key(pub.read_bytes())
        r.fingerprint = fingerprint(pub.read_bytes())
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("not an EC public key")
        key.verify(sig.read_bytes(), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        r.findings.append(f"BAD-SIGNATURE: {SIG} does not verify {SUMS} with {PUBKEY}")
    except ValueError as exc:
        r.findings.append(f"BAD-KEY: {PUBKEY}: {exc}")
    if expected_fingerprint and r.fingerprint and expected_fingerprint.lower() != r.fingerprint:
        r.findings.append(f"WRONG-KEY: {PUBKEY} has fingerprint {r.fingerprint}, expected {expected_fingerprint}")
    listed: dict[str, str] = {}
    for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            r.findings.append(f"MALFORMED: {SUMS} line {n}")
            continue
        listed[name] = digest
    present = set(files(root))
    total = len(listed)
    for i, (name, digest) in enumerate(sorted(listed.items()), 1):
        if progress:
            progress(i, total)
        path = root / name
        if name not in present:
            r.findings.append(f"REMOVED: {name} is listed in {SUMS} but missing from the pack")
            continue
        r.checked += 1
        if sha256_file(path) != digest:
            r.findings.append(f"MODIFIED: {name}: SHA-256 differs from {SUMS}")
    for name in sorted(present - set(listed)):
        r.findings.append(f"ADDED: {name} is in the pack but not listed in {SUMS}")
    return r
