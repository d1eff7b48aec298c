"""Fixtures for the enrolment and gate flows: a real keystore, an audit log, virtual cards behind pcscd."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from audit import AuditLog
from card.keystore import KeyStore

STATION = "desk-test"


@pytest.fixture(scope="session")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    ks = KeyStore.init(tmp_path_factory.mktemp("home") / "keys")
    ks.issue_station(STATION)
    return ks


@pytest.fixture
def audit_log(tmp_path: Path) -> Iterator[AuditLog]:
    log = AuditLog.open(tmp_path / "audit.sqlite3", node_id="test-node", key_file=tmp_path / "audit.key")
    yield log
    log.close()
