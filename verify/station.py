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
from card.values import InvalidValue, StationId
from verify.flow import BanCheck, Policy
from verify.policy import ListAges, Requirement, default_several_faces
from verify.revocation import RevocationList

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
    list_ages: ListAges = field(default_factory=ListAges)  # the default maximum list ages per level

    def requirement(self, level: int, category: str) -> Requirement:
        return Requirement(admitted=True, biometric=True, threshold=self.thresholds[level - 1], level=level,
                           category=category, several_faces=default_several_faces(level))


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
    revoked: RevocationList | None = None  # the revoked-card list (by GUID), with its issue time
    site_id: str = "site"
    node_id: str = "node"  # the station's audit-log node (one log per home)

    @property
    def is_revoked(self) -> Callable[[bytes], bool]:
        revoked = self.revoked
        return revoked.is_revoked if revoked is not None else (lambda guid: False)

    @property
    def level_file(self) -> Path:
        return self.home_root / "config" / LEVEL_FILE

    def level_problem(self) -> str | None:
        """Why the level file cannot be used (then the gate runs at level 3), or None when it holds 1, 2 or 3."""
        try:
            text = self.level_file.read_text().strip()
        except FileNotFoundError:
            return f"no security level file ({self.level_file})"
        except (OSError, UnicodeDecodeError) as exc:
            return f"security level file unreadable ({self.level_file}: {type(exc).__name__})"
        if text not in ("1", "2", "3"):
            return f"{self.level_file}: security level must be 1, 2 or 3, found {text[:10]!r}"
        return None

    def security_level(self) -> int:
        """The current ISPS level. Fails closed: no level file, an unreadable one or a bad value is level 3 (the
        strictest); `level_problem()` says why, and the gate says it loudly at start-up."""
        if self.level_problem() is not None:
            return 3
        return int(self.level_file.read_text().strip())

    def set_security_level(
        self, level: int, *, operator: str, site_id: str | None = None, log: AuditLog | None = None
    ) -> tuple[int, int]:
        """Change the level: the audit event is committed first, with the real site id, and only then does the
        new level take effect (atomic replace). If the event cannot be appended, nothing changes."""
        if level not in (1, 2, 3):
            raise ValueError("security level must be 1, 2 or 3")
        site = site_id or (self.site_id if self.site_id != "site" else None)
        if site is None:
            raise GateConfigError("no site id: pass --site SITE or --config FILE with `site` in [gate]")
        try:
            StationId(site)
            StationId(operator)
        except InvalidValue as exc:
            raise GateConfigError(str(exc)) from None
        old = self.security_level()
        self.level_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.level_file.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(f"{level}\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            event = SecurityLevelChanged(site_id=site, operator_id=operator, old_level=old, new_level=level)
            if log is not None:  # the station's open log (e.g. one whose checkpoint key is in a token)
                log.append(event)
            else:
                with AuditLog.open_station(self.home_root, node_id=self.node_id) as station_log:
                    station_log.append(event)
        except Exception:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, self.level_file)  # atomic, and only after the audit event is committed
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
