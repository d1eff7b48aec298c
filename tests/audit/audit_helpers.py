"""Helpers shared by the audit tests (module name unique across tests/)."""

from __future__ import annotations

from audit import events as ev


def gate_event(i: int) -> ev.GateDecision:
    return ev.GateDecision(
        gate_id="gate-07",
        card_id=f"card-{i % 97:04d}",
        decision="granted" if i % 5 else "refused",
        reason_code="match" if i % 5 else "no-match",
        security_level=1 + i % 3,
        total_ms=300 + i % 200,
    )
