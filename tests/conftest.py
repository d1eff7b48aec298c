"""Shared pytest configuration. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Private keys are encrypted at rest and every station fails closed without a passphrase: the tests (and the
# commands they start, which inherit the environment) use this one. Tests of the passphrase sources unset it.
os.environ.setdefault("CARDBOUND_KEY_PASSPHRASE", "test-passphrase-not-secret")
os.environ.setdefault("CARDBOUND_TOKEN_PIN", "4711-test-pin")  # the SoftHSM2 tokens tests create

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FACES = SHARED / "faces"


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """Real labelled photos, read in place from ../shared/faces (never copied into the repo)."""
    if not FACES.is_dir():
        pytest.fail(f"test photos not found at {FACES}: the repository must sit beside shared/")
    return FACES


# Fixtures that start pcscd and virtual cards (real PC/SC chain), shared by card, enrolment and gate tests.
pytest_plugins = ["pcsc_fixtures"]
