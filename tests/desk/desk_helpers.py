"""Helpers for the desk tests: a desk app on a real station home (keystore, audit log, operator register, holder-reference key), driven
through Flask's test client with the software authenticator of `softkey`."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from softkey import SoftKey

from audit import AuditLog
from biometric.isolation import FaceWorker
from card import transport
from card.keystore import KeyStore
from card.register import CardRegister
from cardbound.home import Home
from enrol.desk import DeskConfig, DeskServices, OperatorStore, Role, create_app
from enrol.desk.cardpanel import reader_states
from enrol.rules import EnrolmentRules
from verify.banlist import pseudonymise

ORIGIN = "http://localhost:8470"
RP_ID = "localhost"
STATION = "desk-test"


@dataclass
class Desk:
    app: Flask
    home: Path
    store: OperatorStore
    log: AuditLog
    keys: dict[str, SoftKey] = field(default_factory=dict)

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def events(self, kind: str = "operator.") -> list[dict[str, Any]]:
        """Audit records of type `kind` (or every type under it when it ends with '.')."""
        records = [e.record() for e in self.log.entries()]
        if kind.endswith("."):
            return [r for r in records if r["type"].startswith(kind)]
        return [r for r in records if r["type"] == kind]

    def invite(self, operator: str, role: Role, lang: str = "en") -> str:
        return self.store.invite(operator, role, lang, None)  # type: ignore[arg-type]

    def register(self, operator: str, role: Role, lang: str = "en") -> SoftKey:
        token = self.invite(operator, role, lang)
        c = self.client()
        page = c.get(f"/register/{token}")
        assert page.status_code == 200
        key = SoftKey(RP_ID, ORIGIN)
        options = post_json(c, "/api/register/begin", {"token": token}).get_json()
        r = post_json(c, "/api/register/complete", key.register(options))
        assert r.status_code == 200, r.get_json()
        self.keys[operator] = key
        return key

    def login(self, operator: str, c: FlaskClient | None = None, **assert_kw: Any) -> tuple[FlaskClient, Any]:
        c = c or self.client()
        c.get("/login")
        options = post_json(c, "/api/login/begin", {"operator": operator}).get_json()
        response = self.keys[operator].assert_(options, **assert_kw)
        r = post_json(c, "/api/login/complete", response)
        return c, (r, response)


def csrf_of(c: FlaskClient, path: str = "/login") -> str:
    html = c.get(path).get_data(as_text=True)
    m = re.search(r'<meta name="csrf" content="([^"]+)">', html)
    assert m, html[:500]
    return m.group(1)


def post_json(c: FlaskClient, path: str, body: Any, *, origin: str | None = ORIGIN) -> Any:
    token = csrf_of(c, "/login") if not _has_session(c) else _csrf(c)
    headers = {"X-CSRF-Token": token}
    if origin is not None:
        headers["Origin"] = origin
    return c.post(path, json=body, headers=headers)


def _has_session(c: FlaskClient) -> bool:
    return c.get_cookie("desk_session") is not None


def _csrf(c: FlaskClient) -> str:
    app: Flask = c.application
    sessions = app.extensions["desk"]["sessions"]
    cookie = c.get_cookie("desk_session")
    assert cookie is not None
    s, _ = sessions.get(cookie.value)
    if s is None:
        return csrf_of(c, "/login")
    return str(s.csrf)


def form_post(c: FlaskClient, path: str, data: dict[str, str], *, origin: str | None = ORIGIN,
              csrf: bool = True) -> Any:
    body = dict(data)
    if csrf:
        body["csrf"] = _csrf(c)
    headers = {"Origin": origin} if origin is not None else {}
    return c.post(path, data=body, headers=headers)


def make_desk(home: Path, *, worker: FaceWorker | None = None, idle_s: float = 900, absolute_s: float = 28800,
              log: AuditLog | None = None, keys: KeyStore | None = None) -> Desk:
    if keys is None:
        keys = KeyStore.init(home / "keys")
        keys.issue_station(STATION)
    ref_key = secrets.token_bytes(32)
    log = log or AuditLog.open_station(home, node_id=Home(home).node_id)
    store = OperatorStore(home / "desk" / "operators.json")
    cert_end = keys.station_credentials(STATION).certificate.not_valid_after_utc.date()
    rules = EnrolmentRules.default()
    services = DeskServices(
        store=store, audit=log, worker=worker or FaceWorker(), keys=keys, categories=tuple(sorted(rules.categories)),
        pseudonymise=lambda nrn: pseudonymise(nrn, ref_key), readers=reader_states,
        connect=lambda name: transport.connect(name or None, timeout=3.0),
        verify_audit=lambda: (True, "audit log of node desk-node: verified", []),
        max_valid_until=lambda: min(cert_end - timedelta(days=1),
                                    datetime.now(UTC).date() + timedelta(days=rules.max_validity.days - 1)),
        rules=rules, register=CardRegister.beside(keys.path),
    )
    app = create_app(DeskConfig(station=STATION, origin=ORIGIN, rp_id=RP_ID, idle_s=idle_s, absolute_s=absolute_s),
                     services)
    app.config["TESTING"] = True
    return Desk(app, home, store, log)




