"""The demo's story as assertions: every scene ends with the decision and reason the story promises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit.verify import verify_database
from cardbound.home import Home
from cardbound.story import tell
from verify.decision import Reason

EXPECTED = [
    ("Person A, own card", Reason.ACCEPTED),
    ("Person B, own card", Reason.ACCEPTED),
    ("Person B presents Person A's card", Reason.FACE_MISMATCH),
    ("tampered card (one bit of the template flipped)", Reason.TEMPLATE_INVALID),
    ("Person A's template copied onto Person B's card", Reason.WRONG_CARD),
    ("cloned card (all readable data of A's card on a blank card)", Reason.CARD_AUTH_FAILED),
    ("Person B while on the port-ban list", Reason.BANNED),
]


@pytest.mark.parametrize("backend", ["file", "pkcs11"])
def test_the_demo_story(pcscd, faces_dir: Path, tmp_path: Path, backend: str) -> None:  # type: ignore[no-untyped-def]
    """The story with a desk bundle and a gate bundle (no station opens the keystore), on encrypted key files and on
    SoftHSM2 tokens (every private key non-extractable in a token; no private key file in the home)."""
    home = Home(tmp_path / "home").ensure()
    work = tmp_path / "cards"
    work.mkdir()
    said: list[str] = []
    scenes = tell(home, faces_dir, work, say=said.append, backend=backend)
    assert json.loads((home.desk_bundle / "bundle.json").read_text())["backend"] == backend
    assert json.loads((home.gate_bundle / "bundle.json").read_text())["site"] == "BEANR-DEMO"
    key_files = [p for p in home.root.rglob("*") if p.is_file() and (home.root / "token" / "store") not in p.parents
                 and (backend == "pkcs11" or p.name != "holder-ref.key")  # file backend: an HMAC key file (0600)
                 and (p.suffix == ".key" or p.name.endswith(".ed25519") or b"PRIVATE KEY" in p.read_bytes())]
    if backend == "pkcs11":
        # CA, station, verifiers, the audit checkpoint key and the holder-reference HMAC key are all in tokens
        assert key_files == []
        manifest = json.loads((home.desk_bundle / "bundle.json").read_text())
        assert manifest["holder_ref"] == {"token": "cb-holder-ref", "label": "holder-ref"}
        assert "pkcs11:token=cb-holder-ref" in (tmp_path / "cards" / "gate.toml").read_text()
    else:
        assert key_files and all(b"ENCRYPTED PRIVATE KEY" in p.read_bytes() for p in key_files
                                 if not p.name.endswith(".ed25519"))
    assert [(s.title, s.decision.reason) for s in scenes] == EXPECTED
    for s in scenes:
        assert s.decision.accepted == (s.expected == "accept")
        assert s.decision.card_id is not None or s.decision.reason is Reason.CARD_AUTH_FAILED
    genuine = [s.decision.distance for s in scenes if s.decision.reason is Reason.ACCEPTED]
    impostor = [s.decision.distance for s in scenes if s.decision.reason is Reason.FACE_MISMATCH]
    assert all(d is not None for d in genuine + impostor)
    assert max(genuine) < min(impostor)  # type: ignore[type-var]

    report = verify_database(home.audit_db)
    assert report.ok, [f.line() for f in report.findings]
    from audit import AuditLog
    from card.keystore import KeyStore
    from cardbound.story import audit_signer

    signer = audit_signer(KeyStore.open(home.keystore), home, said.append)  # the token's key, or None (file)
    with AuditLog.open_station(home.root, node_id=home.node_id, signer=signer) as log:
        records = [log.entry(i).record() for i in range(log.size)]
    decisions = [r for r in records if r["type"] == "gate.decision"]
    assert len(decisions) == len(EXPECTED) and report.entries == len(records)
    assert [r["type"] for r in records].count("enrolment.completed") == 2
    assert any("audit log verified" in line for line in said)
