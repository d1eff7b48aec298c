"""Odd but validly signed values never crash a gate decision: a station key signed them, the card carries them,
and the gate still decides (TEMPLATE_INVALID) and audits, through real pcscd + a virtual card. The face step is
never reached for such a template."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from audit import AuditLog
from card import transport
from card.keystore import KeyStore
from card.personalise import personalise, write_sealed_template
from card.piv import PivSession
from card.sealed import CardBinding, TemplateHeader, seal
from verify.banlist import BanEntry, BanList
from verify.decision import Reason
from verify.flow import Gate, ProbeOutcome
from verify.station import BuiltinPolicy


def _never(reference: bytearray, threshold: float, allow_several: bool) -> ProbeOutcome:
    raise AssertionError("a template with invalid values reached the face comparison")


@pytest.mark.parametrize(
    ("category", "holder_ref", "template_len"),
    [("_crew", os.urandom(32), 512), ("regular", os.urandom(16), 512), ("regular", os.urandom(32), 256),
     ("Crew Member", os.urandom(32), 512)],
    ids=["category-_crew", "holder-ref-16-bytes", "template-256-bytes", "category-with-space"],
)
def test_signed_odd_values_are_decided_and_audited(  # type: ignore[no-untyped-def]
        tmp_path: Path, virtual_card_factory, category: str, holder_ref: bytes, template_len: int) -> None:
    store = KeyStore.init(tmp_path / "keys")
    store.issue_station("desk1")
    card = virtual_card_factory()
    now = datetime.now(UTC).replace(microsecond=0)
    header = TemplateHeader(format_owner=0x0101, format_type=1, extractor="test", model_version="test",
                            created=now, expires=now + timedelta(days=30), quality=80, visitor_category=category,
                            holder_ref=holder_ref)
    with transport.connect(card.reader_name, timeout=5.0) as conn:
        session = PivSession(conn)
        done = personalise(session, store.issue_card_auth_certificate, store.management_key_for)
        data = seal(os.urandom(template_len), header, CardBinding.for_card(done.guid, done.public_key),
                    store.station_credentials("desk1"), store.verifier_public_key())
        write_sealed_template(session, store.management_key_for(done.guid), data)
    bans = BanList([BanEntry(secrets.token_bytes(32), date.today() + timedelta(days=9))], "test",  # the list is on
                   issued_at=now)
    with AuditLog.open(tmp_path / "audit.db", node_id="gate-node", key_file=tmp_path / "audit.key") as log:
        gate = Gate("gate-odd", store.gate_trust(), BuiltinPolicy(), lambda: 1, _never, log, bans=bans)
        with transport.connect(card.reader_name, timeout=5.0) as conn:
            decision = gate.decide_connection(conn, reader_id="reader-0", lane_id="lane-1")
        events = [log.entry(i).record() for i in range(log.size)]
    assert decision.reason is Reason.TEMPLATE_INVALID and not decision.accepted
    assert decision.audited and done.guid.hex() not in decision.to_json()
    gate_events = [e["payload"] for e in events if e["type"] == "gate.decision"]
    assert len(gate_events) == 1 and gate_events[0]["reason_code"] == "template_invalid"
    assert gate_events[0]["lane_id"] == "lane-1" and gate_events[0]["visitor_category"] is None


def test_a_stale_crl_refuses_with_lists_stale(tmp_path: Path, virtual_card_factory) -> None:  # type: ignore[no-untyped-def]
    store = KeyStore.init(tmp_path / "keys")
    store.issue_station("desk1")
    card = virtual_card_factory()
    now = datetime.now(UTC).replace(microsecond=0)
    header = TemplateHeader(format_owner=0x0101, format_type=1, extractor="test", model_version="test",
                            created=now, expires=now + timedelta(days=300), quality=80, visitor_category="regular",
                            holder_ref=os.urandom(32))
    with transport.connect(card.reader_name, timeout=5.0) as conn:
        session = PivSession(conn)
        done = personalise(session, store.issue_card_auth_certificate, store.management_key_for)
        data = seal(os.urandom(512), header, CardBinding.for_card(done.guid, done.public_key),
                    store.station_credentials("desk1"), store.verifier_public_key())
        write_sealed_template(session, store.management_key_for(done.guid), data)
    trust = store.gate_trust()
    assert trust.crl.next_update_utc is not None
    stale_at = trust.crl.next_update_utc + timedelta(days=4)  # a gate whose CRL expired 4 days ago
    with AuditLog.open(tmp_path / "audit.db", node_id="gate-node", key_file=tmp_path / "audit.key") as log:
        gate = Gate("gate-stale", trust, BuiltinPolicy(), lambda: 1, _never, log, now=lambda: stale_at)
        with transport.connect(card.reader_name, timeout=5.0) as conn:
            decision = gate.decide_connection(conn)
        events = [log.entry(i).record()["payload"] for i in range(log.size)]
    assert decision.reason is Reason.LISTS_STALE and decision.audited
    assert [e["reason_code"] for e in events] == ["lists_stale"]
