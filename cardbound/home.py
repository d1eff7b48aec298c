"""Where a station keeps its state (configuration, keystore, audit database, virtual card images).

Everything lives under one directory so that several stations can run side by side on one host:
`--home DIR`, else `$CARDBOUND_HOME`, else the platform default.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "CARDBOUND_HOME"


def default_home() -> Path:
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return base / "cardbound"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "cardbound"
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "cardbound"


@dataclass(frozen=True)
class Home:
    """The station's home directory and the fixed places inside it."""

    root: Path

    @classmethod
    def resolve(cls, explicit: str | os.PathLike[str] | None = None) -> Home:
        if explicit:
            return cls(Path(explicit).expanduser().absolute())
        env = os.environ.get(ENV_VAR)
        if env:
            return cls(Path(env).expanduser().absolute())
        return cls(default_home())

    def ensure(self) -> Home:
        """Create the directory (owner-only) if needed and return self."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self

    @property
    def keystore(self) -> Path:
        return self.root / "keys"

    @property
    def desk_bundle(self) -> Path:
        """The enrolment desk's bundle (`cardbound keys export-desk STATION DIR`), default place
        (HOME/desk holds the desk web app's operator register)."""
        return self.root / "desk-keys"

    @property
    def gate_bundle(self) -> Path:
        """The gate's bundle (`cardbound keys export-gate GATE DIR`), default place."""
        return self.root / "gate-keys"

    @property
    def token_dir(self) -> Path:
        """The station's PKCS#11 token directory (SoftHSM2: `softhsm2.conf` + `store/`), with the pkcs11 backend."""
        return self.root / "token"

    def use_token(self) -> None:
        """Point SoftHSM2 at this home's token (`SOFTHSM2_CONF`) when the home has one, so that a `pkcs11:` URI
        (the holder-reference key of a gate's `ban_list_key`, `gate pseudonymise`) opens this station's token.
        The home's own token wins over an inherited `SOFTHSM2_CONF`: a token of the same label in another
        directory holds another key (seen in tests: references computed with another home's HMAC key)."""
        conf = self.token_dir / "softhsm2.conf"
        if conf.is_file():
            os.environ["SOFTHSM2_CONF"] = str(conf)

    @property
    def audit_db(self) -> Path:
        return self.root / "audit" / "audit.sqlite3"

    @property
    def cards(self) -> Path:
        return self.root / "cards"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def node_id(self) -> str:
        """This station's id in the audit log (one log per home), generated once per home and kept in
        `config/node-id`: `<host>-<8 hex>`, so two stations (two homes) on one host never share an id.

        A configured `config/node-id` wins; a home whose audit log predates the file keeps the id of its log.
        The desk and the gate of one home share it."""
        path = self.config / "node-id"
        try:
            configured = path.read_text().strip()
        except OSError:
            configured = ""
        if configured:
            return _clean_node_id(configured)
        node = _log_node_id(self.audit_db) or f"{_clean_node_id(socket.gethostname() or 'node')[:39]}-" \
            f"{secrets.token_hex(4)}"
        self.config.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:  # O_EXCL: two processes starting in one new home agree on the first id written
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return self._written_node_id(path)
        with os.fdopen(fd, "w") as fh:
            fh.write(node + "\n")
        return node


    @staticmethod
    def _written_node_id(path: Path) -> str:
        """The id another process just created: it may not have written it yet (a few ms at most)."""
        import time

        for _ in range(200):
            text = path.read_text().strip()
            if text:
                return _clean_node_id(text)
            time.sleep(0.005)
        raise OSError(f"{path}: empty node id")


def _clean_node_id(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]", "-", name.lower())[:48].strip("-.") or "node"


def _log_node_id(db: Path) -> str | None:
    """The node id recorded in an existing audit log (a home set up before ids were generated)."""
    if not db.is_file():
        return None
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='node_id'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])
