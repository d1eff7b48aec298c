"""Build and verify the evidence pack.

Layout of a pack (every file listed in SHA256SUMS except SHA256SUMS and its signature):

    index.html  index.nl.html  index.en.html  rapport.pdf       the report (FR; NL, EN), PDF of the French page
    evidence/probes.json                                           this run's §3 probe results
    evidence/audit-verification.json  audit-counts.json            A.8.15: verification, counts per type/node/day, gaps
    evidence/audit-checkpoints.json   audit-verifier.vkey          signed checkpoints (C2SP notes) and their key
    evidence/audit-export.jsonl (+ .checkpoint.json)               the period's entries with inclusion proofs
    evidence/keys.json  operators.json  retention.json  data-inventory.json
    evidence/soa.json  evidence/soa-source.toml                    Statement of Applicability (merged) and its data
    oscal/assessment-results.json                                  OSCAL, validated with compliance-trestle
    sbom/cyclonedx.json                                            CycloneDX SBOM of the installed environment
    evidence-key.pub.pem  SHA256SUMS  SHA256SUMS.sig               the signed manifest
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audit import AuditLog, EvidenceExported
from audit.checkpoint import CheckpointError, VerifierKey, parse_checkpoint
from audit.export import ExportError, verify_export
from biometric.buildinfo import BUILD_RECORD, DlibBuild, read_build_record
from iso27001_evidence import manifest, oscal, render, soa, sources
from iso27001_evidence.probes import ProbeRun
from iso27001_evidence.sources import NOT_CONFIGURED, Period


class PackError(ValueError):
    """The pack cannot be built (bad period, output directory not empty, unreadable configuration)."""


@dataclass
class BuildConfig:
    home: Path
    node_id: str
    period: Period
    out: Path
    cardbound: list[str]
    python: Path
    run: ProbeRun
    dsn: str | None = None
    sbom: bool = True
    say: Callable[[str], None] = lambda _t: None


@dataclass
class BuildResult:
    out: Path
    verdict: str
    files: int
    fingerprint: str
    notes: list[str] = field(default_factory=list)


def _json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


FILE_DESCRIPTIONS = {
    "index.html": "rapport (français)", "index.nl.html": "verslag (Nederlands)", "index.en.html": "report (English)",
    "rapport.pdf": "rapport PDF (français)", "evidence/probes.json": "résultats des sondes du § 3",
    "evidence/audit-verification.json": "vérification du journal d'audit",
    "evidence/audit-counts.json": "comptages par type, nœud, jour ; lacunes",
    "evidence/audit-checkpoints.json": "points de contrôle signés",
    "evidence/audit-verifier.vkey": "clé de vérification du journal",
    "evidence/audit-export.jsonl": "entrées de la période avec preuves d'inclusion",
    "evidence/audit-export.jsonl.checkpoint.json": "manifeste signé de l'export",
    "evidence/keys.json": "inventaire des clés", "evidence/operators.json": "opérateurs et clés de sécurité",
    "evidence/retention.json": "conservation (art. 2.5.2.90)",
    "evidence/data-inventory.json": "inventaire (art. 2.5.2.88)",
    "evidence/soa.json": "déclaration d'applicabilité fusionnée",
    "evidence/soa-source.toml": "données de la déclaration",
    "oscal/assessment-results.json": "OSCAL assessment results", "sbom/cyclonedx.json": "SBOM CycloneDX",
    "evidence-key.pub.pem": "clé publique de preuve du sous-traitant",
    "SHA256SUMS": "empreintes SHA-256 de tous les fichiers", "SHA256SUMS.sig": "signature de SHA256SUMS",
}

COMMANDS = """# vérification sans cardbound, dans le répertoire du dossier :
openssl pkey -pubin -in evidence-key.pub.pem -outform DER | sha256sum   # à comparer avec l'empreinte remise
openssl dgst -sha256 -verify evidence-key.pub.pem -signature SHA256SUMS.sig SHA256SUMS
sha256sum --strict -c SHA256SUMS
find . -type f ! -name SHA256SUMS ! -name SHA256SUMS.sig | sed 's|^\\./||' | LC_ALL=C sort \\
  | diff - <(cut -c67- SHA256SUMS | LC_ALL=C sort) && echo "aucun fichier ajouté ni retiré"
# avec cardbound :
cardbound evidence verify DOSSIER"""


def build(cfg: BuildConfig) -> BuildResult:
    out = cfg.out
    if out.exists() and any(out.iterdir()):
        raise PackError(f"{out}: output directory is not empty")
    out.mkdir(parents=True, exist_ok=True)
    ev = out / "evidence"
    ev.mkdir()
    notes: list[str] = []
    built = datetime.now(UTC).isoformat(timespec="seconds")
    _json(ev / "probes.json", cfg.run.to_json())

    cfg.say("audit log: verification, counts, checkpoints, export of the period")
    facts: sources.AuditFacts | None = None
    audit_error: str | None = None
    try:
        facts = sources.audit_facts(cfg.home, cfg.node_id, cfg.period, ev / "audit-export.jsonl")
    except (FileNotFoundError, ExportError, CheckpointError) as exc:
        audit_error = f"journal d'audit non disponible / audit log not available: {exc}"
        notes.append(audit_error)
    if facts is not None:
        _json(ev / "audit-verification.json", facts.verification)
        _json(ev / "audit-counts.json", {"period": str(cfg.period), "by_type": facts.counts_by_type,
                                         "by_node": facts.counts_by_node, "by_day": facts.counts_by_day,
                                         "gaps": facts.gaps, "logins": facts.logins, "key_events": facts.key_events})
        _json(ev / "audit-checkpoints.json", {"node": facts.node_id, "verifier_key": facts.verifier_key,
                                              "checkpoints": [{"size": s, "kind": k, "note": n}
                                                              for s, k, n in facts.checkpoints]})
        (ev / "audit-verifier.vkey").write_text(facts.verifier_key + "\n")

    keys = sources.key_inventory(cfg.cardbound, cfg.home)
    operators = sources.operator_inventory(cfg.cardbound, cfg.home)
    retention = sources.retention(cfg.home, facts.purges if facts else [])
    _json(ev / "keys.json", keys)
    _json(ev / "operators.json", operators)
    _json(ev / "retention.json", retention)
    _json(ev / "data-inventory.json", sources.DATA_INVENTORY)

    try:
        controls, used = soa.load(cfg.home / "config" / "soa.toml")
    except soa.SoaError as exc:
        raise PackError(str(exc)) from exc
    src = cfg.home / "config" / "soa.toml"
    shutil.copyfile(src if src.exists() else soa.DEFAULT, ev / "soa-source.toml")

    cfg.say("SBOM (cyclonedx-py environment)")
    sbom_ok = cfg.sbom and _sbom(cfg, out / "sbom" / "cyclonedx.json", notes)
    present = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    present |= {"SHA256SUMS", "SHA256SUMS.sig"}
    soa.merge_measurements(controls, {r.probe: r.result for r in cfg.run.results}, present)
    _json(ev / "soa.json", {"sources": used, "controls": [c.to_json() for c in controls]})

    cfg.say("OSCAL assessment results (validated with compliance-trestle)")
    doc = oscal.build(cfg.run, controls, title="cardbound evidence pack (art. 2.5.2.85 §2)", period=str(cfg.period),
                      version=cfg.run.software_version)
    (out / "oscal").mkdir()
    (out / "oscal" / "assessment-results.json").write_text(oscal.validated_json(doc) + "\n", encoding="utf-8")

    key = manifest.load_or_create_key(cfg.home / "keys")
    fp = manifest.fingerprint(manifest.public_pem(key))
    listed = sorted({*present, "oscal/assessment-results.json", "evidence/soa.json", "index.html", "index.nl.html",
                     "index.en.html", "rapport.pdf", "evidence-key.pub.pem"})
    ctx = {
        "period": str(cfg.period), "built": built, "fingerprint": fp, "operators": operators, "keys": keys,
        "retention": retention, "inventory": sources.DATA_INVENTORY,
        # a per-node shipping check against the central store is not implemented yet: say so, never imply it
        "shipping": NOT_CONFIGURED if not cfg.dsn else "non mesuré par cette version / not measured by this "
                    "version (the central store is scanned by the storage probe only)",
        "soa_note": f"Données : {', '.join(used)}. 93 mesures de l'annexe A et 18 mesures de l'annexe B de "
                    "l'ISO/IEC 27701 (sous-traitants). La colonne « mesuré » est remplie par le système ; les "
                    "autres colonnes sont les décisions du sous-traitant.",
        "file_list": [(f, FILE_DESCRIPTIONS.get(f, "")) for f in listed if f != "sbom/cyclonedx.json" or sbom_ok],
        "commands": COMMANDS,
    }
    cfg.say("report: HTML (fr, nl, en) and PDF")
    pages = {lang: render.page(lang, cfg.run, facts, audit_error, ctx, controls) for lang in render.LANGS}
    for lang, text in pages.items():
        (out / render.FILES[lang]).write_text(text, encoding="utf-8")
    (out / "rapport.pdf").write_bytes(render.pdf(pages["fr"], base_url=str(out)))

    count = manifest.write(out, key)
    sums_sha = manifest.sha256_file(out / manifest.SUMS)
    with AuditLog.open_station(cfg.home, cfg.node_id) as log:
        log.append(EvidenceExported(node_id=cfg.node_id, entries=count, export_format="evidence-pack",
                                    from_time=cfg.period.start.isoformat(), to_time=cfg.period.end.isoformat(),
                                    export_sha256=sums_sha))
    return BuildResult(out, render.verdict(cfg.run), count, fp, notes)


def _sbom(cfg: BuildConfig, target: Path, notes: list[str]) -> bool:
    tool = cfg.python.parent / "cyclonedx-py"
    exe = str(tool) if tool.exists() else shutil.which("cyclonedx-py")
    if exe is None:
        notes.append("SBOM not produced: cyclonedx-py (cyclonedx-bom) is not installed")
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        p = subprocess.run([exe, "environment", "--of", "JSON", "--output-reproducible", "-o", str(target),
                            str(cfg.python)], capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        notes.append("SBOM not produced: cyclonedx-py timed out")
        return False
    if p.returncode != 0 or not target.exists():
        notes.append(f"SBOM not produced: cyclonedx-py exit {p.returncode}: {p.stderr.strip()[-200:]}")
        target.unlink(missing_ok=True)
        return False
    _sbom_dlib_pedigree(target, read_build_record(cfg.python.parent.parent / BUILD_RECORD.name), notes)
    return True


def _sbom_dlib_pedigree(target: Path, build: DlibBuild | None, notes: list[str]) -> None:
    """dlib is not PyPI's wheel: scripts/setup.sh built it from the upstream sdist plus patches. Say so in the
    SBOM as CycloneDX pedigree: the upstream release (with its SHA-256) as ancestor, each patch as "unofficial"."""
    bom = json.loads(target.read_text(encoding="utf-8"))
    dlib = next((c for c in bom.get("components", []) if str(c.get("name", "")).lower() == "dlib"), None)
    if dlib is None:
        return
    if build is None:
        notes.append("SBOM: dlib has no build record (not installed by scripts/setup.sh); its pedigree is not shown")
        return
    version = str(dlib.get("version", ""))
    ancestor: dict[str, Any] = {"type": "library", "name": "dlib", "version": version,
                                "purl": f"pkg:pypi/dlib@{version}"}
    if build.sdist_sha256:
        ancestor["hashes"] = [{"alg": "SHA-256", "content": build.sdist_sha256}]
    dlib["pedigree"] = {
        "ancestors": [ancestor],
        "patches": [{"type": "unofficial", "diff": {"url": f"scripts/dlib-patches/{name}"}}
                    for name, _ in build.patches],
        "notes": "Built by scripts/setup.sh from the upstream sdist; patches (SHA-256 prefix): "
                 + (", ".join(f"{name} {digest}" for name, digest in build.patches) or "none"),
    }
    target.write_text(json.dumps(bom, indent=2, sort_keys=False) + "\n", encoding="utf-8")


@dataclass
class VerifyReport:
    findings: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def verify(pack: Path, *, progress: Callable[[str], None] = lambda _t: None,
           expected_fingerprint: str | None = None) -> VerifyReport:
    r = VerifyReport()
    if not pack.is_dir():
        r.findings.append(f"NOT-A-PACK: {pack} is not a directory")
        return r
    def hashing(i: int, n: int) -> None:
        if i == n or i % max(1, n // 10) == 0:
            progress(f"hashing {i}/{n}")

    m = manifest.verify(pack, hashing, expected_fingerprint)
    r.findings += m.findings
    r.info.append(f"manifest: {m.checked} files hashed; evidence key fingerprint {m.fingerprint}")
    cps = pack / "evidence" / "audit-checkpoints.json"
    if cps.is_file():
        progress("audit checkpoints")
        try:
            data = json.loads(cps.read_text())
            key = VerifierKey.decode(data["verifier_key"])
            for c in data["checkpoints"]:
                try:
                    cp = parse_checkpoint(c["note"], key)
                    if cp.size != c["size"]:
                        r.findings.append(f"CHECKPOINT: size {c['size']} recorded but the note says {cp.size}")
                except CheckpointError as exc:
                    r.findings.append(f"CHECKPOINT: size {c.get('size')}: {exc}")
            r.info.append(f"audit checkpoints: {len(data['checkpoints'])} signatures checked with {key.name}")
            export = pack / "evidence" / "audit-export.jsonl"
            if export.is_file():
                progress("audit export (inclusion proofs)")
                er = verify_export(export, {data["node"]: key})
                r.findings += [f"AUDIT-EXPORT: {x}" for x in er.findings]
                r.info.append(f"audit export: {er.verified}/{er.rows} rows verified against the signed checkpoint")
        except (ValueError, KeyError, TypeError, ExportError) as exc:
            r.findings.append(f"CHECKPOINT: {cps.name} unreadable: {exc}")
    else:
        r.info.append("no audit checkpoints in this pack")
    ar = pack / "oscal" / "assessment-results.json"
    if ar.is_file():
        progress("OSCAL model validation")
        try:
            oscal.validate_file(ar.read_text())
        except Exception as exc:  # pydantic.ValidationError and JSON errors: report, do not crash
            r.findings.append(f"OSCAL: {ar.name} is not valid OSCAL assessment results: {str(exc)[:300]}")
    return r
