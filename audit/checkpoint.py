"""Signed checkpoints in the C2SP `checkpoint` + `signed-note` text formats, Ed25519 via `cryptography`.

    cardbound.audit/<node>\n          origin
    1234\n                            tree size
    <base64 root>\n                   RFC 9162 root hash
    time 1732440000123\n              extension line: signing time, ms since the epoch
    \n
    — cardbound-audit-<node> <base64(key id[4] ‖ Ed25519 signature)>\n

Key id = SHA-256(name ‖ "\\n" ‖ 0x01 ‖ public key)[:4] (signed-note, algorithm 0x01 = Ed25519). The per-node
signing key is a PKCS#8 PEM file, mode 0600, created on first use; its verifier key is written beside it
(`.pub`, the signed-note "vkey" string) so that auditors can keep it apart from the log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ORIGIN_PREFIX = "cardbound.audit/"
_ALG_ED25519 = 0x01
_SIG_PREFIX = "\u2014 "
_NAME_RE = re.compile(r"[!-*,-~]{1,128}")  # printable, no '+', no spaces (signed-note key names)


class CheckpointError(ValueError):
    """A checkpoint is malformed, or its signature does not verify."""


class BadSignatureError(CheckpointError):
    """The checkpoint text is well formed but no signature by the expected key verifies."""


def key_name(node_id: str) -> str:
    return f"cardbound-audit-{node_id}"


def origin(node_id: str) -> str:
    return ORIGIN_PREFIX + node_id


@dataclass(frozen=True)
class VerifierKey:
    """A signed-note verifier key: name + Ed25519 public key, `name+hex(key id)+base64(alg ‖ key)`.

    `ALG` is the signed-note signature type (0x01: Ed25519 note signatures); the key id binds name, type and key:
    SHA-256(name ‖ "\\n" ‖ alg ‖ key)[:4]. A subclass with another type (the witness's cosignature/v1 key) reuses
    the encoding and its checks."""

    ALG: ClassVar[int] = _ALG_ED25519
    KIND: ClassVar[str] = "verifier"

    name: str
    public_raw: bytes

    @property
    def key_id(self) -> bytes:
        return hashlib.sha256(self.name.encode() + b"\n" + bytes([self.ALG]) + self.public_raw).digest()[:4]

    def encode(self) -> str:
        blob = base64.b64encode(bytes([self.ALG]) + self.public_raw).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    @classmethod
    def decode(cls, text: str) -> Self:
        try:
            name, hexid, blob = text.strip().split("+", 2)
            raw = base64.b64decode(blob, validate=True)
            kid = bytes.fromhex(hexid)
        except (ValueError, binascii.Error) as exc:
            raise CheckpointError(f"malformed {cls.KIND} key: {exc}") from None
        if not _NAME_RE.fullmatch(name) or len(raw) != 33 or raw[0] != cls.ALG:
            raise CheckpointError(f"malformed {cls.KIND} key (name or algorithm)")
        key = cls(name, raw[1:])
        if not hmac.compare_digest(key.key_id, kid):
            raise CheckpointError(f"{cls.KIND} key id does not match its key")
        return key

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_raw).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class NoteSigningKey(Protocol):
    """What signs checkpoints: an `Ed25519PrivateKey`, or an Ed25519 key in a PKCS#11 token
    (`card.pkcs11.TokenEd25519Key`, non-extractable) plugged in by the station through `AuditLog.open(signer=...)`."""

    def sign(self, data: bytes) -> bytes: ...

    def public_key(self) -> Ed25519PublicKey: ...


@dataclass(frozen=True)
class Signer:
    name: str
    private: NoteSigningKey

    @property
    def verifier(self) -> VerifierKey:
        raw = self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return VerifierKey(self.name, raw)


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    time_ms: int
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), f"time {self.time_ms}"]
        lines.extend(self.extensions)
        return "\n".join(lines) + "\n"

    def sign(self, signer: Signer) -> str:
        return sign_note(self.body(), signer)


def sign_note(text: str, signer: Signer) -> str:
    """A C2SP signed note: text (ending in a newline), a blank line, one signature line."""
    if not text.endswith("\n") or "\n\n" in text:
        raise CheckpointError("note text must end with one newline and hold no blank line")
    sig = signer.private.sign(text.encode())
    blob = base64.b64encode(signer.verifier.key_id + sig).decode()
    return f"{text}\n{_SIG_PREFIX}{signer.name} {blob}\n"


def open_note(note: str, key: VerifierKey) -> str:
    """The text of a signed note if `key` signed it; raise CheckpointError / BadSignatureError otherwise."""
    if len(note) > 16384 or "\n\n" not in note:
        raise CheckpointError("not a signed note (no blank line)")
    body, _, sigs = note.partition("\n\n")
    body += "\n"
    verified = False
    for line in sigs.splitlines():
        if not line.startswith(_SIG_PREFIX):
            raise CheckpointError("malformed signature line")
        try:
            name, blob = line[len(_SIG_PREFIX) :].split(" ")
            raw = base64.b64decode(blob, validate=True)
        except (ValueError, binascii.Error):
            raise CheckpointError("malformed signature line") from None
        if name == key.name and len(raw) == 68 and hmac.compare_digest(raw[:4], key.key_id):
            verified = verified or key.verify(body.encode(), raw[4:])
    if not verified:
        raise BadSignatureError(f"no valid signature by {key.name}")
    return body


def parse_checkpoint(note: str, key: VerifierKey) -> Checkpoint:
    """Parse a signed checkpoint and check its signature by `key`; raise CheckpointError / BadSignatureError."""
    body = open_note(note, key)
    lines = body.split("\n")[:-1]
    if len(lines) < 4 or not lines[3].startswith("time "):
        raise CheckpointError("checkpoint body needs origin, size, root and time lines")
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
        time_ms = int(lines[3][5:])
    except (ValueError, binascii.Error):
        raise CheckpointError("bad size, root or time line") from None
    if size < 0 or len(root) != 32 or str(size) != lines[1]:
        raise CheckpointError("bad size or root")
    return Checkpoint(lines[0], size, root, time_ms, tuple(lines[4:]))


def key_path(keys_dir: Path, node_id: str) -> Path:
    return keys_dir / f"audit-{node_id}.ed25519"


# Where a station's checkpoint key lives when it is not a file: the composition root registers a source (the
# station's PKCS#11 token, for homes on the pkcs11 key backend) so that every `AuditLog.open` of that station —
# `cardbound enrol`, `gate`, `keys ...`, `desk` — signs in the token instead of creating a key file.
# The source gets (keys directory, node id) and returns a Signer, or None for "use the key file".
SignerSource = Callable[[Path, str], "Signer | None"]
_signer_source: SignerSource | None = None


def set_signer_source(source: SignerSource | None) -> None:
    global _signer_source
    _signer_source = source


def load_or_create_signer(path: Path, node_id: str) -> Signer:
    """The node's checkpoint signing key: PKCS#8 PEM, 0600, created on first use (with a `.pub` beside it).
    A home whose key lives in a token (the registered source answers) never gets a key file; a key file that
    already exists is kept (its log's checkpoints were signed with it)."""
    name = key_name(node_id)
    if not path.exists() and _signer_source is not None:
        found = _signer_source(path.parent, node_id)
        if found is not None:
            return found
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise CheckpointError(f"{path}: signing key readable by others (chmod 600)")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointError(f"{path}: not an Ed25519 key")
        signer = Signer(name, key)
        pub = path.with_name(path.name + ".pub")
        if not pub.exists():  # a writer killed between creating the key and its .pub
            pub.write_text(signer.verifier.encode() + "\n")
        return signer
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = Signer(name, key)
    pub = path.with_name(path.name + ".pub")
    # Written aside then hard-linked into place: two processes racing to create the key must end up with one.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        return load_or_create_signer(path, node_id)
    finally:
        tmp.unlink()
    pub.write_text(signer.verifier.encode() + "\n")
    return signer


def load_verifier(path: Path) -> VerifierKey:
    """Read a verifier key file (`.pub`), or derive it from a private key file."""
    text = path.read_text()
    if "PRIVATE KEY" in text:
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointError(f"{path}: not an Ed25519 key")
        name = path.name.removeprefix("audit-").removesuffix(".ed25519")
        return Signer(key_name(name), key).verifier
    return VerifierKey.decode(text)
