"""Server-side desk sessions: the browser holds only a random session id (HttpOnly, SameSite=Strict cookie);
everything else — who is logged in, the CSRF token, the pending WebAuthn ceremony, the frames taken for an
enrolment — stays in this process's memory and is gone when the desk stops.

Expiry: a session dies after `idle` without a request and `absolute` after login, whatever the activity; the
frames it holds are wiped when it dies (logout, expiry, or a new login on the same browser).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from enrol.desk.store import Lang, Role

MAX_FRAMES = 5  # frames held for one enrolment (the template averages 3); the rest are refused


@dataclass
class Session:
    sid: str
    csrf: str
    created: float
    last_seen: float
    lang: Lang = "en"
    operator_id: str | None = None
    role: Role | None = None
    login_time: float | None = None
    ceremony: dict[str, Any] = field(default_factory=dict)  # kind -> state (consumed once)
    frames: list[bytearray] = field(default_factory=list)  # encoded frames kept for the enrolment, in memory
    expired_reason: str | None = None

    def take_ceremony(self, kind: str) -> Any:
        """The pending ceremony state of `kind`, removed: a second call returns None (replay)."""
        return self.ceremony.pop(kind, None)

    def wipe_frames(self) -> None:
        for f in self.frames:
            f[:] = bytes(len(f))
        self.frames.clear()

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), str(token).encode())


class SessionStore:
    def __init__(self, idle_s: float = 15 * 60, absolute_s: float = 8 * 3600,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self.absolute_s = absolute_s
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def new(self, lang: Lang = "en") -> Session:
        now = self.clock()
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now, lang)
        with self._lock:
            # every cookie-less request makes a session: sweep idle anonymous ones so the table stays small (a
            # logged-in one stays until its browser comes back, so that its expiry is audited with its operator)
            for old in [o for o in self._sessions.values()
                        if o.operator_id is None and now - o.last_seen > self.idle_s]:
                del self._sessions[old.sid]
                old.wipe_frames()
            self._sessions[s.sid] = s
        return s

    def get(self, sid: str | None) -> tuple[Session | None, Session | None]:
        """(live session, None); or (None, the session that just expired: `expired_reason` 'idle'/'absolute');
        or (None, None) for an unknown id."""
        if not sid:
            return None, None
        now = self.clock()
        with self._lock:
            s = self._sessions.get(sid)
            if s is None:
                return None, None
            why = None
            if now - s.last_seen > self.idle_s:
                why = "idle"
            elif s.login_time is not None and now - s.login_time > self.absolute_s:
                why = "absolute"
            if why is not None:
                del self._sessions[sid]
                s.wipe_frames()
                s.ceremony.clear()
                s.expired_reason = why
                return None, s
            s.last_seen = now
            return s, None

    def login(self, old: Session, operator_id: str, role: Role, lang: Lang) -> Session:
        """A fresh session id for the logged-in operator (no session fixation); the old one is dropped."""
        self.drop(old)
        s = self.new(lang)
        s.operator_id, s.role, s.login_time = operator_id, role, self.clock()
        return s

    def drop(self, s: Session) -> None:
        with self._lock:
            self._sessions.pop(s.sid, None)
        s.wipe_frames()
        s.ceremony.clear()

    def drop_operator(self, operator_id: str) -> int:
        """End every session of `operator_id` (role changed): they must log in again with the new role."""
        with self._lock:
            gone = [s for s in self._sessions.values() if s.operator_id == operator_id]
            for s in gone:
                del self._sessions[s.sid]
        for s in gone:
            s.wipe_frames()
        return len(gone)
