"""Fixtures for the audit tests: a real PostgreSQL server (session) and a fresh database per test.

This folder is put on sys.path so the helper modules (`audit_helpers`, `audit_writer`; unique names) import.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
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


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL 15 not installed (apt-get install postgresql); scripts/setup.sh installs it")
    root = Path(tempfile.mkdtemp(prefix="cardbound-pg-"))
    shutil.chown(root, "postgres", "postgres")
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(root / "data"), "-A", "trust",
         "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = PgServer(root, _free_port())
    server.start()
    try:
        yield server
    finally:
        pid_file = server.data / "postmaster.pid"
        if pid_file.exists():
            server.stop("immediate")  # the data directory is discarded: no shutdown checkpoint needed
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def pg_dsn(pg_server: PgServer) -> str:
    """A fresh database on the session's server."""
    return pg_server.create_db()

