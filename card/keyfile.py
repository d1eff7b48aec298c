"""Private keys at rest in the software backend: PKCS#8 `EncryptedPrivateKeyInfo` under a passphrase, never plain PEM.

The structure is the standard one (RFC 5958 §3, PBES2 of RFC 8018 §6.2) with scrypt as its KDF (RFC 7914 §7,
id-scrypt 1.3.6.1.4.1.11591.4.11) and AES-256-CBC, so `openssl pkcs8 -in KEY` opens it too. We encode it ourselves
because `cryptography`'s `BestAvailableEncryption` writes PBKDF2 with only 2 048 iterations (measured with
cryptography 50 / OpenSSL 3.0: `openssl asn1parse` shows `INTEGER :0800`); reading goes through OpenSSL.

Where the passphrase comes from, in this order (fail closed: no passphrase, no key)::

    $CARDBOUND_KEY_PASSPHRASE_FILE   a file owned by this user, not readable by group or others (first line)
    $CARDBOUND_KEY_PASSPHRASE        the environment (service managers: systemd `LoadCredential=` is better)
    a prompt                          only when stdin is a terminal

Public API::

    encrypt_private_key(key, passphrase) -> bytes        # PEM "ENCRYPTED PRIVATE KEY"
    load_private_key(pem, passphrase) -> private key     # KeyFileError if plain, wrong passphrase or corrupt
    passphrase() -> bytes                                 # from the sources above; PassphraseMissingError
"""

from __future__ import annotations

import getpass
import os
import stat
import sys
from pathlib import Path
from typing import Any

from asn1crypto import core
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

PASSPHRASE_ENV = "CARDBOUND_KEY_PASSPHRASE"  # noqa: S105 - the variable's name, not a password
PASSPHRASE_FILE_ENV = "CARDBOUND_KEY_PASSPHRASE_FILE"  # noqa: S105
MIN_PASSPHRASE = 12

OID_PBES2 = "1.2.840.113549.1.5.13"
OID_SCRYPT = "1.3.6.1.4.1.11591.4.11"
OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"
# scrypt N = 2^14, r = 8, p = 1 (16 MiB, ~50 ms per key on the CI box): OpenSSL's own `pkcs8 -scrypt` default, and
# the largest that `openssl pkcs8` opens under its 32 MiB scrypt memory limit (N = 2^15 fails there).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1
_PEM_LABEL = b"ENCRYPTED PRIVATE KEY"


class KeyFileError(Exception):
    """A key file cannot be used (plain, wrong passphrase, corrupt). One line for the operator."""


class PassphraseMissingError(KeyFileError):
    pass


class _ScryptParams(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [
        ("salt", core.OctetString),
        ("cost_parameter", core.Integer),
        ("block_size", core.Integer),
        ("parallelization_parameter", core.Integer),
        ("key_length", core.Integer, {"optional": True}),
    ]


class _Alg(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [("algorithm", core.ObjectIdentifier), ("parameters", core.Any)]


class _Pbes2Params(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [("key_derivation_func", _Alg), ("encryption_scheme", _Alg)]


class _EncryptedPrivateKeyInfo(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [("encryption_algorithm", _Alg), ("encrypted_data", core.OctetString)]


def _pem(der: bytes) -> bytes:
    import base64

    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN " + _PEM_LABEL + b"-----\n" + b"\n".join(lines) + b"\n-----END " + _PEM_LABEL + b"-----\n"


def encrypt_private_key(key: Any, passphrase: bytes) -> bytes:
    """PKCS#8 EncryptedPrivateKeyInfo, PBES2(scrypt, AES-256-CBC), as PEM."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise KeyFileError(f"key passphrase must be at least {MIN_PASSPHRASE} characters")
    plain = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    salt, iv = os.urandom(16), os.urandom(16)
    kek = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(passphrase)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(kek), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    params = _ScryptParams(
        {"salt": salt, "cost_parameter": SCRYPT_N, "block_size": SCRYPT_R, "parallelization_parameter": SCRYPT_P,
         "key_length": 32}
    )
    pbes2 = _Pbes2Params(
        {
            "key_derivation_func": {"algorithm": OID_SCRYPT, "parameters": core.Any.load(params.dump())},
            "encryption_scheme": {"algorithm": OID_AES256_CBC,
                                  "parameters": core.Any.load(core.OctetString(iv).dump())},
        }
    )
    info = _EncryptedPrivateKeyInfo(
        {"encryption_algorithm": {"algorithm": OID_PBES2, "parameters": core.Any.load(pbes2.dump())},
         "encrypted_data": ciphertext}
    )
    return _pem(info.dump())


def load_private_key(pem: bytes, passphrase: bytes) -> Any:
    """Decrypt a key written by `encrypt_private_key`. A plain (unencrypted) key is refused: fail closed."""
    if _PEM_LABEL not in pem.split(b"\n", 1)[0]:
        raise KeyFileError("key file is not encrypted at rest (plain PEM refused); re-create it")
    try:
        return serialization.load_pem_private_key(pem, password=passphrase)
    except (ValueError, TypeError) as exc:
        raise KeyFileError("wrong key passphrase or corrupt key file") from exc


def _file_passphrase(path: Path) -> bytes:
    try:
        info = path.stat()
    except OSError as exc:
        raise PassphraseMissingError(f"${PASSPHRASE_FILE_ENV}: cannot read {path}: {exc.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) or info.st_uid != os.geteuid():
        raise PassphraseMissingError(
            f"${PASSPHRASE_FILE_ENV}: {path} must belong to this user and not be readable by group or others "
            "(chmod 600)"
        )
    return path.read_bytes().split(b"\n", 1)[0].strip()


def passphrase() -> bytes:
    """The key passphrase from the file, the environment or a prompt (see the module docstring)."""
    value: bytes | None = None
    if os.environ.get(PASSPHRASE_FILE_ENV):
        value = _file_passphrase(Path(os.environ[PASSPHRASE_FILE_ENV]))
    elif os.environ.get(PASSPHRASE_ENV):
        value = os.environ[PASSPHRASE_ENV].encode()
    elif sys.stdin is not None and sys.stdin.isatty():
        value = getpass.getpass("cardbound key passphrase: ").encode()
    if not value:
        raise PassphraseMissingError(
            f"private keys are encrypted at rest: set ${PASSPHRASE_FILE_ENV} (a 0600 file) or ${PASSPHRASE_ENV}, "
            "or run on a terminal"
        )
    if len(value) < MIN_PASSPHRASE:
        raise PassphraseMissingError(f"key passphrase must be at least {MIN_PASSPHRASE} characters")
    return value
