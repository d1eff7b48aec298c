"""Statement of Applicability: ISO/IEC 27001:2022 Annex A (93 controls) and ISO/IEC 27701 processor controls.

The processor's decisions (applicable, justification, implementation) are data: the shipped
`data/soa.toml`, overridden control by control by `HOME/config/soa.toml`. What the system measures itself is
merged in: the controls of `MEASURED` get their evidence files linked and a measured status.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT = Path(__file__).parent / "data" / "soa.toml"

# control id -> evidence files of the pack (relative paths) that the system produces for it
MEASURED: dict[str, tuple[str, ...]] = {
    "5.15": ("evidence/probes.json", "evidence/keys.json", "evidence/operators.json"),
    "5.17": ("evidence/operators.json",),
    "5.28": ("SHA256SUMS", "SHA256SUMS.sig"),
    "5.33": ("evidence/audit-verification.json", "evidence/audit-checkpoints.txt"),
    "5.34": ("evidence/probes.json", "evidence/data-inventory.json"),
    "8.5": ("evidence/operators.json", "evidence/keys.json"),
    "8.10": ("evidence/probes.json", "evidence/retention.json"),
    "8.11": ("evidence/audit-counts.json",),
    "8.12": ("evidence/probes.json",),
    "8.15": ("evidence/audit-verification.json", "evidence/audit-checkpoints.txt", "evidence/audit-counts.json"),
    "8.24": ("evidence/keys.json",),
    "8.29": ("evidence/probes.json",),
    "B.8.2.6": ("evidence/audit-verification.json",),
    "B.8.4.1": ("evidence/probes.json",),
    "B.8.4.2": ("evidence/probes.json", "evidence/retention.json"),
}
# probes whose result is the measured status of a control
PROBES_FOR: dict[str, tuple[str, ...]] = {
    "5.34": ("write-watch", "delete-source", "storage-scan", "no-one-to-many", "worker-cannot-write", "audit-schema"),
    "8.10": ("delete-source",),
    "8.12": ("storage-scan", "worker-cannot-write"),
    "8.29": ("write-watch", "delete-source", "storage-scan", "no-one-to-many", "worker-cannot-write",
             "audit-schema"),
    "B.8.4.1": ("write-watch", "storage-scan"),
    "B.8.4.2": ("delete-source",),
}


class SoaError(ValueError):
    """The SoA data file is not valid (bad TOML, unknown control, wrong field type)."""


@dataclass
class Control:
    id: str
    family: str  # "annex_a" | "iso27701"
    title: str
    applicable: bool
    justification: str
    implementation: str
    evidence: list[str] = field(default_factory=list)
    measured: str | None = None  # PASS | FAIL | NOT RUN | "measured" (evidence attached, no pass/fail)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SoaError(f"{path}: {exc}") from exc


def load(override: Path | None) -> tuple[list[Control], list[str]]:
    """The merged SoA and the list of data files used."""
    base = _load(DEFAULT)
    used = [str(DEFAULT.name)]
    if override is not None and override.exists():
        extra = _load(override)
        used.append(str(override))
        for family in ("annex_a", "iso27701"):
            for cid, fields in (extra.get(family) or {}).items():
                if cid not in base[family]:
                    raise SoaError(f"{override}: unknown control {family}.{cid}")
                if not isinstance(fields, dict):
                    raise SoaError(f"{override}: {family}.{cid} must be a table")
                for k, v in fields.items():
                    if k not in {"applicable", "justification", "implementation", "owner"}:
                        raise SoaError(f"{override}: {family}.{cid}.{k}: unknown field")
                    if (k == "applicable") != isinstance(v, bool) or not isinstance(v, bool | str):
                        raise SoaError(f"{override}: {family}.{cid}.{k}: wrong type")
                base[family][cid] = {**base[family][cid], **fields}
    controls = []
    for family in ("annex_a", "iso27701"):
        for cid, c in base[family].items():
            controls.append(Control(cid, family, c["title"], bool(c["applicable"]), c["justification"],
                                    c["implementation"]))
    return controls, used


def merge_measurements(controls: list[Control], probe_results: dict[str, str], present: set[str]) -> None:
    """Attach evidence files that exist in the pack and the probe-derived status."""
    for c in controls:
        c.evidence = [f for f in MEASURED.get(c.id, ()) if f in present]
        probes = PROBES_FOR.get(c.id)
        if probes:
            results = [probe_results.get(p, "NOT RUN") for p in probes]
            c.measured = "FAIL" if "FAIL" in results else "NOT RUN" if "NOT RUN" in results else "PASS"
        elif c.evidence:
            c.measured = "measured"
