"""The desk's operator register: operators, their roles and languages, their WebAuthn credentials, and pending
one-time registration links. One JSON file in the station home (`desk/operators.json`, 0600), rewritten atomically
under an exclusive lock so that `cardbound desk bootstrap-admin` and a running desk never lose each other's writes.

What is stored per credential: its id, the COSE public key (inside the attested-credential-data bytes), the sign
counter, when it was created and last used. Never a biometric, never a private key (the key never leaves the
security key). A registration link is stored as the SHA-256 of its token, so reading the file does not give a link.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

Lang = Literal["fr", "nl", "en"]
LANGS: tuple[Lang, ...] = ("fr", "nl", "en")
OPERATOR_ID = re.compile(r"[a-z][a-z0-9._-]{1,31}")
INVITE_TTL = timedelta(hours=24)


class Role(StrEnum):
    OPERATOR = "operator"
    ADMIN = "admin"
    AUDITOR = "auditor"
    DISABLED = "disabled"  # kept for the record (audit, credentials), can no longer log in


class StoreError(Exception):
    """The operator register cannot be used as asked (bad name, unknown operator, invalid link...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # a catalogue key, shown to the user in their language


@dataclass
class Credential:
    credential_id: str  # hex
    data: str  # hex of AttestedCredentialData (aaguid, id, COSE public key)
    sign_count: int
    created: str
    last_used: str | None = None


@dataclass
class Operator:
    operator_id: str
    role: Role
    lang: Lang
    created: str
    credentials: list[Credential] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.role is not Role.DISABLED and bool(self.credentials)


@dataclass
class Invitation:
    token_sha256: str
    operator_id: str
    role: Role
    lang: Lang
    expires: str
    invited_by: str | None


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_operator_id(text: str) -> str:
    t = text.strip().lower() if isinstance(text, str) else ""
    if not OPERATOR_ID.fullmatch(t):
        raise StoreError("bad_operator_id", "operator id: 2-32 lower-case letters, digits, '.', '_' or '-', "
                                            "starting with a letter")
    return t


class OperatorStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")

    # file handling ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _read(self) -> dict[str, Any]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": 1, "operators": {}, "invitations": []}
        except (OSError, ValueError) as exc:
            raise StoreError("store_unreadable", f"{self.path}: operator register unreadable ({exc})") from None
        if not isinstance(raw, dict) or raw.get("version") != 1:
            raise StoreError("store_unreadable", f"{self.path}: not a version-1 operator register")
        return raw

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    @staticmethod
    def _operator(d: dict[str, Any]) -> Operator:
        return Operator(
            operator_id=d["operator_id"], role=Role(d["role"]), lang=d["lang"], created=d["created"],
            credentials=[Credential(**c) for c in d.get("credentials", [])],
        )

    @staticmethod
    def _dump(op: Operator) -> dict[str, Any]:
        d = asdict(op)
        d["role"] = op.role.value
        return d

    # queries ---------------------------------------------------------------------------------------------

    def operators(self) -> list[Operator]:
        with self._locked():
            data = self._read()
        return [self._operator(d) for _, d in sorted(data["operators"].items())]

    def get(self, operator_id: str) -> Operator | None:
        with self._locked():
            d = self._read()["operators"].get(operator_id)
        return None if d is None else self._operator(d)

    def has_admin(self) -> bool:
        return any(op.role is Role.ADMIN and op.credentials for op in self.operators())

    # changes ---------------------------------------------------------------------------------------------

    def invite(self, operator_id: str, role: Role, lang: Lang, invited_by: str | None) -> str:
        """Create a one-time registration link for a new operator (or a new key for an existing one); returns the
        token (shown once, never stored)."""
        operator_id = check_operator_id(operator_id)
        if role is Role.DISABLED or lang not in LANGS:
            raise StoreError("bad_request", "role must be operator, admin or auditor; language fr, nl or en")
        token = secrets.token_urlsafe(32)
        with self._locked():
            data = self._read()
            existing = data["operators"].get(operator_id)
            if existing is not None and existing["role"] != role.value:
                raise StoreError("operator_exists", f"operator {operator_id} exists with another role")
            now = _now()
            data["invitations"] = [i for i in data["invitations"]
                                   if i["operator_id"] != operator_id and datetime.fromisoformat(i["expires"]) > now]
            data["invitations"].append(asdict(Invitation(_digest(token), operator_id, role, lang,
                                                         (now + INVITE_TTL).isoformat(), invited_by)))
            data["invitations"][-1]["role"] = role.value
            self._write(data)
        return token

    def invitation(self, token: str) -> Invitation:
        """The pending invitation for `token` (not consumed). Raises StoreError('invalid_link')."""
        digest = _digest(token)
        with self._locked():
            data = self._read()
        for i in data["invitations"]:
            if hmac.compare_digest(i["token_sha256"], digest) and datetime.fromisoformat(i["expires"]) > _now():
                return Invitation(i["token_sha256"], i["operator_id"], Role(i["role"]), i["lang"], i["expires"],
                                  i.get("invited_by"))
        raise StoreError("invalid_link", "this registration link is invalid, used or expired")

    def complete_registration(self, token: str, credential_id: bytes, credential_data: bytes,
                              sign_count: int) -> Operator:
        """Consume the invitation and store the new credential, in one locked transaction."""
        digest = _digest(token)
        with self._locked():
            data = self._read()
            now = _now()
            match = [i for i in data["invitations"]
                     if hmac.compare_digest(i["token_sha256"], digest) and datetime.fromisoformat(i["expires"]) > now]
            if not match:
                raise StoreError("invalid_link", "this registration link is invalid, used or expired")
            inv = match[0]
            data["invitations"] = [i for i in data["invitations"] if i is not inv]
            for other in data["operators"].values():
                if any(c["credential_id"] == credential_id.hex() for c in other.get("credentials", [])):
                    raise StoreError("credential_exists", "this security key is already registered")
            d = data["operators"].get(inv["operator_id"]) or self._dump(
                Operator(inv["operator_id"], Role(inv["role"]), inv["lang"], now.isoformat()))
            d.setdefault("credentials", []).append(asdict(Credential(credential_id.hex(), credential_data.hex(),
                                                                     sign_count, now.isoformat())))
            data["operators"][inv["operator_id"]] = d
            self._write(data)
        return self._operator(d)

    def record_use(self, operator_id: str, credential_id: bytes, new_count: int) -> None:
        """Store the sign counter of a successful login. The caller checked that it grew."""
        with self._locked():
            data = self._read()
            d = data["operators"][operator_id]
            for c in d["credentials"]:
                if c["credential_id"] == credential_id.hex():
                    c["sign_count"] = new_count
                    c["last_used"] = _now().isoformat()
            self._write(data)

    def set_role(self, operator_id: str, role: Role) -> Role:
        """Change a role; returns the old one. The last admin cannot be demoted (the desk would be unmanageable)."""
        with self._locked():
            data = self._read()
            d = data["operators"].get(operator_id)
            if d is None:
                raise StoreError("unknown_operator", f"no operator {operator_id}")
            old = Role(d["role"])
            admins = [k for k, v in data["operators"].items() if v["role"] == Role.ADMIN.value]
            if old is Role.ADMIN and role is not Role.ADMIN and admins == [operator_id]:
                raise StoreError("last_admin", "the last admin cannot lose the admin role")
            d["role"] = role.value
            self._write(data)
        return old

    def set_lang(self, operator_id: str, lang: Lang) -> None:
        if lang not in LANGS:
            raise StoreError("bad_request", "language must be fr, nl or en")
        with self._locked():
            data = self._read()
            data["operators"][operator_id]["lang"] = lang
            self._write(data)
