"""The holder-reference key: the processor's HMAC-SHA256 key behind pseudonymous holder references.

A holder reference is `HMAC-SHA256(key, 11 ASCII digits of the national register number)` (see `verify.banlist`).
The desk computes it at enrolment, the ban list is produced with it, and a gate checks that its ban list was made
with the same key (the key id in the list's header). Nobody needs the key's *value*, only the MAC, so the key is
used through this small protocol and can stay inside a PKCS#11 token:

    HolderRefKey            .mac(data) -> 32 bytes; .key_id -> 16 hex (public fingerprint); .backend
    FileHolderRefKey        a 0600 file of 64 hex characters (the software backend, development)
    card.pkcs11.TokenHmacKey  a non-extractable CKK_GENERIC_SECRET key, CKM_SHA256_HMAC in the token

    load_file_key(path) -> FileHolderRefKey        # refused when group/world-readable or not 64 hex
    new_file_key(path) -> FileHolderRefKey         # O_EXCL, 0600 from the first byte
    open_holder_ref_key(spec) -> HolderRefKey      # a file path, or an RFC 7512 URI
                                                   #   pkcs11:token=cb-holder-ref;object=holder-ref
    token_uri(token, label) -> str

The key id is `HMAC(key, "cardbound/banlist/key-id/v1")[:8]` in hex — domain-separated from holder references (an
NRN is 11 digits, never this label), and the same value whichever backend computes it, so ban lists stay valid
when a site moves its key into a token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import unquote

KEY_ID_LABEL = b"cardbound/banlist/key-id/v1"
MIN_KEY_BYTES = 16
KEY_FILE_NAME = "holder-ref.key"
TOKEN_HOLDER_REF = "cb-holder-ref"  # noqa: S105 - a token label, not a secret
TOKEN_KEY_LABEL = "holder-ref"  # noqa: S105 - a key label
_URI_ATTRS = frozenset({"token", "object", "type"})


class HolderRefKeyError(ValueError):
    """The holder-reference key cannot be used (missing, loose permissions, malformed, token problem)."""


@runtime_checkable
class HolderRefKey(Protocol):
    """What pseudonymisation and the ban list need from the key: the MAC, and a public fingerprint."""

    @property
    def key_id(self) -> str: ...

    @property
    def backend(self) -> str: ...  # "file" | "token"

    def mac(self, data: bytes) -> bytes: ...  # HMAC-SHA256(key, data), 32 bytes


def fingerprint(key: HolderRefKey) -> str:
    """The key id both backends compute: 16 hex characters."""
    return key.mac(KEY_ID_LABEL).hex()[:16]


class FileHolderRefKey:
    """The software backend: the key's bytes in this process (read from a 0600 file, or given by a test)."""

    backend = "file"

    def __init__(self, key: bytes | bytearray, *, source: str = "<memory>") -> None:
        if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY_BYTES:
            raise HolderRefKeyError(f"the holder-reference key must be at least {MIN_KEY_BYTES} bytes")
        self._key = bytes(key)
        self.source = source

    def mac(self, data: bytes) -> bytes:
        return hmac.new(self._key, bytes(data), hashlib.sha256).digest()

    @property
    def key_id(self) -> str:
        return fingerprint(self)

    def __repr__(self) -> str:  # never the key
        return f"FileHolderRefKey(key_id={self.key_id}, source={self.source})"


def load_file_key(path: str | os.PathLike[str]) -> FileHolderRefKey:
    """Read a key file: 64 hex characters (32 bytes). Refused when group/world-readable (it is a secret)."""
    p = Path(path)
    try:
        st = p.stat()
        text = p.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise HolderRefKeyError(f"{p}: cannot read the key file: {exc}") from None
    if st.st_mode & 0o077:
        raise HolderRefKeyError(f"{p}: key file must not be readable by group or others (chmod 600)")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise HolderRefKeyError(f"{p}: key file must hold 64 hex characters (32 bytes)")
    return FileHolderRefKey(bytes.fromhex(text), source=str(p))


def new_file_key(path: str | os.PathLike[str]) -> FileHolderRefKey:
    """Write a new random key file (0600 from the first byte; an existing file is never replaced)."""
    p = Path(path)
    p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise HolderRefKeyError(f"{p} already exists; not replaced") from None
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return load_file_key(p)


def token_uri(token: str, label: str) -> str:
    """The RFC 7512 URI of a secret key in a token (what a gate configuration's `ban_list_key` may name)."""
    from urllib.parse import quote

    return f"pkcs11:token={quote(token, safe='')};object={quote(label, safe='')};type=secret-key"


def parse_token_uri(uri: str) -> tuple[str, str]:
    """(token label, key label) from `pkcs11:token=...;object=...[;type=secret-key]` (RFC 7512 path attributes)."""
    if not uri.startswith("pkcs11:") or "?" in uri:
        raise HolderRefKeyError(f"{uri!r}: expected pkcs11:token=LABEL;object=LABEL")
    attrs: dict[str, str] = {}
    for part in uri[len("pkcs11:"):].split(";"):
        name, sep, value = part.partition("=")
        if not sep or name not in _URI_ATTRS or name in attrs:
            raise HolderRefKeyError(f"{uri!r}: unexpected attribute {part!r} (token, object, type=secret-key)")
        attrs[name] = unquote(value)
    if attrs.get("type", "secret-key") != "secret-key" or not attrs.get("token") or not attrs.get("object"):
        raise HolderRefKeyError(f"{uri!r}: a holder-reference key URI names token= and object= of a secret key")
    return attrs["token"], attrs["object"]


def open_token_key(token: str, label: str) -> HolderRefKey:
    """The HMAC key `label` in token `token` (module and PIN from the environment, as for every token key)."""
    from card import pkcs11

    try:
        key: HolderRefKey = pkcs11.TokenSession.open(token).hmac_key(label)
    except pkcs11.TokenError as exc:
        raise HolderRefKeyError(f"holder-reference key in the token: {exc}") from None
    return key


def open_holder_ref_key(spec: str | os.PathLike[str]) -> HolderRefKey:
    """A key file path, or an RFC 7512 `pkcs11:` URI naming the key in a token."""
    text = os.fspath(spec)
    if text.startswith("pkcs11:"):
        return open_token_key(*parse_token_uri(text))
    return load_file_key(text)


def as_holder_ref_key(key: HolderRefKey | bytes | bytearray) -> HolderRefKey:
    """Raw bytes (tests, benchmarks, development tools) are a software key; anything else must be a key object."""
    if isinstance(key, bytes | bytearray):
        return FileHolderRefKey(key)
    if not isinstance(key, HolderRefKey):
        raise HolderRefKeyError("the holder-reference key must be a key object (mac, key_id) or bytes")
    return key


__all__ = [
    "KEY_FILE_NAME",
    "TOKEN_HOLDER_REF",
    "TOKEN_KEY_LABEL",
    "FileHolderRefKey",
    "HolderRefKey",
    "HolderRefKeyError",
    "as_holder_ref_key",
    "fingerprint",
    "load_file_key",
    "new_file_key",
    "open_holder_ref_key",
    "open_token_key",
    "parse_token_uri",
    "token_uri",
]
