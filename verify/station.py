"""A gate's settings, assembled from its configuration file and the station home: gate id, readers, camera, time
budget, policy, ban list, revoked cards, and the current ISPS security level (runtime state, audited changes)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit import AuditLog, SecurityLevelChanged
from biometric.capture import SampleSource
from biometric.template import DEFAULT_THRESHOLD
from verify.flow import BanCheck, Policy
from verify.policy import Requirement

LEVEL_FILE = "security-level"


class GateConfigError(ValueError):
    """The gate's configuration or runtime state is unusable; the message names the file and the problem."""


class NoSourceError(ValueError):
    """No live sample source was configured or given."""


@dataclass(frozen=True)
class BuiltinPolicy:
    """Used when no configuration file is given: every category admitted, the face check always required,
    the engine's default threshold at level 1, stricter at 2 and 3."""

    thresholds: tuple[float, float, float] = (DEFAULT_THRESHOLD, DEFAULT_THRESHOLD - 0.02, DEFAULT_THRESHOLD - 0.04)

    def requirement(self, level: int, category: str) -> Requirement:
        return Requirement(admitted=True, biometric=True, threshold=self.thresholds[level - 1])


@dataclass
class GateSettings:
    gate_id: str
    home_root: Path
    policy: Policy
    readers: list[str] = field(default_factory=list)
    lanes: list[str] = field(default_factory=list)  # lane / door id per configured reader
    camera: int | None = None
    time_budget_s: float = 2.0
    bans: BanCheck | None = None
    is_revoked: Callable[[bytes], bool] = lambda guid: False
    site_id: str = "site"
    node_id: str = "node"  # the station's audit-log node (one log per home)

    @property
    def level_file(self) -> Path:
        return self.home_root / "config" / LEVEL_FILE

    def security_level(self) -> int:
        try:
            text = self.level_file.read_text().strip()
        except FileNotFoundError:
            return 1
        except OSError as exc:
            raise GateConfigError(f"cannot read the security level ({self.level_file}): {exc}") from None
        if text not in ("1", "2", "3"):
            raise GateConfigError(f"{self.level_file}: security level must be 1, 2 or 3, found {text!r}")
        return int(text)

    def set_security_level(self, level: int, *, operator: str) -> tuple[int, int]:
        if level not in (1, 2, 3):
            raise ValueError("security level must be 1, 2 or 3")
        old = self.security_level()
        self.level_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.level_file.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(f"{level}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.level_file)  # atomic: a gate never reads a half-written level
        with AuditLog.open_station(self.home_root, node_id=self.node_id) as log:
            log.append(SecurityLevelChanged(site_id=self.site_id, operator_id=operator, old_level=old, new_level=level))
        return old, level

    def default_source(self, max_frames: int) -> SampleSource:
        if self.camera is None:
            raise NoSourceError("no live sample source: pass --camera, --video, --frames or --photo "
                                "(or set `camera` in the gate configuration)")
        return SampleSource("camera", device=self.camera, max_frames=max_frames)


def load_settings(config: Path | None, home: Any, *, gate_id: str | None = None) -> GateSettings:
    """Read the gate configuration (or use the built-in policy) for the station at `home`."""
    settings = GateSettings(gate_id=gate_id or "gate-1", home_root=home.root, policy=BuiltinPolicy(),
                            node_id=home.node_id)
    if config is None:
        return settings
    from verify.config import apply_config  # the TOML format, validated with clear errors

    configured: GateSettings = apply_config(settings, config, gate_id=gate_id)
    return configured
