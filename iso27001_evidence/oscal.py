"""OSCAL assessment results (JSON) of one pack, built and validated with compliance-trestle's pydantic models, so
an auditor's tooling can ingest the probe results and the measured controls.

One result for the run; one observation per probe (method TEST, the probe's evidence file linked); one finding
per measured control (target: the ISO/IEC 27001:2022 or 27701 control id; state satisfied / not-satisfied).
A probe that did not run is an observation without a satisfied finding (never "satisfied").
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from trestle.oscal.assessment_results import AssessmentResults

from iso27001_evidence.probes import PASS, ProbeRun
from iso27001_evidence.soa import Control

OSCAL_VERSION = "1.1.2"
NS_PROPS = "https://cardbound.example/ns/oscal"
NS = uuid.UUID("6f2b8a3e-5c1d-4b8e-9a7f-3d2c1b0a9e8f")  # stable uuids for one pack's objects


def _id(*parts: str) -> str:
    return str(uuid.uuid5(NS, "/".join(parts)))


def _iso(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(UTC).isoformat()


def build(run: ProbeRun, controls: list[Control], *, title: str, period: str, version: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    observations = []
    for r in run.results:
        observations.append({
            "uuid": _id(run.run_id, "obs", r.probe),
            "title": f"probe {r.probe}: {r.result}",
            "description": r.method,
            "methods": ["TEST"],
            "props": [{"name": "result", "ns": NS_PROPS, "value": r.result.replace(" ", "-")},
                      {"name": "software-version", "ns": NS_PROPS,
                       "value": r.software_version}],
            "relevant_evidence": [{"href": "../evidence/probes.json", "description": f"probe {r.probe}"}],
            "collected": _iso(r.started),
            "remarks": "; ".join(r.findings) or "no finding",
        })
    obs_by_probe = {r.probe: _id(run.run_id, "obs", r.probe) for r in run.results}
    results_by_probe = {r.probe: r.result for r in run.results}
    findings = []
    from iso27001_evidence.soa import PROBES_FOR

    for c in controls:
        if c.measured is None:
            continue
        probes = PROBES_FOR.get(c.id, ())
        satisfied = c.measured in (PASS, "measured")
        target: dict[str, Any] = {
            "type": "objective-id", "target_id": f"iso27001-2022_{c.id}" if c.family == "annex_a" else
            f"iso27701-2019_{c.id}", "title": f"{c.id} {c.title}",
            "status": {"state": "satisfied" if satisfied else "not-satisfied",
                       **({} if satisfied else {"reason": "fail" if c.measured == "FAIL" else "other"})},
        }
        f: dict[str, Any] = {
            "uuid": _id(run.run_id, "finding", c.id), "title": f"{c.id} {c.title}",
            "description": f"measured by the system: {c.measured}; evidence: {', '.join(c.evidence) or 'none'}",
            "target": target,
        }
        related = [{"observation_uuid": obs_by_probe[p]} for p in probes if p in obs_by_probe]
        if related:
            f["related_observations"] = related
        if probes and any(results_by_probe.get(p) != PASS for p in probes):
            f["remarks"] = "one or more probes did not pass or did not run"
        findings.append(f)
    doc = {
        "uuid": _id(run.run_id, "ar"),
        "metadata": {"title": title, "last_modified": now, "version": version, "oscal_version": OSCAL_VERSION,
                     "remarks": f"period {period}; probe run {run.run_id} on node {run.node_id}"},
        "import_ap": {"href": "#not-provided", "remarks": "no OSCAL assessment plan is published for this audit"},
        "results": [{
            "uuid": _id(run.run_id, "result"),
            "title": "art. 2.5.2.85 §3 conformance probes and measured ISO/IEC 27001/27701 controls",
            "description": f"cardbound evidence pack, period {period}",
            "start": _iso(run.started),
            "end": now,
            "reviewed_controls": {"control_selections": [{"include_all": {}}]},
            "observations": observations,
            "findings": findings,
        }],
    }
    return doc


def validated_json(doc: dict[str, Any]) -> str:
    """Validate with trestle's models (raises pydantic.ValidationError) and serialise as OSCAL JSON."""
    model = AssessmentResults.model_validate(doc)
    return json.dumps({"assessment-results": json.loads(model.oscal_serialize_json(pretty=False, wrapped=False))},
                      indent=2, ensure_ascii=False)


def validate_file(text: str) -> None:
    data = json.loads(text)
    AssessmentResults.model_validate(data["assessment-results"])
