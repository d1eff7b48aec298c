"""What the pack reads from the deployment, each through one small adapter that says plainly when a piece is not
there ("non configuré / not configured") instead of inventing it.

- audit log (this package's dependency): verification, checkpoints, counts per type/node/day, gaps, export;
- key inventory: the installed `cardbound keys show --json` when it exists, else the text `keys show`;
- operators and their security-key credentials: the desk's inventory when a command provides it; login history
  from the audit log's operator.* events;
- retention configuration (`HOME/config/audit.json`) and the purges recorded in the log.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from audit import AuditLog
from audit.checkpoint import key_path, load_verifier, parse_checkpoint
from audit.export import export_log
from audit.verify import verify_database

NOT_CONFIGURED = "non configuré / not configured"
MAX_RETENTION_DAYS = 3652


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @classmethod
    def parse(cls, text: str) -> Period:
        try:
            a, b = text.split("..", 1)
            start, end = date.fromisoformat(a.strip()), date.fromisoformat(b.strip())
        except ValueError:
            raise ValueError(f"period {text!r}: expected FROM..TO as YYYY-MM-DD..YYYY-MM-DD") from None
        if end < start:
            raise ValueError(f"period {text!r}: TO is before FROM")
        return cls(start, end)

    @property
    def from_ms(self) -> int:
        return int(datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC).timestamp() * 1000)

    @property
    def to_ms(self) -> int:
        nxt = self.end + timedelta(days=1)
        return int(datetime(nxt.year, nxt.month, nxt.day, tzinfo=UTC).timestamp() * 1000) - 1

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def __str__(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()


def _cardbound(cmd: list[str], home: Path, args: list[str], env: Mapping[str, str] | None) -> tuple[int, str, str]:
    try:
        p = subprocess.run([*cmd, "--home", str(home), *args], capture_output=True, text=True, timeout=120,
                           check=False, env=None if env is None else dict(env))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, "", str(exc)
    return p.returncode, p.stdout, p.stderr


def key_inventory(cmd: list[str], home: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The keystore inventory: `keys show --json` (key custody, issue 11) when installed, else the text view."""
    rc, out, _err = _cardbound(cmd, home, ["keys", "show", "--json"], env)
    if rc == 0:
        try:
            return {"source": "cardbound keys show --json", "inventory": json.loads(out), "holders": "see inventory"}
        except ValueError:
            pass
    rc, out, err = _cardbound(cmd, home, ["keys", "show"], env)
    if rc != 0:
        return {"source": NOT_CONFIGURED, "detail": (err.strip() or out.strip())[-300:], "holders": NOT_CONFIGURED}
    return {"source": "cardbound keys show (text; no --json inventory installed)", "text": out.rstrip(),
            "holders": NOT_CONFIGURED}


def operator_inventory(cmd: list[str], home: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Operators, roles and security-key credentials of the desk (issue 13): its inventory command when one is
    installed, else its documented register `HOME/desk/operators.json` (version 1), read only. Credential ids are
    shown shortened; public keys are not copied into the pack."""
    rc, out, _err = _cardbound(cmd, home, ["desk", "operators", "--json"], env)
    if rc == 0:
        try:
            return {"source": "cardbound desk operators --json", "operators": json.loads(out)}
        except ValueError:
            pass
    register = home / "desk" / "operators.json"
    if not register.is_file():
        return {"source": NOT_CONFIGURED, "operators": NOT_CONFIGURED,
                "detail": f"no desk operator register in this station home ({register})"}
    try:
        raw = json.loads(register.read_text(encoding="utf-8"))
        if raw.get("version") != 1:
            raise ValueError("not a version-1 operator register")
        ops = [{"operator_id": o["operator_id"], "role": o["role"], "created": o["created"],
                "credentials": [{"id": str(c["credential_id"])[:16] + "…", "created": c["created"],
                                 "last_used": c.get("last_used"), "sign_count": c.get("sign_count")}
                                for c in o.get("credentials", [])]}
               for o in raw.get("operators", {}).values()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return {"source": str(register), "operators": NOT_CONFIGURED, "detail": f"unreadable: {exc}"}
    return {"source": f"{register} (desk operator register, read only)", "operators": ops,
            "pending_invitations": len(raw.get("invitations", []))}


@dataclass
class AuditFacts:
    node_id: str
    verification: dict[str, Any]
    checkpoints: list[tuple[int, str, str]]  # (size, kind, note) within or covering the period
    verifier_key: str
    counts_by_type: dict[str, int]
    counts_by_node: dict[str, int]
    counts_by_day: dict[str, dict[str, int]]  # day -> type -> n
    gaps: list[str]
    logins: list[dict[str, Any]]
    key_events: list[dict[str, Any]]
    purges: list[dict[str, Any]]
    probe_events: int
    export_rows: int
    export_sha256: str


def audit_facts(home: Path, node_id: str, period: Period, export_to: Path, today: date | None = None) -> AuditFacts:
    db = home / "audit" / "audit.sqlite3"
    if not db.exists():
        raise FileNotFoundError(f"no audit log at {db}")
    # verify with the station's own key file (kept apart from the database), not the key recorded in the log
    pub = key_path(home / "keys", node_id)
    pub = pub.with_name(pub.name + ".pub")
    report = verify_database(db, load_verifier(pub) if pub.is_file() else None)
    verification = {"ok": report.ok, "summary": report.summary(), "entries": report.entries,
                    "pruned": report.pruned, "checkpoints_checked": report.checkpoints_checked,
                    "findings": [f.line() for f in report.findings]}
    by_type: Counter[str] = Counter()
    by_node: Counter[str] = Counter()
    by_day: dict[str, Counter[str]] = defaultdict(Counter)
    gate_days: dict[str, set[str]] = defaultdict(set)
    logins: list[dict[str, Any]] = []
    key_events: list[dict[str, Any]] = []
    purges: list[dict[str, Any]] = []
    probes = 0
    with AuditLog.open_station(home, node_id) as log:
        for e in log.entries(from_ms=period.from_ms, to_ms=period.to_ms):
            rec = e.record()
            payload = rec.get("payload", {})
            day = _day(e.time_ms)
            by_type[e.type] += 1
            by_node[str(rec.get("node"))] += 1
            by_day[day][e.type] += 1
            when = datetime.fromtimestamp(e.time_ms / 1000, UTC).isoformat(timespec="seconds")
            if e.type == "gate.decision":
                gate_days[str(payload.get("gate_id"))].add(day)
            elif e.type.startswith("operator."):
                logins.append({"time": when, "type": e.type, **payload})
            elif e.type.startswith("key."):
                key_events.append({"time": when, "type": e.type, **payload})
            elif e.type == "retention.purge":
                purges.append({"time": when, **payload})
            elif e.type == "evidence.probe":
                probes += 1
        result = export_log(log, export_to, from_ms=period.from_ms, to_ms=period.to_ms)
        verifier = log.verifier_key
        notes = []
        for size, kind, note in log.checkpoints():
            cp = parse_checkpoint(note, verifier)
            if cp.time_ms <= period.to_ms + 1 or size == log.size:
                notes.append((size, kind, note))
        vkey = verifier.encode()
    last = min(period.end, today or datetime.now(UTC).date())
    gaps = []
    for gate, days in sorted(gate_days.items()):
        first = min(days)
        missing = [d.isoformat() for d in period.days() if first < d.isoformat() <= last.isoformat()
                   and d.isoformat() not in days]
        if missing:
            gaps.append(f"gate {gate}: no decision on {', '.join(missing)}")
    return AuditFacts(node_id, verification, notes, vkey, dict(by_type), dict(by_node),
                      {d: dict(c) for d, c in sorted(by_day.items())}, gaps, logins, key_events, purges, probes,
                      result.rows, result.sha256)


def retention(home: Path, purges: list[dict[str, Any]]) -> dict[str, Any]:
    cfg = home / "config" / "audit.json"
    days: Any = NOT_CONFIGURED
    if cfg.is_file():
        try:
            days = json.loads(cfg.read_text()).get("retention_days", NOT_CONFIGURED)
        except ValueError:
            days = f"unreadable ({cfg})"
    ok = isinstance(days, int) and 0 < days <= MAX_RETENTION_DAYS
    return {"config_file": str(cfg), "retention_days": days, "within_10_years": ok if isinstance(days, int) else None,
            "purges_in_period": purges}


# art. 2.5.2.88 §1 (visitors): what cardbound processes, where, and for how long
DATA_INVENTORY: list[dict[str, str]] = [
    {"item": "1° nom et prénoms", "cardbound": "non traité", "where": "—"},
    {"item": "2° numéro de registre national", "cardbound": "pseudonymisé (HMAC-SHA256, clé du sous-traitant) ; le "
     "numéro lui-même n'est pas conservé", "where": "carte (référence du titulaire), liste d'interdictions"},
    {"item": "3° date de naissance et adresse (non-Belges)", "cardbound": "non traité", "where": "—"},
    {"item": "4° adresse e-mail", "cardbound": "non traité", "where": "—"},
    {"item": "5° données biométriques (art. 2.5.2.84)", "cardbound": "modèle biométrique scellé (chiffré, signé, lié "
     "à la carte) ; données biométriques brutes supprimées immédiatement", "where": "uniquement la carte du titulaire"},
    {"item": "6° objectif de la visite", "cardbound": "catégorie de visiteur (politique du portique)",
     "where": "carte (en-tête signé), journal d'audit"},
    {"item": "7° heures d'arrivée et de départ, date", "cardbound": "heure de chaque décision du portique",
     "where": "journal d'audit (identifiant de carte pseudonyme)"},
    {"item": "8° plaque d'immatriculation", "cardbound": "non traité", "where": "—"},
    {"item": "9° photo", "cardbound": "utilisée pour l'enrôlement puis détruite (--delete-source) ; jamais conservée",
     "where": "—"},
]
