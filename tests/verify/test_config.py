"""Gate configuration (TOML): the shipped example loads; every kind of mistake is a one-line ConfigError naming
the file, the key and the problem."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from verify.banlist import BanEntry, format_banlist, pseudonymise
from verify.config import ConfigError, GateConfig, apply_config
from verify.revocation import format_revocation_list

EXAMPLE = Path(__file__).resolve().parents[2] / "verify" / "gate.example.toml"
KEY = bytes(range(32))

POLICY = """
[policy.level1]
crew = { biometric = true, threshold = 0.42 }
driver = { biometric = false }
[policy.level2]
crew = { biometric = true, threshold = 0.40 }
driver = { biometric = true, threshold = 0.40 }
[policy.level3]
crew = { biometric = true, threshold = 0.38 }
driver = { admitted = false }
"""


def _write(tmp_path: Path, gate: str, policy: str = POLICY) -> Path:
    p = tmp_path / "gate.toml"
    p.write_text(f"[gate]\n{gate}\n{policy}")
    return p


def test_example_file_loads() -> None:
    cfg = GateConfig.load(EXAMPLE)
    assert cfg.gate_id == "antwerpen-k1742-north"
    assert cfg.time_budget_s == 2.0 and cfg.camera == 0
    assert set(cfg.policy.categories) == {"seafarer", "authority", "regular", "resident", "occasional"}
    assert not cfg.policy.decide_requirements(3, "occasional").admitted
    assert not cfg.policy.decide_requirements(1, "authority").biometric
    assert cfg.ban_list is None and cfg.revoked is None


def test_minimal_file_defaults(tmp_path: Path) -> None:
    cfg = GateConfig.load(_write(tmp_path, 'id = "g1"'))
    assert (cfg.gate_id, cfg.readers, cfg.camera, cfg.time_budget_s, cfg.site_id) == ("g1", (), None, 2.0, None)


def test_lists_relative_to_the_config_file(tmp_path: Path) -> None:
    banned = pseudonymise("85.07.30-033.28", KEY)
    lost = secrets.token_bytes(16)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "bans.txt").write_text(format_banlist([BanEntry(banned, date(2030, 1, 1))], KEY))
    key = tmp_path / "lists" / "holder.key"
    key.write_text(KEY.hex())
    key.chmod(0o600)
    (tmp_path / "lists" / "revoked.txt").write_text(format_revocation_list([lost]))
    cfg = GateConfig.load(_write(tmp_path, 'id = "g1"\nban_list = "lists/bans.txt"\n'
                                           'ban_list_key = "lists/holder.key"\nrevoked_cards = "lists/revoked.txt"'))
    assert cfg.ban_list is not None and cfg.ban_list.is_banned(banned, date(2026, 11, 24)) is not None
    assert cfg.revoked is not None and cfg.revoked.is_revoked(lost)


@pytest.mark.parametrize(
    "gate,key,words",
    [
        ('id = "g1"\ncolour = "blue"', "gate.colour", "unknown key"),
        ("", "gate.id", "missing"),
        ("id = 7", "gate.id", "string"),
        ('id = "g 1"', "gate.id", "letters"),
        ('id = "g1"\nreaders = "Virtual PCD 00 00"', "gate.readers", "list"),
        ('id = "g1"\nreaders = [1]', "gate.readers", "list"),
        ('id = "g1"\ncamera = "/dev/video0"', "gate.camera", "index"),
        ('id = "g1"\ncamera = true', "gate.camera", "index"),
        ('id = "g1"\ncamera = -1', "gate.camera", "index"),
        ('id = "g1"\ntime_budget_ms = 50', "gate.time_budget_ms", "outside"),
        ('id = "g1"\ntime_budget_ms = "2s"', "gate.time_budget_ms", "number"),
        ('id = "g1"\nban_list = "bans.txt"', "gate.ban_list_key", "together"),
        ('id = "g1"\nban_list = "bans.txt"\nban_list_key = "k"', "gate.ban_list", "cannot read"),
        ('id = "g1"\nrevoked_cards = "nope.txt"', "gate.revoked_cards", "cannot read"),
    ],
)
def test_gate_table_errors(tmp_path: Path, gate: str, key: str, words: str) -> None:
    p = _write(tmp_path, gate)
    with pytest.raises(ConfigError) as err:
        GateConfig.load(p)
    assert err.value.key == key and words in err.value.problem
    msg = str(err.value)
    assert msg.startswith(f"{p}: {key}: ") and "\n" not in msg


@pytest.mark.parametrize(
    "policy,key,words",
    [
        (POLICY.replace("[policy.level3]", "[policy.level9]"), "policy.level9", "unknown key"),
        (POLICY.split("[policy.level3]")[0], "policy.level3", "missing"),
        (POLICY.replace("0.38", "1.5"), "policy.level3.crew.threshold", "outside"),
        (POLICY.replace("threshold = 0.42", 'threshold = "0.42"'), "policy.level1.crew.threshold", "number"),
        ("", "policy", "missing"),
    ],
)
def test_policy_errors_name_the_file(tmp_path: Path, policy: str, key: str, words: str) -> None:
    p = _write(tmp_path, 'id = "g1"', policy)
    with pytest.raises(ConfigError) as err:
        GateConfig.load(p)
    assert err.value.path == str(p) and err.value.key == key and words in err.value.problem


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        GateConfig.load(tmp_path / "missing.toml")
    p = tmp_path / "bad.toml"
    p.write_text("[gate\nid = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        GateConfig.load(p)
    p.write_bytes(b"\xff\xfe[gate]")
    with pytest.raises(ConfigError, match="UTF-8"):
        GateConfig.load(p)
    p.write_text('[gate]\nid = "g1"\n[extra]\n' + POLICY)
    with pytest.raises(ConfigError, match="extra: unknown key"):
        GateConfig.load(p)


@dataclass
class _Settings:  # the shape of verify.station.GateSettings
    gate_id: str
    policy: Any = None
    readers: list[str] = field(default_factory=list)
    camera: int | None = None
    time_budget_s: float = 2.0
    bans: Any = None
    revoked: Any = None
    site_id: str = "site"


def test_apply_config(tmp_path: Path) -> None:
    lost = secrets.token_bytes(16)
    (tmp_path / "revoked.txt").write_text(format_revocation_list([lost]))
    p = _write(tmp_path, 'id = "g7"\nsite = "BEANR-1742"\nreaders = ["Virtual PCD 00 01"]\ncamera = 2\n'
                         'time_budget_ms = 1500\nrevoked_cards = "revoked.txt"')
    s = apply_config(_Settings("default"), p)
    assert (s.gate_id, s.site_id, s.readers, s.camera, s.time_budget_s) == ("g7", "BEANR-1742",
                                                                            ["Virtual PCD 00 01"], 2, 1.5)
    assert s.policy.requirement(2, "driver").threshold == 0.40
    assert s.revoked.is_revoked(lost) and not s.revoked.is_revoked(secrets.token_bytes(16))
    assert s.revoked.issued_at is not None  # the writer stamps its issue time
    assert s.bans is None
    assert apply_config(_Settings("default"), p, gate_id="cli-id").gate_id == "cli-id"


def test_lanes_name_each_reader(tmp_path: Path) -> None:
    ok = GateConfig.load(_write(tmp_path, 'id = "g1"\nreaders = ["0", "1"]\nlanes = ["north-in", "north-out"]'))
    assert ok.lanes == ("north-in", "north-out")
    for lanes, problem in (('["a"]', "one per entry"), ('["a b", "c"]', "not a valid id"), ('["a", "a"]', "distinct")):
        with pytest.raises(ConfigError, match=problem) as err:
            GateConfig.load(_write(tmp_path, f'id = "g1"\nreaders = ["0", "1"]\nlanes = {lanes}'))
        assert "gate.lanes" in str(err.value)
