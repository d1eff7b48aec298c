"""The desk's security rules, each shown by a refusal through real HTTP requests (Flask's test client) with real
WebAuthn structures (software authenticator), a real operator register, keystore and audit log."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from desk_helpers import ORIGIN, Desk, csrf_of, form_post, make_desk, post_json
from softkey import SoftKey

from enrol.desk import PUBLIC, ROUTE_ROLES, BindRefused, Role, check_bind

CARDBOUND = str(Path(sys.executable).with_name("cardbound"))


def _url_for_rule(rule: str) -> str:
    return re.sub(r"<[^>]+>", "x" * 20, rule)


def test_every_route_is_declared_and_refuses_the_unauthenticated(desk: Desk) -> None:
    rules = [r for r in desk.app.url_map.iter_rules()]
    endpoints = {r.endpoint for r in rules}
    # every endpoint is either public (the login and registration ceremonies, static files) or has roles
    assert endpoints == set(ROUTE_ROLES) | PUBLIC
    assert {"static", "login", "login_begin", "login_complete", "register", "register_begin",
                      "register_complete"} == PUBLIC
    c = desk.client()
    token = csrf_of(c)  # an anonymous session with a valid CSRF token: the refusal below is the login check
    checked = 0
    for rule in rules:
        if rule.endpoint in PUBLIC:
            continue
        url = _url_for_rule(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if method == "GET":
                r = c.get(url)
                if url.startswith("/api/"):
                    assert r.status_code == 401, (url, r.status_code)
                else:
                    assert r.status_code == 302 and r.headers["Location"].startswith("/login"), (url, r.status_code)
            else:
                r = c.post(url, headers={"Origin": ORIGIN, "X-CSRF-Token": token}, data=b"x",
                           content_type="image/jpeg")
                assert r.status_code == 401, (method, url, r.status_code)
            checked += 1
    assert checked >= len(ROUTE_ROLES)
    # a path no route knows is a 404 page, not an error
    assert c.get("/nothing-here").status_code == 404


def test_operator_cannot_reach_admin_pages_and_auditor_cannot_enrol(desk: Desk) -> None:
    desk.register("root", Role.ADMIN)
    desk.register("olga", Role.OPERATOR)
    desk.register("audrey", Role.AUDITOR)
    op, (r, _) = desk.login("olga")
    assert r.status_code == 200
    assert op.get("/desk").status_code == 200
    assert op.get("/admin").status_code == 403
    assert op.get("/audit").status_code == 403
    assert form_post(op, "/admin/invite", {"operator_id": "mallory", "role": "admin", "lang": "en"}).status_code == 403
    assert form_post(op, "/admin/role", {"operator_id": "olga", "role": "admin"}).status_code == 403
    assert desk.store.get("olga").role is Role.OPERATOR  # type: ignore[union-attr]
    assert desk.store.get("mallory") is None
    au, (r, _) = desk.login("audrey")
    assert au.get("/audit").status_code == 200
    assert au.get("/desk").status_code == 403
    assert au.get("/api/card").status_code == 403
    assert form_post(au, "/enrol", {"nrn": "85073003328", "category": "regular"}).status_code == 403
    ad, (r, _) = desk.login("root")
    assert ad.get("/admin").status_code == 200
    assert ad.get("/desk").status_code == 403  # the admin administers; enrolment is an operator's job


def test_replayed_assertion_is_refused(desk: Desk) -> None:
    desk.register("olga", Role.OPERATOR)
    c, (r, response) = desk.login("olga")
    assert r.status_code == 200
    # the same response again, on the same browser: the ceremony state was consumed
    again = post_json(c, "/api/login/complete", response)
    assert again.status_code == 403
    # the same response against a fresh ceremony: wrong challenge
    c2 = desk.client()
    c2.get("/login")
    post_json(c2, "/api/login/begin", {"operator": "olga"})
    replay = post_json(c2, "/api/login/complete", response)
    assert replay.status_code == 403
    reasons = [e["payload"]["reason_code"] for e in desk.events("operator.login_failed")]
    assert reasons == ["no_ceremony", "wrong_challenge"]
    assert len(desk.events("operator.login")) == 1 + 0  # only the genuine login succeeded


def test_sign_counter_regression_is_refused(desk: Desk) -> None:
    key = desk.register("olga", Role.OPERATOR)
    c, (r, _) = desk.login("olga")
    assert r.status_code == 200
    stored = desk.store.get("olga").credentials[0].sign_count  # type: ignore[union-attr]
    assert stored == key.counter
    _, (r, _) = desk.login("olga", counter=stored)  # a clone that kept the counter of the original
    assert r.status_code == 403
    _, (r, _) = desk.login("olga", counter=stored - 1)
    assert r.status_code == 403
    assert [e["payload"]["reason_code"] for e in desk.events("operator.login_failed")] == ["sign_counter"] * 2
    _, (r, _) = desk.login("olga")  # the genuine key, counter grown: accepted
    assert r.status_code == 200


@pytest.mark.parametrize("origin", ["http://localhost:8471", "http://evil.localhost:8470", "https://localhost:8470",
                                    "http://localhost"])
def test_wrong_origin_is_refused(desk: Desk, origin: str) -> None:
    desk.register("olga", Role.OPERATOR)
    _, (r, _) = desk.login("olga", origin=origin)
    assert r.status_code == 403
    assert [e["payload"]["reason_code"] for e in desk.events("operator.login_failed")] == ["wrong_origin"]
    # a registration signed for another origin is refused too, and the link stays usable
    token = desk.invite("paul", Role.OPERATOR)
    c = desk.client()
    c.get(f"/register/{token}")
    options = post_json(c, "/api/register/begin", {"token": token}).get_json()
    assert post_json(c, "/api/register/complete", SoftKey("localhost", origin).register(options)).status_code == 403
    assert desk.store.get("paul") is None


def test_cross_site_post_is_refused(desk: Desk) -> None:
    desk.register("olga", Role.OPERATOR)
    c, _ = desk.login("olga")
    # a page on another site posting to the desk with the operator's cookie: wrong or missing Origin
    assert form_post(c, "/logout", {}, origin="http://evil.example").status_code == 403
    assert form_post(c, "/logout", {}, origin=None).status_code == 403
    # same origin but no CSRF token (a form another page could build), or a wrong one
    assert form_post(c, "/logout", {}, csrf=False).status_code == 403
    assert c.post("/logout", data={"csrf": "x" * 43}, headers={"Origin": ORIGIN}).status_code == 403
    assert c.get("/desk").status_code == 200  # still logged in: none of those did anything
    assert desk.events("operator.logout") == []
    r = form_post(c, "/logout", {})
    assert r.status_code == 302
    assert c.get("/desk").status_code == 302
    assert len(desk.events("operator.logout")) == 1


def test_non_loopback_bind_without_tls_is_refused(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "192.0.2.10", "desk.example", "::"):
        with pytest.raises(BindRefused):
            check_bind(host, tls=False)
        check_bind(host, tls=True)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind(host, tls=False)
    r = subprocess.run([CARDBOUND, "--home", str(tmp_path), "desk", "serve", "--bind", "0.0.0.0", "--port", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "without TLS" in r.stderr and "Traceback" not in r.stderr


def test_sessions_expire_when_idle_and_absolutely(tmp_path: Path) -> None:
    d = make_desk(tmp_path / "home", idle_s=60, absolute_s=300)
    try:
        sessions = d.app.extensions["desk"]["sessions"]
        now = [1000.0]
        sessions.clock = lambda: now[0]
        d.register("olga", Role.OPERATOR)
        c, _ = d.login("olga")
        assert c.get("/desk").status_code == 200
        now[0] += 61
        r = c.get("/desk")
        assert r.status_code == 302 and "expired=idle" in r.headers["Location"]
        c, _ = d.login("olga")
        for _ in range(6):  # active every 55 s: never idle, but 330 s after login
            now[0] += 55
            r = c.get("/desk")
        assert r.status_code == 302 and "expired=absolute" in r.headers["Location"]
        assert [e["payload"]["reason_code"] for e in d.events("operator.logout")] == ["expired_idle",
                                                                                    "expired_absolute"]
    finally:
        d.log.close()


def test_security_headers_and_no_store(desk: Desk) -> None:
    desk.register("olga", Role.OPERATOR)
    c, _ = desk.login("olga")
    r = c.get("/desk")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"
    html = r.get_data(as_text=True)
    assert "<script>" not in html and not re.search(r"<script(?![^>]*\bsrc=)", html)  # no inline script
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers
    cookie = r.headers.get("Set-Cookie") or ""
    login_cookie = [h for h in desk.login("olga")[1][0].headers.getlist("Set-Cookie")]
    assert any("HttpOnly" in h and "SameSite=Strict" in h for h in login_cookie), (cookie, login_cookie)


def test_frames_are_capped_and_never_multipart(desk: Desk) -> None:
    desk.register("olga", Role.OPERATOR)
    c, _ = desk.login("olga")
    token = c.application.extensions["desk"]["sessions"].get(c.get_cookie("desk_session").value)[0].csrf
    h = {"Origin": ORIGIN, "X-CSRF-Token": token}
    r = c.post("/api/frame/hint", data={"frame": (b"\xff\xd8" + b"x" * 100, "f.jpg")}, headers=h)
    assert r.status_code == 415  # refused before any parser runs
    r = c.post("/api/frame/hint", data=b"x" * (2 * 1024 * 1024 + 1), content_type="image/jpeg", headers=h)
    assert r.status_code == 413
    r = c.post("/api/frame/hint", data=b"x" * 10, content_type="text/plain", headers=h)
    assert r.status_code == 400


def test_bootstrap_link_is_one_time(tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = subprocess.run([CARDBOUND, "--home", str(home), "desk", "bootstrap-admin", "--operator", "root"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    link = r.stdout.strip()
    assert link.startswith(ORIGIN + "/register/")
    token = link.rsplit("/", 1)[1]
    assert token not in (home / "desk" / "operators.json").read_text()  # only its hash is stored
    from card.keystore import KeyStore

    ks = KeyStore.init(home / "keys")
    ks.issue_station("desk-test")
    d = make_desk(home, keys=ks)
    try:
        c = d.client()
        assert c.get(f"/register/{token}").status_code == 200
        key = SoftKey("localhost", ORIGIN)
        options = post_json(c, "/api/register/begin", {"token": token}).get_json()
        assert post_json(c, "/api/register/complete", key.register(options)).status_code == 200
        d.keys["root"] = key
        assert c.get(f"/register/{token}").status_code == 404  # used
        c2 = d.client()
        assert post_json(c2, "/api/register/begin", {"token": token}).status_code == 403
        again = subprocess.run([CARDBOUND, "--home", str(home), "desk", "bootstrap-admin", "--operator", "eve"],
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 2 and "already" in again.stderr
        ad, (r2, _) = d.login("root")
        assert r2.status_code == 200 and ad.get("/admin").status_code == 200
        listed = subprocess.run([CARDBOUND, "--home", str(home), "desk", "operators", "--json"],
                                capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        (root,) = json.loads(listed.stdout)
        assert (root["operator_id"], root["role"], len(root["credentials"])) == ("root", "admin", 1)
        assert root["credentials"][0]["sign_count"] == key.counter and root["credentials"][0]["last_used"]
    finally:
        d.log.close()


def test_every_account_change_is_audited(desk: Desk) -> None:
    desk.register("root", Role.ADMIN)
    ad, _ = desk.login("root")
    r = form_post(ad, "/admin/invite", {"operator_id": "olga", "role": "operator", "lang": "nl"})
    assert r.status_code == 200
    link = re.search(r'<code id="invite-link">([^<]+)</code>', r.get_data(as_text=True))
    assert link and link.group(1).startswith(ORIGIN + "/register/")
    token = link.group(1).rsplit("/", 1)[1]
    c = desk.client()
    key = SoftKey("localhost", ORIGIN)
    c.get(f"/register/{token}")
    options = post_json(c, "/api/register/begin", {"token": token}).get_json()
    assert post_json(c, "/api/register/complete", key.register(options)).status_code == 200
    desk.keys["olga"] = key
    op, _ = desk.login("olga")
    assert "Inschrijvingsbalie" in op.get("/desk").get_data(as_text=True)  # her language, chosen by the admin
    assert form_post(ad, "/admin/role", {"operator_id": "olga", "role": "auditor"}).status_code == 200
    assert op.get("/desk").status_code == 302  # her session ended with the role change
    assert form_post(ad, "/admin/role", {"operator_id": "root", "role": "operator"}).status_code == 400  # last admin
    form_post(ad, "/logout", {})
    types = [(e["type"], e["payload"].get("operator_id")) for e in desk.events()]
    assert types == [
        ("operator.registered", "root"), ("operator.login", "root"), ("operator.invited", "olga"),
        ("operator.registered", "olga"), ("operator.login", "olga"), ("operator.role_changed", "olga"),
        ("operator.logout", "root"),
    ]
    changed = desk.events("operator.role_changed")[0]["payload"]
    assert (changed["old_role"], changed["new_role"], changed["by_operator_id"]) == ("operator", "auditor", "root")


def test_with_tls_the_cookie_is_secure_and_hsts_is_sent(tmp_path: Path) -> None:
    from desk_helpers import STATION

    from enrol.desk import DeskConfig, create_app

    d = make_desk(tmp_path / "home")
    try:
        services = d.app.extensions["desk"]["services"]
        app = create_app(DeskConfig(station=STATION, origin="https://desk.example:8470", rp_id="desk.example"),
                         services)
        r = app.test_client().get("/login", base_url="https://desk.example:8470")
        assert r.status_code == 200
        assert "Secure" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]
        assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        d.log.close()
