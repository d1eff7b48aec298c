"""The gate configuration file (TOML, read with the standard library's `tomllib`): gate identity, readers, camera,
time budget, the policy per ISPS level and category, and where the ban list and the revoked-card list are.

See `verify/gate.example.toml` (commented) and docs/gate-policy.md. Validation is strict: an unknown key, a missing
level, a wrong type or an out-of-range value is a `ConfigError` naming the file, the key and the problem — one line
for the operator, never a traceback. Relative paths in the file are relative to the file's directory.

The current security level is runtime state, not configuration (it changes without editing this file): see
`GateSettings.set_security_level` in `verify.station`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from card.values import InvalidValue, StationId
from verify.banlist import BanList, BanListError, load_key
from verify.policy import GatePolicy, PolicyError
from verify.revocation import RevocationList, RevocationListError

MAX_CONFIG_BYTES = 1024 * 1024
GATE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TIME_BUDGET_MS = (100, 30_000)
_TOP_KEYS = frozenset({"gate", "policy"})
_GATE_KEYS = frozenset(
    {"id", "site", "readers", "lanes", "camera", "time_budget_ms", "ban_list", "ban_list_key", "revoked_cards"}
)


class ConfigError(Exception):
    """A configuration problem: `str()` is the one line to show ("FILE: KEY: PROBLEM")."""

    def __init__(self, path: str | os.PathLike[str], key: str, problem: str) -> None:
        super().__init__(f"{path}: {key}: {problem}" if key else f"{path}: {problem}")
        self.path = str(path)
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class GateConfig:
    path: Path
    gate_id: str
    site_id: str | None
    readers: tuple[str, ...]
    camera: int | None
    time_budget_s: float
    policy: GatePolicy
    ban_list: BanList | None
    revoked: RevocationList | None
    lanes: tuple[str, ...] = ()  # lane / door id per reader, same order as `readers`

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GateConfig:
        p = Path(path)
        try:
            if p.stat().st_size > MAX_CONFIG_BYTES:
                raise ConfigError(p, "", f"larger than {MAX_CONFIG_BYTES} bytes")
            raw = p.read_bytes()
        except OSError as exc:
            raise ConfigError(p, "", f"cannot read: {exc.strerror or exc}") from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(p, "", "not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(p, "", f"not valid TOML: {exc}") from None
        return cls.from_mapping(data, p)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], path: Path) -> GateConfig:
        for key in data:
            if key not in _TOP_KEYS:
                raise ConfigError(path, key, "unknown key (expected [gate] and [policy])")
        gate = data.get("gate")
        if not isinstance(gate, Mapping):
            raise ConfigError(path, "gate", "missing [gate] table")
        for key in gate:
            if key not in _GATE_KEYS:
                raise ConfigError(path, f"gate.{key}", f"unknown key (expected one of {', '.join(sorted(_GATE_KEYS))})")
        if "policy" not in data:
            raise ConfigError(path, "policy", "missing [policy.level1], [policy.level2], [policy.level3]")
        try:
            policy = GatePolicy.from_mapping(data["policy"])
        except PolicyError as exc:
            raise ConfigError(path, exc.key, exc.problem) from None

        gate_id = _str(path, gate, "id", required=True)
        assert gate_id is not None
        if not GATE_ID_RE.match(gate_id):
            raise ConfigError(path, "gate.id", "letters, digits, '.', '_', '-' only (at most 64)")
        site = _str(path, gate, "site")
        readers = gate.get("readers", [])
        if not isinstance(readers, list) or not all(isinstance(r, str) and r.strip() for r in readers):
            raise ConfigError(path, "gate.readers", "must be a list of reader names (or index strings)")
        lanes = gate.get("lanes", [])
        if not isinstance(lanes, list) or (lanes and len(lanes) != len(readers)):
            raise ConfigError(path, "gate.lanes", "must be a list of lane ids, one per entry of gate.readers")
        for lane in lanes:
            try:
                StationId(lane)
            except InvalidValue as exc:
                raise ConfigError(path, "gate.lanes", exc.problem) from None
        if len(set(lanes)) != len(lanes):
            raise ConfigError(path, "gate.lanes", "lane ids must be distinct")
        camera = gate.get("camera")
        if camera is not None and (isinstance(camera, bool) or not isinstance(camera, int) or not 0 <= camera < 64):
            raise ConfigError(path, "gate.camera", "must be a camera device index 0..63")
        budget = gate.get("time_budget_ms", 2000)
        lo, hi = TIME_BUDGET_MS
        if isinstance(budget, bool) or not isinstance(budget, int | float) or not math.isfinite(budget):
            raise ConfigError(path, "gate.time_budget_ms", f"must be a number, got {type(budget).__name__}")
        if not lo <= budget <= hi:
            raise ConfigError(path, "gate.time_budget_ms", f"{budget} is outside {lo}..{hi}")

        ban_list: BanList | None = None
        ban_file = _path(path, gate, "ban_list")
        # The holder-reference key: a 0600 file, or the RFC 7512 URI of its HMAC key in the token (pkcs11:...)
        key_spec = _str(path, gate, "ban_list_key")
        key_file: str | Path | None = key_spec if key_spec and key_spec.startswith("pkcs11:") else \
            _path(path, gate, "ban_list_key")
        if (ban_file is None) != (key_file is None):
            raise ConfigError(path, "gate.ban_list_key", "ban_list and ban_list_key go together")
        if ban_file is not None and key_file is not None:
            try:
                ban_list = BanList.load(ban_file, load_key(key_file))
            except BanListError as exc:
                raise ConfigError(path, "gate.ban_list", str(exc)) from None
        revoked: RevocationList | None = None
        revoked_file = _path(path, gate, "revoked_cards")
        if revoked_file is not None:
            try:
                revoked = RevocationList.load(revoked_file)
            except RevocationListError as exc:
                raise ConfigError(path, "gate.revoked_cards", str(exc)) from None
        return cls(path, gate_id, site, tuple(readers), camera, budget / 1000.0, policy, ban_list, revoked,
                   tuple(lanes))


def _str(path: Path, table: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    if key not in table:
        if required:
            raise ConfigError(path, f"gate.{key}", "missing")
        return None
    value = table[key]
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, f"gate.{key}", f"must be a non-empty string, got {type(value).__name__}")
    return value


def _path(path: Path, table: Mapping[str, Any], key: str) -> Path | None:
    value = _str(path, table, key)
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else path.parent / p


S = TypeVar("S")


def apply_config(settings: S, path: str | os.PathLike[str], *, gate_id: str | None = None) -> S:
    """Load the configuration at `path` and return a copy of the dataclass `settings` (`verify.station
    .GateSettings`) with its fields set from it. `gate_id` (command line) overrides the file's. Raises
    `ConfigError` only."""
    cfg = GateConfig.load(path)
    changes: dict[str, Any] = {
        "gate_id": gate_id or cfg.gate_id,
        "policy": cfg.policy,
        "readers": list(cfg.readers),
        "camera": cfg.camera,
        "time_budget_s": cfg.time_budget_s,
    }
    if cfg.lanes:
        changes["lanes"] = list(cfg.lanes)
    if cfg.site_id is not None:
        changes["site_id"] = cfg.site_id
    if cfg.ban_list is not None:
        changes["bans"] = cfg.ban_list
    if cfg.revoked is not None:
        changes["revoked"] = cfg.revoked
    return dataclasses.replace(settings, **changes)  # type: ignore[type-var]


__all__ = ["ConfigError", "GateConfig", "apply_config"]
