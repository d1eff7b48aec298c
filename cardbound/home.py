"""Where a station keeps its state (configuration, keystore, audit database, virtual card images).

Everything lives under one directory so that several stations can run side by side on one host:
`--home DIR`, else `$CARDBOUND_HOME`, else the platform default.
"""

from __future__ import annotations

import os
import re
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
        """This station's id in the audit log (one log per home): `config/node-id` if present, else the host name.

        The desk and the gate of one home share it; several stations on one host use several homes."""
        try:
            configured = (self.config / "node-id").read_text().strip()
        except OSError:
            configured = ""
        name = configured or socket.gethostname() or "node"
        return re.sub(r"[^a-z0-9._-]", "-", name.lower())[:48].strip("-.") or "node"
