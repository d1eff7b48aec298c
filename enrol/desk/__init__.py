"""`cardbound desk`: the enrolment desk web app (Flask, WebAuthn login, live capture with quality hints).

    from enrol.desk import DeskConfig, DeskServices, create_app, check_bind
    app = create_app(DeskConfig(station="desk-1", origin="http://localhost:8470", rp_id="localhost"), services)

See docs/operator-guide.md for the operator's view and the security rules it implements.
"""

from __future__ import annotations

import ipaddress

from enrol.desk.app import COOKIE, PUBLIC, ROUTE_ROLES, DeskConfig, DeskServices, ReaderState, create_app
from enrol.desk.store import OperatorStore, Role, StoreError


class BindRefused(ValueError):  # noqa: N818
    """Serving on a non-loopback address without TLS is refused."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tls: bool) -> None:
    """Loopback is served over plain HTTP (the browser treats http://localhost as a secure context); any other
    address carries session cookies and security-key assertions over a network, so it needs TLS."""
    if not is_loopback(host) and not tls:
        raise BindRefused(f"refusing to serve on {host} without TLS: give --tls-cert and --tls-key, "
                          "or bind to 127.0.0.1 (the default)")


__all__ = ["COOKIE", "PUBLIC", "ROUTE_ROLES", "BindRefused", "DeskConfig", "DeskServices", "OperatorStore",
           "ReaderState", "Role", "StoreError", "check_bind", "create_app", "is_loopback"]
