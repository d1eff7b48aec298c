"""Fixtures for the audit tests: a real PostgreSQL server (session) and a fresh database per test.

This folder is put on sys.path so the helper modules (`audit_helpers`, `audit_writer`, `audit_pg`; unique names) import.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from audit_pg import PG_BIN, Central, PgServer, free_port, make_central  # noqa: E402  (needs the path above)


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
    server = PgServer(root, free_port())
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



@pytest.fixture()
def central(pg_server: PgServer) -> Central:
    """A fresh database set up by its schema-owner role (`cardbound audit central init`)."""
    return make_central(pg_server)
