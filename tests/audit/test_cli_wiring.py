"""The real `cardbound` command exposes the audit sub-commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_cardbound_audit_help_lists_actions() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cardbound.cli", "audit", "--help"], capture_output=True, text=True, cwd=REPO,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    for action in ("verify", "checkpoint", "ship", "purge", "export", "verify-export", "central", "witness"):
        assert action in out.stdout
    central = subprocess.run(
        [sys.executable, "-m", "cardbound.cli", "audit", "central", "--help"], capture_output=True, text=True,
        cwd=REPO, timeout=60,
    )
    assert central.returncode == 0 and "init" in central.stdout and "add-node" in central.stdout
