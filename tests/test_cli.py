from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cardbound.cli import build_parser, main
from cardbound.home import ENV_VAR, Home


def test_help_lists_subcommands(capsys) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: cardbound" in out
    assert "--home" in out


def test_console_script_installed() -> None:
    exe = Path(sys.executable).with_name("cardbound")
    res = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    assert "COMMAND" in res.stdout


def test_home_resolution(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "envhome"))
    assert Home.resolve(None).root == tmp_path / "envhome"
    assert Home.resolve(str(tmp_path / "explicit")).root == tmp_path / "explicit"
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Home.resolve(None).root == tmp_path / "xdg" / "cardbound"


def test_unknown_command_is_usage_error() -> None:
    parser = build_parser()
    try:
        parser.parse_args(["no-such-command"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("unknown sub-command accepted")
