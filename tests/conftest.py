"""Shared pytest configuration. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture(autouse=True, scope="session")
def _in_process_commands_leave_the_test_process_alone() -> Iterator[None]:
    """`cardbound.cli.main` makes the processes of the commands in `KEEP_NOTHING` non-dumpable with a hard core
    limit of 0, irreversibly (without CAP_SYS_RESOURCE, which root lacks in this container, it cannot be raised
    again). Tests that call `main()` in this process (keys, biometric compare) would do that to pytest itself, and
    every process started afterwards would inherit the limit, so a test could no longer see whether a command
    lowers it on its own. Commands started as processes are unaffected: tests/flows/test_no_core_dumps.py and
    test_parent_memory.py check them from outside, and no_core_dumps itself in a process of its own."""
    import biometric.isolation

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(biometric.isolation, "no_core_dumps", lambda: None)
        yield
