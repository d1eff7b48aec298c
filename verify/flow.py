"""One gate decision: list ages → card transaction → ban list → policy → live capture and 1:1 compare → decision →
wipe → audit.

The lists come first: when the CRL, the ban list or the revoked-card list is older than the policy allows at the
current ISPS level, the decision is `LISTS_STALE` at once, naming the list — no card transaction, no capture
(the gate cannot vouch for any card while it may be missing a ban or a revocation).

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
from card.apdu import ApduConnection
from card.piv import PivSession
from card.sealed import GateTrust
from card.transport import CardTimeoutError, ConnectionLostError
from card.values import Category as CategoryValue
from card.values import HolderRef, InvalidValue
from verify.banlist import BanEntry
from verify.cardcheck import CardRejected, read_card, reprove
from verify.decision import Decision, Reason
from verify.freshness import Assessment, ListStamp, assess
from verify.policy import ListAges, Requirement
from verify.revocation import RevocationList

TEMPLATE_BYTES = 512  # the engine's reference template (128 float32); anything else is refused, not compared


@dataclass(frozen=True)
class ProbeOutcome:
    """What the biometric worker returns: a distance, or the reason there is none. Never pixels or descriptors."""

    distance: float | None
    reason: Reason | None = None  # NO_LIVE_FACE or CAMERA_ERROR when distance is None
    detail: str = ""
    capture_ms: float = 0.0
    compare_ms: float = 0.0
    faces: int = 0  # faces in the compared frame


# (512-byte reference, threshold, allow several faces in the capture) -> outcome
Match = Callable[[bytearray, float, bool], ProbeOutcome]


class ProbeSession(Protocol):
    """A live capture already running (started when the card was detected), finished by exactly one call."""

    def compare(self, reference: bytearray, threshold: float, allow_several: bool = True) -> ProbeOutcome: ...

    def discard(self) -> None: ...


#: Starts the live capture concurrently with the card transaction (the worker captures while this process reads
#: the card); the comparison waits for both. Nothing biometric exists before `decide` is called for a presented
#: card, and `discard` wipes the probe when the card is refused or needs no face.
StartProbe = Callable[[], ProbeSession]


class Policy(Protocol):
    def requirement(self, level: int, category: str) -> Requirement: ...

    @property
    def list_ages(self) -> ListAges: ...


class BanCheck(Protocol):
    def is_banned(self, holder_ref: bytes, today: date) -> BanEntry | None: ...


def crl_stamp(trust: GateTrust) -> ListStamp:
    """The CRL's age: issued at its thisUpdate, with its own nextUpdate as a second deadline."""
    return ListStamp("crl", "of the gate bundle", trust.crl.last_update_utc, trust.crl.next_update_utc)


def list_stamps(trust: GateTrust | None, bans: object | None, revoked: RevocationList | None) -> list[ListStamp]:
    """Every list the gate decides with, and its age. A ban check that cannot say its issue time is undated."""
    stamps = [crl_stamp(trust)] if trust is not None else []
    if bans is not None:
        stamp = getattr(bans, "stamp", None)
        stamps.append(stamp if isinstance(stamp, ListStamp) else ListStamp("ban list", repr(bans)[:80], None))
    if revoked is not None:
        stamps.append(revoked.stamp)
    return stamps


def list_health(policy: Policy, stamps: list[ListStamp], level: int, now: datetime) -> list[Assessment]:
    """Each list's age against `policy`'s maximum at ISPS `level` (the gate's start, `gate check`, a reload)."""
    ages = policy.list_ages
    return [assess(st, now=now, level=level, max_age=ages.max_age(level), warn_ahead=ages.warn_ahead(level))
            for st in stamps]


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
    #: When set, the face is captured in parallel with the card transaction and `match` is not used.
    start_probe: StartProbe | None = None
    #: The revoked-card list (by GUID), checked beside `is_revoked`; its issue time is limited by the policy.
    revoked: RevocationList | None = None

    def list_health(self, level: int, now: datetime | None = None) -> list[Assessment]:
        """The age of each list (CRL, ban list, revoked-card list) against the policy at `level`."""
        return list_health(self.policy, list_stamps(self.trust, self.bans, self.revoked), level, now or self.now())

    def _revoked(self, guid: bytes) -> bool:
        return self.is_revoked(guid) or (self.revoked is not None and self.revoked.is_revoked(guid))

    def decide_connection(self, conn: ApduConnection, *, reader_id: str | None = None,
                          lane_id: str | None = None) -> Decision:
        """Open the PIV application on a connected card and decide. A card without it (a bank card answering
        6A82 to SELECT), a mute or a garbage-answering card is a CARD_ERROR decision, audited like any other."""
        t0 = time.perf_counter()
        try:  # stale lists refuse every presentation alike, even a card that would not answer the SELECT
            stale = self._stale_lists(self.security_level())
        except Exception:  # noqa: BLE001 - `decide` reports an unreadable level or anything else as a decision
            stale = None
        if stale is not None:
            stale.reader_id, stale.lane_id = reader_id, lane_id
            stale.timings_ms["total"] = (time.perf_counter() - t0) * 1000
            return self.record(stale)
        try:
            session = PivSession(conn)
        except Exception as exc:  # noqa: BLE001 - ApduError, PivFormatError, TransportError, timeouts, anything
            removed = isinstance(exc, ConnectionLostError) and not isinstance(exc, CardTimeoutError)
            decision = Decision(Reason.CARD_REMOVED if removed else Reason.CARD_ERROR, self.gate_id,
                                detail=f"select: {type(exc).__name__}", reader_id=reader_id, lane_id=lane_id)
            try:
                decision.security_level = self.security_level()
            except Exception:  # noqa: BLE001
                decision.security_level = 3
            decision.timings_ms["total"] = (time.perf_counter() - t0) * 1000
            return self.record(decision)
        return self.decide(session, reader_id=reader_id, lane_id=lane_id)

    def decide(self, session: PivSession, *, reader_id: str | None = None, lane_id: str | None = None) -> Decision:
        """Run one decision on the presented card, audit it and return it. Never raises: card, face and
        unexpected problems alike are decisions with a reason (INTERNAL_ERROR names only the exception class)."""
        t0 = time.perf_counter()
        try:
            level = self.security_level()
        except Exception as exc:  # an unreadable level file is refused at start-up; if it breaks later: level 3
            level = 3
            decision = Decision(Reason.INTERNAL_ERROR, self.gate_id, security_level=level,
                                detail=f"security level unreadable ({type(exc).__name__})")
        else:
            try:
                decision = self._decide(session, level, t0)
            except Exception as exc:  # noqa: BLE001 - the gate loop must get a decision, whatever happened
                decision = Decision(Reason.INTERNAL_ERROR, self.gate_id, security_level=level,
                                    detail=f"unexpected {type(exc).__name__}")
        decision.reader_id, decision.lane_id = reader_id, lane_id
        decision.timings_ms["total"] = (time.perf_counter() - t0) * 1000
        return self.record(decision)

    def record(self, decision: Decision) -> Decision:
        """Audit a decision (also one made before any card transaction: NO_CARD, CARD_ERROR while connecting).
        If the audit log refuses it, the decision becomes a refusal: nothing opens without its audit event."""
        try:
            self._audit(decision)
        except Exception as exc:  # noqa: BLE001
            refused = Decision(Reason.INTERNAL_ERROR, decision.gate_id, decision.card_id, decision.security_level,
                               detail=f"audit append failed ({type(exc).__name__})", reader_id=decision.reader_id,
                               lane_id=decision.lane_id)
            refused.timings_ms = decision.timings_ms
            refused.audited = False
            try:  # an event the schema refused (odd category): record the refusal without the odd value
                self._audit(refused)
                refused.audited = True
            except Exception:  # noqa: BLE001, S110 - the log itself is down; the caller reports it
                pass
            return refused
        decision.audited = True
        return decision

    def _stale_lists(self, level: int) -> Decision | None:
        """LISTS_STALE naming each list too old for `level`, or None when every list is fresh enough."""
        stale = [a for a in self.list_health(level) if a.stale]
        if not stale:
            return None
        return Decision(Reason.LISTS_STALE, self.gate_id, security_level=level,
                        detail="; ".join(a.short for a in stale))

    def _decide(self, session: PivSession, level: int, t0: float) -> Decision:
        stale = self._stale_lists(level)
        if stale is not None:  # before any card or biometric work: nothing this gate concluded could be trusted
            return stale
        probe = self.start_probe() if self.start_probe is not None else None
        try:
            return self._decide_with(probe, session, level)
        finally:
            if probe is not None:
                probe.discard()  # no-op after compare; wipes the live probe on every other path

    def _decide_with(self, probe: ProbeSession | None, session: PivSession, level: int) -> Decision:
        now = self.now()
        try:
            reading = read_card(session, self.trust, now=now, is_revoked=self._revoked)
        except CardRejected as rej:
            return Decision(rej.reason, self.gate_id, rej.card_id, level, detail=rej.detail)
        try:  # from here on the reading holds the unsealed reference: every way out wipes it
            decision = Decision(Reason.INTERNAL_ERROR, self.gate_id, reading.card_id, level)
            decision.timings_ms.update(reading.timings_ms)
            header = reading.unsealed.header
            # Signed is not the same as sane: values the desk should never have written are refused here, with
            # a decision and its audit event, instead of crashing the ban check, the policy or the audit schema.
            try:
                category = CategoryValue(header.visitor_category)
                HolderRef(bytes(header.holder_ref))
                if len(reading.unsealed.template) != TEMPLATE_BYTES:
                    raise InvalidValue("template", f"must be {TEMPLATE_BYTES} bytes")
            except InvalidValue as exc:
                decision.reason = Reason.TEMPLATE_INVALID
                decision.detail = f"signed template carries an invalid {exc.field}"
                return decision
            decision.category = category
            if self.bans is not None and self.bans.is_banned(header.holder_ref, now.date()):
                decision.reason = Reason.BANNED
                return decision
            req = self.policy.requirement(level, header.visitor_category)
            if not req.admitted:
                decision.reason = Reason.CATEGORY_NOT_ADMITTED
                return decision
            if not req.biometric:
                decision.reason = Reason.ACCEPTED_NO_BIOMETRIC
                try:
                    reprove(session, reading)
                except CardRejected as rej:
                    decision.reason, decision.detail = rej.reason, rej.detail
                return decision
            decision.threshold = req.threshold
            several_ok = getattr(req, "several_faces", "refuse") == "flag"
            template = reading.unsealed.template
            outcome = (probe.compare(template, req.threshold, several_ok) if probe
                       else self.match(template, req.threshold, several_ok))
        finally:
            reading.wipe()  # the reference lives no longer than the comparison
        decision.timings_ms["capture"] = outcome.capture_ms
        decision.timings_ms["compare"] = outcome.compare_ms
        if outcome.distance is None:
            decision.reason = outcome.reason or Reason.NO_LIVE_FACE
            decision.detail = outcome.detail
            return decision
        decision.distance = outcome.distance
        if outcome.faces > 1:  # accepted with a second face in view: the policy says flag it, so it is said
            decision.flags = ("SEVERAL_FACES",)
        decision.reason = Reason.ACCEPTED if outcome.distance <= req.threshold else Reason.FACE_MISMATCH
        if decision.reason is Reason.ACCEPTED:
            try:  # the door opens only for the card that is still there
                reprove(session, reading)
            except CardRejected as rej:
                decision.reason, decision.detail = rej.reason, rej.detail
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
                reader_id=d.reader_id,
                lane_id=d.lane_id,
                flags=".".join(f.lower() for f in d.flags) or None,
            )
        )
