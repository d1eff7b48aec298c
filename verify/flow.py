"""One gate decision: card transaction → ban list → policy → live capture and 1:1 compare → decision → wipe → audit.

The live sample never enters this process: `match` (the sandboxed worker in production) receives the 512-byte
reference, captures and compares inside the worker, and returns only a distance or a reason. The reference is
wiped here as soon as `match` returns, whatever happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

from audit import AuditLog, GateDecision
from card.piv import PivSession
from card.sealed import GateTrust
from verify.banlist import BanEntry
from verify.cardcheck import CardRejected, read_card
from verify.decision import Decision, Reason
from verify.policy import Requirement


@dataclass(frozen=True)
class ProbeOutcome:
    """What the biometric worker returns: a distance, or the reason there is none. Never pixels or descriptors."""

    distance: float | None
    reason: Reason | None = None  # NO_LIVE_FACE or CAMERA_ERROR when distance is None
    detail: str = ""
    capture_ms: float = 0.0
    compare_ms: float = 0.0


Match = Callable[[bytearray, float], ProbeOutcome]  # (512-byte reference, threshold) -> outcome


class Policy(Protocol):
    def requirement(self, level: int, category: str) -> Requirement: ...


class BanCheck(Protocol):
    def is_banned(self, holder_ref: bytes, today: date) -> BanEntry | None: ...


@dataclass
class Gate:
    gate_id: str
    trust: GateTrust
    policy: Policy
    security_level: Callable[[], int]
    match: Match
    audit: AuditLog
    bans: BanCheck | None = None
    is_revoked: Callable[[bytes], bool] = lambda guid: False
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def decide(self, session: PivSession) -> Decision:
        """Run one decision on the presented card, audit it and return it. Never raises for card or face
        problems: they are decisions with a reason."""
        t0 = time.perf_counter()
        level = self.security_level()
        decision = self._decide(session, level, t0)
        decision.timings_ms["total"] = (time.perf_counter() - t0) * 1000
        self._audit(decision)
        return decision

    def _decide(self, session: PivSession, level: int, t0: float) -> Decision:
        now = self.now()
        try:
            reading = read_card(session, self.trust, now=now, is_revoked=self.is_revoked)
        except CardRejected as rej:
            return Decision(rej.reason, self.gate_id, rej.card_id, level, detail=rej.detail)
        decision = Decision(Reason.INTERNAL_ERROR, self.gate_id, reading.card_id, level)
        decision.timings_ms.update(reading.timings_ms)
        try:
            header = reading.unsealed.header
            decision.category = header.visitor_category
            if self.bans is not None and self.bans.is_banned(header.holder_ref, now.date()):
                decision.reason = Reason.BANNED
                return decision
            req = self.policy.requirement(level, header.visitor_category)
            if not req.admitted:
                decision.reason = Reason.CATEGORY_NOT_ADMITTED
                return decision
            if not req.biometric:
                decision.reason = Reason.ACCEPTED_NO_BIOMETRIC
                return decision
            decision.threshold = req.threshold
            outcome = self.match(reading.unsealed.template, req.threshold)
        finally:
            reading.wipe()  # the reference lives no longer than the comparison
        decision.timings_ms["capture"] = outcome.capture_ms
        decision.timings_ms["compare"] = outcome.compare_ms
        if outcome.distance is None:
            decision.reason = outcome.reason or Reason.NO_LIVE_FACE
            decision.detail = outcome.detail
            return decision
        decision.distance = outcome.distance
        decision.reason = Reason.ACCEPTED if outcome.distance <= req.threshold else Reason.FACE_MISMATCH
        return decision

    def _audit(self, d: Decision) -> None:
        t = d.timings_ms
        card_ms = sum(t.get(k, 0.0) for k in ("card_auth", "card_read", "unseal"))
        self.audit.append(
            GateDecision(
                gate_id=self.gate_id,
                card_id=d.card_id,
                decision="granted" if d.accepted else "refused",
                reason_code=d.reason.value.lower(),
                security_level=d.security_level or 1,
                total_ms=int(t.get("total", 0.0)),
                card_ms=int(card_ms) if card_ms else None,
                capture_ms=int(t["capture"]) if "capture" in t else None,
                compare_ms=int(t["compare"]) if "compare" in t else None,
                visitor_category=d.category,
            )
        )
