"""The desk web app (Flask): security-key login, live capture with quality hints, card panel, enrolment,
operator administration, the auditor's read-only page.

Every route is listed in `ROUTE_ROLES` (who may call it) or `PUBLIC` (login and registration ceremonies, static
files); anything else is refused before it runs (fail closed). Every state-changing request must carry the
session's CSRF token *and* come from the desk's exact origin (`Origin` header). Frames arrive as raw request bodies
(`image/jpeg`), are read with a capped length into a bytearray and never meet the multipart parser, so nothing can be
spooled to a temporary file; multipart requests are refused outright.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol

from flask import Flask, Response, abort, g, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from audit import (
    AuditEvent,
    AuditLog,
    OperatorInvited,
    OperatorLogin,
    OperatorLoginFailed,
    OperatorLogout,
    OperatorRegistered,
    OperatorRoleChanged,
)
from biometric.isolation import EnrolmentReply, FrameQuality, SampleUnusable
from card import transport
from card.bundles import DeskKeys
from card.piv import PivSession
from card.register import CardRegister
from card.transport import PcscConnection
from enrol import messages
from enrol.desk.i18n import hint, lang_or_default, t
from enrol.desk.sessions import MAX_FRAMES, Session, SessionStore
from enrol.desk.store import LANGS, Lang, OperatorStore, Role, StoreError, check_operator_id
from enrol.desk.webauthn import CeremonyError, WebAuthn
from enrol.facecapture import frames_capture
from enrol.flow import CapturedTemplate, EnrolError, EnrolRequest, enrol
from enrol.rules import EnrolmentRules

COOKIE = "desk_session"
MAX_FRAME_BYTES = 2 * 1024 * 1024  # one JPEG from the browser (640x480 is ~40-80 KB); larger is refused (413)
MAX_JSON_BYTES = 64 * 1024  # WebAuthn responses are a few KB
FRAMES_NEEDED = 3
DESK_WORDING = frozenset({"ALREADY_ENROLLED"})  # failures whose `enrol.messages` text names a command-line flag


class Worker(Protocol):
    def frame_quality(self, encoded: bytes | bytearray, *, preset: str = ..., timeout_s: float = ...) -> FrameQuality:
        ...

    def enrol_template_from_frames(self, frames: Sequence[bytes | bytearray], *, preset: str = ...,
                                   max_samples: int = ..., timeout_s: float = ...) -> EnrolmentReply:
        ...


@dataclass(frozen=True)
class ReaderState:
    name: str
    state: str  # absent / blank / ready / enrolled / unknown


@dataclass
class DeskServices:
    """Everything the desk drives, injected by the composition root (`cardbound desk serve`) or a test."""

    store: OperatorStore
    audit: AuditLog
    worker: Worker
    keys: DeskKeys
    categories: tuple[str, ...]
    pseudonymise: Callable[[str], bytes]  # national register number -> 32-byte holder reference (ValueError)
    readers: Callable[[], list[ReaderState]]
    connect: Callable[[str], contextlib.AbstractContextManager[PcscConnection]]
    verify_audit: Callable[[], tuple[bool, str, list[str]]]  # (ok, summary, findings)
    max_valid_until: Callable[[], date]
    rules: EnrolmentRules | None = None  # the gate's rules, checked again by the flow (categories, validity, revoked)
    register: CardRegister | None = None  # the issued-card register the flow keeps


@dataclass(frozen=True)
class DeskConfig:
    station: str
    origin: str  # exact, e.g. "http://localhost:8470"; WebAuthn and the CSRF check compare it byte for byte
    rp_id: str  # the origin's host name
    idle_s: float = 15 * 60
    absolute_s: float = 8 * 3600
    samples: int = FRAMES_NEEDED

    @property
    def secure(self) -> bool:
        return self.origin.startswith("https://")


# Who may call what. Endpoints absent from both tables are refused (403) before they run.
ROUTE_ROLES: dict[str, frozenset[Role]] = {
    "home": frozenset({Role.OPERATOR, Role.ADMIN, Role.AUDITOR}),
    "logout": frozenset({Role.OPERATOR, Role.ADMIN, Role.AUDITOR}),
    "set_lang": frozenset({Role.OPERATOR, Role.ADMIN, Role.AUDITOR}),
    "desk": frozenset({Role.OPERATOR}),
    "frame_hint": frozenset({Role.OPERATOR}),
    "frame_take": frozenset({Role.OPERATOR}),
    "frame_reset": frozenset({Role.OPERATOR}),
    "card_state": frozenset({Role.OPERATOR}),
    "enrol_action": frozenset({Role.OPERATOR}),
    "admin": frozenset({Role.ADMIN}),
    "admin_invite": frozenset({Role.ADMIN}),
    "admin_role": frozenset({Role.ADMIN}),
    "audit_page": frozenset({Role.AUDITOR, Role.ADMIN}),
}
PUBLIC = frozenset({"static", "login", "login_begin", "login_complete", "register", "register_begin",
                    "register_complete"})

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def create_app(config: DeskConfig, services: DeskServices) -> Flask:
    here = Path(__file__).parent
    app = Flask(__name__, template_folder=str(here / "templates"), static_folder=str(here / "static"))
    app.config.update(MAX_CONTENT_LENGTH=MAX_FRAME_BYTES, MAX_FORM_MEMORY_SIZE=64 * 1024, MAX_FORM_PARTS=50,
                      SECRET_KEY=secrets.token_bytes(32))  # Flask's cookie session is not used; set anyway
    sessions = SessionStore(config.idle_s, config.absolute_s)
    webauthn = WebAuthn(config.rp_id, config.origin)
    card_lock = threading.Lock()  # one card operation at a time (panel polling vs enrolment)
    worker_lock = threading.Lock()  # the sandboxed worker serves one request at a time
    audit_lock = threading.Lock()
    app.extensions["desk"] = {"sessions": sessions, "webauthn": webauthn, "config": config, "services": services}

    def audit(*events: AuditEvent) -> None:
        with audit_lock:
            services.audit.append_many(list(events))

    # -- session, authorisation, CSRF ------------------------------------------------------------------------

    def lang() -> Lang:
        s: Session | None = g.get("session")
        return s.lang if s is not None else lang_or_default(request.accept_languages.best_match(LANGS), "en")

    def wants_json() -> bool:
        return request.path.startswith("/api/")

    def refuse(status: int, key: str) -> Response:
        if wants_json():
            resp = jsonify({"error": key, "message": t(key, lang())})
            resp.status_code = status
            return resp
        return Response(render_template("error.html", message=t(key, lang()), t=_tr(lang()), s=g.get("session")),
                        status=status)

    @app.before_request
    def guard() -> Response | None:
        s, ended = sessions.get(request.cookies.get(COOKIE))
        expired = ended.expired_reason if ended is not None else None
        if ended is not None and ended.operator_id is not None:
            audit(OperatorLogout(station_id=config.station, operator_id=ended.operator_id,
                                 reason_code=f"expired_{expired}"))
        if s is None:
            s = sessions.new(lang_or_default(request.accept_languages.best_match(LANGS), "en"))
            g.new_cookie = True
        g.session = s
        g.expired = expired
        endpoint = request.endpoint
        if endpoint is None:
            return refuse(404, "not_found")
        if request.mimetype.startswith("multipart/"):
            return refuse(415, "bad_request")  # never the multipart parser: it spools large parts to disk
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("Origin")
            if origin != config.origin or not s.csrf_ok(request.headers.get("X-CSRF-Token") or _form_csrf()):
                return refuse(403, "csrf")
        if endpoint in PUBLIC:
            return None
        allowed = ROUTE_ROLES.get(endpoint)
        if allowed is None:
            return refuse(403, "forbidden")
        if s.operator_id is None:
            if request.method == "GET" and not wants_json():
                return redirect(url_for("login", expired=expired or None))  # type: ignore[return-value]
            return refuse(401, "not_logged_in")
        if s.role not in allowed:
            return refuse(403, "forbidden")
        return None

    def _form_csrf() -> str | None:
        if request.mimetype == "application/x-www-form-urlencoded":
            return request.form.get("csrf")
        return None

    @app.after_request
    def headers(resp: Response) -> Response:
        s: Session | None = g.get("session")
        if s is not None and (g.get("new_cookie") or g.get("rotated")):
            resp.set_cookie(COOKIE, s.sid, httponly=True, samesite="Strict", secure=config.secure, path="/")
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        # not "no-referrer": Chromium then sends `Origin: null` on same-origin form posts, which the CSRF check
        # refuses; "same-origin" still gives other sites nothing
        resp.headers["Referrer-Policy"] = "same-origin"
        resp.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        resp.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        resp.headers["Permissions-Policy"] = ("camera=(self), microphone=(), geolocation=(), "
                                              "publickey-credentials-get=(self)")
        if config.secure:
            resp.headers["Strict-Transport-Security"] = "max-age=31536000"
        if request.endpoint != "static":
            resp.headers["Cache-Control"] = "no-store"  # pages and answers may carry personal data
        return resp

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        key = {404: "not_found", 413: "too_large", 405: "bad_request", 400: "bad_request"}.get(exc.code or 400,
                                                                                             "bad_request")
        return refuse(exc.code or 400, key)

    @app.errorhandler(Exception)
    def internal(exc: Exception) -> Response:  # never a traceback on a page
        app.logger.error("desk: internal error: %s", type(exc).__name__)
        return refuse(500, "internal")

    def page(name: str, **kw: Any) -> str:
        s: Session = g.session
        return render_template(name, t=_tr(s.lang), s=s, lang=s.lang, **kw)

    def json_body() -> dict[str, Any]:
        if request.mimetype != "application/json" or (request.content_length or 0) > MAX_JSON_BYTES:
            abort(400)
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            abort(400)
        return body

    # -- login / logout ----------------------------------------------------------------------------------

    @app.get("/")
    def home() -> Any:
        role = g.session.role
        return redirect(url_for({Role.OPERATOR: "desk", Role.ADMIN: "admin", Role.AUDITOR: "audit_page"}[role]))

    @app.get("/login")
    def login() -> Any:
        if g.session.operator_id is not None:
            return redirect(url_for("home"))
        if request.args.get("lang") in LANGS:  # before login the language is the browser's, or chosen here
            g.session.lang = lang_or_default(request.args.get("lang"))
        note = None
        if request.args.get("expired") in ("idle", "absolute"):
            note = t("session_expired", g.session.lang)
        elif request.args.get("bye"):
            note = t("logged_out", g.session.lang)
        return page("login.html", note=note)

    @app.post("/api/login/begin")
    def login_begin() -> Any:
        body = json_body()
        s: Session = g.session
        try:
            op_id = check_operator_id(str(body.get("operator", "")))
        except StoreError:
            return refuse(400, "bad_operator_id")
        op = services.store.get(op_id)
        if op is None or not op.active:
            # same answer shape as for a real account would leak less, but a refusal here is audited and clear
            audit(OperatorLoginFailed(station_id=config.station, reason_code="unknown_operator"))
            return refuse(403, "login_failed")
        options, state = webauthn.login_begin(op)
        s.ceremony["login"] = (state, op_id)
        return jsonify(options)

    @app.post("/api/login/complete")
    def login_complete() -> Any:
        body = json_body()
        s: Session = g.session
        pending = s.take_ceremony("login")  # consumed before verification: a replay finds nothing
        if pending is None:
            audit(OperatorLoginFailed(station_id=config.station, reason_code="no_ceremony"))
            return refuse(403, "login_failed")
        state, op_id = pending
        op = services.store.get(op_id)
        if op is None or not op.active:
            audit(OperatorLoginFailed(station_id=config.station, reason_code="unknown_operator", operator_id=op_id))
            return refuse(403, "login_failed")
        try:
            result = webauthn.login_complete(state, op, body)
        except CeremonyError as exc:
            audit(OperatorLoginFailed(station_id=config.station, reason_code=exc.code, operator_id=op_id))
            return refuse(403, "login_failed")
        services.store.record_use(op_id, result.credential_id, result.sign_count)
        new = sessions.login(s, op_id, op.role, op.lang)
        g.session, g.rotated = new, True
        audit(OperatorLogin(station_id=config.station, operator_id=op_id))
        return jsonify({"ok": True, "next": url_for("home")})

    @app.post("/logout")
    def logout() -> Any:
        s: Session = g.session
        audit(OperatorLogout(station_id=config.station, operator_id=s.operator_id or "unknown"))
        sessions.drop(s)
        g.session = sessions.new(s.lang)
        g.rotated = True
        return redirect(url_for("login", bye=1))

    @app.post("/lang")
    def set_lang() -> Any:
        s: Session = g.session
        new = request.form.get("lang", "")
        if new not in LANGS:
            return refuse(400, "bad_request")
        s.lang = lang_or_default(new)
        assert s.operator_id is not None
        services.store.set_lang(s.operator_id, s.lang)
        return redirect(url_for("home"))

    # -- registration (one-time link) ---------------------------------------------------------------------

    @app.get("/register/<token>")
    def register(token: str) -> Any:
        try:
            inv = services.store.invitation(token)
        except StoreError:
            return refuse(404, "invalid_link")
        g.session.lang = inv.lang
        return page("register.html", inv=inv, token=token, role_name=t(f"role_{inv.role.value}", inv.lang))

    @app.post("/api/register/begin")
    def register_begin() -> Any:
        body = json_body()
        token = str(body.get("token", ""))
        try:
            inv = services.store.invitation(token)
        except StoreError:
            return refuse(403, "invalid_link")
        options, state = webauthn.register_begin(inv.operator_id, services.store.get(inv.operator_id))
        g.session.ceremony["register"] = (state, token)
        return jsonify(options)

    @app.post("/api/register/complete")
    def register_complete() -> Any:
        body = json_body()
        pending = g.session.take_ceremony("register")
        if pending is None:
            return refuse(403, "register_failed")
        state, token = pending
        try:
            inv = services.store.invitation(token)
            cred_id, data, count = webauthn.register_complete(state, body)
            op = services.store.complete_registration(token, cred_id, data, count)
        except CeremonyError as exc:
            audit(OperatorLoginFailed(station_id=config.station, reason_code=f"register_{exc.code}"[:48]))
            return refuse(403, "register_failed")
        except StoreError as exc:
            return refuse(403, exc.code)
        audit(OperatorRegistered(station_id=config.station, operator_id=op.operator_id, role=op.role.value,
                                 by_operator_id=inv.invited_by, credentials=len(op.credentials)))
        return jsonify({"ok": True, "next": url_for("login")})

    # -- desk: capture, card, enrol -----------------------------------------------------------------------

    @app.get("/desk")
    def desk() -> Any:
        until_max = services.max_valid_until()
        default_until = min(until_max, date.today() + timedelta(days=365))
        return page("desk.html", categories=services.categories, max_until=until_max.isoformat(),
                    min_until=(date.today() + timedelta(days=1)).isoformat(), default_until=default_until.isoformat(),
                    needed=config.samples, held=len(g.session.frames))

    def read_frame() -> bytearray:
        """The raw body, read into a bytearray we can wipe; capped; never parsed as a form."""
        if request.mimetype not in ("image/jpeg", "image/png", "image/webp"):
            abort(400)
        n = request.content_length
        if n is None or not 0 < n <= MAX_FRAME_BYTES:
            abort(413 if n else 400)
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        stream = request.stream
        while got < n:
            k = stream.readinto(view[got:])  # type: ignore[attr-defined]
            if not k:
                break
            got += k
        view.release()
        if got != n:
            buf[:] = bytes(len(buf))
            abort(400)
        return buf

    def quality(frame: bytearray) -> FrameQuality | None:
        try:
            with worker_lock:
                return services.worker.frame_quality(frame)
        except (SampleUnusable, ValueError):
            return None

    def hint_json(q: FrameQuality | None, lang_: Lang, **extra: Any) -> Any:
        if q is None:
            return jsonify({"ok": False, "codes": ["BAD_IMAGE"], "hints": [t("hint_bad_image", lang_)], **extra})
        hints = [hint(r, lang_) for r in dict.fromkeys(q.reasons)] or [t("hint_ok", lang_)]
        return jsonify({"ok": q.ok, "codes": list(q.reasons), "hints": hints, **extra})

    @app.post("/api/frame/hint")
    def frame_hint() -> Any:
        frame = read_frame()
        try:
            return hint_json(quality(frame), g.session.lang)
        finally:
            frame[:] = bytes(len(frame))

    @app.post("/api/frame/take")
    def frame_take() -> Any:
        s: Session = g.session
        frame = read_frame()
        q = quality(frame)
        kept = False
        if q is not None and q.ok and len(s.frames) < min(MAX_FRAMES, config.samples):
            s.frames.append(frame)  # held in memory until the enrolment (or logout/expiry) wipes it
            kept = True
        else:
            frame[:] = bytes(len(frame))
        return hint_json(q, s.lang, kept=kept, held=len(s.frames), needed=config.samples,
                         label=t("taken", s.lang, n=len(s.frames), need=config.samples))

    @app.post("/api/frame/reset")
    def frame_reset() -> Any:
        g.session.wipe_frames()
        return jsonify({"held": 0, "needed": config.samples,
                        "label": t("taken", g.session.lang, n=0, need=config.samples)})

    @app.get("/api/card")
    def card_state() -> Any:
        s: Session = g.session
        try:
            with card_lock:
                readers = services.readers()
        except Exception:  # pcscd down: the panel says so, it does not crash
            return jsonify({"readers": [], "message": t("pcsc_down", s.lang)})
        return jsonify({"readers": [{"name": r.name, "state": r.state, "label": t(f"card_{r.state}", s.lang)}
                                    for r in readers],
                        "message": "" if readers else t("no_reader", s.lang)})

    @app.post("/enrol")
    def enrol_action() -> Any:
        s: Session = g.session
        assert s.operator_id is not None
        form = request.form
        error = None
        holder_ref = b""
        until_max = services.max_valid_until()
        category = form.get("category", "")
        try:
            day = date.fromisoformat(form.get("valid_until", ""))
        except ValueError:
            day = None
        if category not in services.categories:
            error = t("bad_category", s.lang)
        elif day is None or not date.today() < day <= until_max:
            error = t("bad_date", s.lang, max=until_max.isoformat())
        elif not s.frames:
            error = t("no_frames", s.lang)
        else:
            try:
                holder_ref = services.pseudonymise(form.get("nrn", ""))  # the number itself is not kept
            except ValueError:
                error = t("bad_nrn", s.lang)
        reader = form.get("reader", "")
        if error is not None:
            return page("result.html", ok=False, message=t("refused", s.lang, why=error)), 400
        assert day is not None
        frames = s.frames
        s.frames = []

        def _capture(held: list[bytearray]) -> CapturedTemplate:
            with worker_lock:
                return frames_capture(services.worker, held, config.samples)  # type: ignore[arg-type]

        req = EnrolRequest(holder_ref=holder_ref, category=category,
                           valid_until=datetime.combine(day, time(23, 59, 59), UTC), station=config.station,
                           operator=s.operator_id, replace=form.get("replace") == "1")
        try:
            with card_lock, services.connect(reader) as conn:
                result = enrol(req, session=PivSession(conn), keys=services.keys, audit=services.audit,
                               capture=lambda: _capture(frames), rules=services.rules, register=services.register)
        except EnrolError as exc:
            # the enrolment flow's own operator messages (enrol.messages), as `cardbound enrol` shows them
            params = dict(exc.params)
            if exc.reasons:
                params.setdefault("hint", hint(exc.reasons[0], s.lang))
            why = messages.render(exc.failure.value, s.lang, **params)
            if exc.failure.value in DESK_WORDING:  # the command line's text names a flag; the desk has a control
                why = t(f"fail_{exc.failure.value}", s.lang)
            return page("result.html", ok=False, message=t("refused", s.lang, why=why)), 409
        except transport.TransportError as exc:  # reader or card missing before the flow started
            failure = "NO_CARD"
            if isinstance(exc, transport.NoReaderError | transport.PcscUnavailableError):
                failure = "NO_READER"
            why = t(f"fail_{failure}", s.lang)
            return page("result.html", ok=False, message=t("refused", s.lang, why=why)), 409
        finally:
            for f in frames:
                f[:] = bytes(len(f))
            frames.clear()
        return page("result.html", ok=True, message=t("enrolled", s.lang, card=result.card_id),
                    detail=t("enrolled_detail", s.lang, used=result.frames_used, quality=result.quality,
                             until=day.isoformat()))

    # -- admin ----------------------------------------------------------------------------------------------

    @app.get("/admin")
    def admin() -> Any:
        return page("admin.html", operators=services.store.operators(), roles=[r.value for r in Role],
                    link=None, message=None)

    @app.post("/admin/invite")
    def admin_invite() -> Any:
        s: Session = g.session
        form = request.form
        try:
            role = Role(form.get("role", ""))
            new_lang = lang_or_default(form.get("lang"), s.lang)
            op_id = check_operator_id(form.get("operator_id", ""))
            token = services.store.invite(op_id, role, new_lang, s.operator_id)
        except ValueError:
            return page("admin.html", operators=services.store.operators(), roles=[r.value for r in Role],
                        link=None, message=t("bad_request", s.lang)), 400
        except StoreError as exc:
            return page("admin.html", operators=services.store.operators(), roles=[r.value for r in Role],
                        link=None, message=t(exc.code, s.lang)), 400
        audit(OperatorInvited(station_id=config.station, operator_id=op_id, role=role.value,
                              by_operator_id=s.operator_id))
        link = f"{config.origin}/register/{token}"
        return page("admin.html", operators=services.store.operators(), roles=[r.value for r in Role],
                    link=link, link_for=op_id, message=None)

    @app.post("/admin/role")
    def admin_role() -> Any:
        s: Session = g.session
        form = request.form
        try:
            op_id = check_operator_id(form.get("operator_id", ""))
            role = Role(form.get("role", ""))
            old = services.store.set_role(op_id, role)
        except ValueError:
            return page("admin.html", operators=services.store.operators(), roles=[r.value for r in Role],
                        link=None, message=t("bad_request", s.lang)), 400
        except StoreError as exc:
            return page("admin.html", operators=services.store.operators(), roles=[r.value for r in Role],
                        link=None, message=t(exc.code, s.lang)), 400
        if old is not role:
            sessions.drop_operator(op_id)  # the new role applies at the next login
            audit(OperatorRoleChanged(station_id=config.station, operator_id=op_id, old_role=old.value,
                                      new_role=role.value, by_operator_id=s.operator_id or "unknown"))
        msg = t("role_changed", s.lang, who=op_id, old=t(f"role_{old.value}", s.lang),
                new=t(f"role_{role.value}", s.lang))
        if op_id == s.operator_id and old is not role:
            return redirect(url_for("login"))
        return page("admin.html", operators=services.store.operators(), roles=[r.value for r in Role],
                    link=None, message=msg)

    # -- auditor --------------------------------------------------------------------------------------------

    @app.get("/audit")
    def audit_page() -> Any:
        ok, summary, findings = services.verify_audit()
        return page("audit.html", ok=ok, summary=summary, findings=findings)

    return app


def _tr(lang: Lang) -> Callable[..., str]:
    def tr(key: str, **kw: object) -> str:
        return t(key, lang, **kw)

    return tr


__all__ = ["COOKIE", "PUBLIC", "ROUTE_ROLES", "DeskConfig", "DeskServices", "ReaderState", "create_app"]
