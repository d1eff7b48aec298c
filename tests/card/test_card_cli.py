"""`cardbound card ...` through the real chain: output, one-line errors, exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from card import transport
from card.virtual.harness import PcscDaemon, VirtualCardProcess
from cardbound.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]


def _cardbound(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "cardbound.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_readers(pcscd: PcscDaemon) -> None:
    out = _cardbound("card", "readers")
    assert out.returncode == 0
    assert "Virtual PCD 00 00" in out.stdout.splitlines()


def test_info_on_blank_card(virtual_card: VirtualCardProcess) -> None:
    out = _cardbound("card", "info", "--reader", virtual_card.reader_name)
    assert out.returncode == 0, out.stderr
    assert "state: blank" in out.stdout and "sealed template: none" in out.stdout


def test_unknown_reader_and_no_card_are_one_line_errors(pcscd: PcscDaemon) -> None:
    out = _cardbound("card", "info", "--reader", "No Such Reader", "--timeout", "0.2")
    assert out.returncode == ExitCode.NO_READER
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    out = _cardbound("card", "info", "--reader", "Virtual PCD 00 01", "--timeout", "0.3")
    assert out.returncode == ExitCode.NO_CARD
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_virtual_with_corrupt_image_is_an_input_error(tmp_path: Path) -> None:
    image = tmp_path / "bad.json"
    image.write_text("{not json")
    out = _cardbound("card", "virtual", "--image", str(image))
    assert out.returncode == ExitCode.INPUT
    assert len(out.stderr.strip().splitlines()) == 1 and "bad.json" in out.stderr


def test_virtual_serves_until_sigterm(pcscd: PcscDaemon, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    image = tmp_path / "card.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cardbound.cli", "card", "virtual", "--image", str(image), "--reader", "1"], env=env
    )
    try:
        transport.wait_for_card("Virtual PCD 00 01", timeout=10)
        assert image.exists()  # a new blank image was created
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        rc = proc.wait(10)
    assert rc == 0
    transport.wait_for_removal("Virtual PCD 00 01", timeout=5)  # NoCardError if the card stayed
