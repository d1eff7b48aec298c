"""A real PostgreSQL 15 server for the audit tests (module name unique across tests/)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A real PostgreSQL 15 on a temp dir, loopback only, run as user postgres (initdb refuses root)."""

    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._ctl("-o", opts, "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop")

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def create_db(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)




OWNER = "cardbound_owner"


@dataclass
class Central:
    """A central store set up as in production: a schema-owner role (not a superuser) ran `central init`;
    nodes are registered ahead and ship as their own roles. `admin` (superuser) is for inspection only."""

    server: PgServer
    dbname: str

    @property
    def admin(self) -> str:
        return self.server.dsn(self.dbname)

    @property
    def owner(self) -> str:
        return self.admin.replace("user=postgres", f"user={OWNER}")

    def as_role(self, role: str) -> str:
        return self.admin.replace("user=postgres", f"user={role}")

    def register(self, home: Path, node: str) -> str:
        """`cardbound audit central add-node NODE --key home/keys/audit-NODE.ed25519.pub`; the node's DSN."""
        from audit.checkpoint import load_verifier
        from audit.store import add_node

        key = load_verifier(home / "keys" / f"audit-{node}.ed25519.pub")
        return self.as_role(add_node(self.owner, node, key.encode()))


def make_central(server: PgServer) -> Central:
    import psycopg

    from audit.store import init_schema

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname=%s", (OWNER,)).fetchone():
            with contextlib.suppress(psycopg.errors.DuplicateObject):
                conn.execute(f"CREATE ROLE {OWNER} LOGIN CREATEROLE")
        conn.execute(f"CREATE DATABASE {name} OWNER {OWNER}")
    central = Central(server, name)
    init_schema(central.owner)
    return central
