"""`cardbound desk`: wiring of the enrolment desk web app (composition root: keys, audit log, worker, policy)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import ssl
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cardbound.errors import CliError, ExitCode

DEFAULT_PORT = 8470


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    desk = subparsers.add_parser("desk", help="the enrolment desk web app (security-key login, live capture)")
    sub = desk.add_subparsers(dest="desk_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("serve", help="serve the desk (loopback by default; any other address needs TLS)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--server-name", default=None,
                   help="host name in the browser's address bar (default localhost; with TLS, the certificate's)")
    p.add_argument("--tls-cert", type=Path, help="TLS certificate chain (PEM), required off loopback")
    p.add_argument("--tls-key", type=Path, help="TLS private key (PEM)")
    p.add_argument("--station", default="desk-1", help="enrolment station name (its certificate signs templates)")
    p.add_argument("--bundle", type=Path, metavar="DIR",
                   help="desk bundle from `cardbound keys export-desk STATION DIR` (default: HOME/desk-keys)")
    p.add_argument("--gate-config", type=Path,
                   help="gate configuration (TOML) whose policy the desk applies: categories, longest validity, "
                        "revoked cards (default: HOME/config/gate.toml if present, else the built-in rules)")
    p.add_argument("--max-validity-days", type=int, default=5 * 365, help="longest template validity (days)")
    p.add_argument("--idle-minutes", type=float, default=15.0, help="idle session expiry (default 15)")
    p.add_argument("--session-hours", type=float, default=8.0, help="absolute session expiry (default 8)")
    p.set_defaults(handler=run_serve)
    b = sub.add_parser("bootstrap-admin", help="print a one-time registration link for the first admin")
    b.add_argument("--operator", required=True, help="the admin's operator id")
    b.add_argument("--lang", choices=("fr", "nl", "en"), default="en")
    b.add_argument("--origin", default=f"http://localhost:{DEFAULT_PORT}", help="the desk's origin (for the link)")
    b.add_argument("--station", default="desk-1")
    b.set_defaults(handler=run_bootstrap)
    o = sub.add_parser("operators", help="list the desk's accounts, roles and security keys (no public keys)")
    o.add_argument("--json", action="store_true", help="one JSON array (for the evidence pack)")
    o.set_defaults(handler=run_operators)


def _store(home: Any) -> Any:
    from enrol.desk.store import OperatorStore

    return OperatorStore(home.root / "desk" / "operators.json")


def run_bootstrap(args: argparse.Namespace) -> int:
    from audit import AuditLog, OperatorInvited
    from enrol.desk.store import Role, StoreError

    home = args.home_dir.ensure()
    store = _store(home)
    try:
        if store.has_admin():
            raise CliError("an admin is already registered: admins invite further accounts from the desk",
                           ExitCode.USAGE)
        token = store.invite(args.operator, Role.ADMIN, args.lang, None)
    except StoreError as exc:
        raise CliError(str(exc), ExitCode.USAGE) from None
    with AuditLog.open_station(home.root, node_id=home.node_id) as log:
        log.append(OperatorInvited(station_id=args.station, operator_id=args.operator.strip().lower(),
                                   role=Role.ADMIN.value, by_operator_id=None))
    print(f"{args.origin.rstrip('/')}/register/{token}")
    print("one-time link, valid 24 h: open it in the desk's browser and register the admin's security key",
          file=sys.stderr)
    return 0


def run_operators(args: argparse.Namespace) -> int:
    from enrol.desk.store import StoreError

    try:
        ops = _store(args.home_dir).operators()
    except StoreError as exc:
        raise CliError(str(exc), ExitCode.CONFIG) from None
    rows = [{"operator_id": op.operator_id, "role": op.role.value, "lang": op.lang, "created": op.created,
             "credentials": [{"id": c.credential_id[:16] + "…", "created": c.created, "last_used": c.last_used,
                              "sign_count": c.sign_count} for c in op.credentials]} for op in ops]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    for r in rows:
        creds = r["credentials"]
        assert isinstance(creds, list)
        last = max((c["last_used"] or "" for c in creds), default="") or "never"
        print(f"{r['operator_id']:<24} {r['role']:<9} {r['lang']}  {len(creds)} key(s), last used {last}")
    return 0


def build_services(args: argparse.Namespace, worker: Any, log: Any) -> Any:
    """The desk's services from the station home (keys, holder-reference key, policy, audit log, worker)."""
    from audit.checkpoint import CheckpointError, key_path, load_verifier
    from audit.log import AuditLogError
    from audit.verify import verify_database
    from card import transport
    from card.bundles import DeskBundle
    from card.keystore import KeystoreError
    from card.register import CardRegister
    from cardbound.enrolment import load_rules
    from enrol.desk import DeskServices
    from enrol.desk.cardpanel import reader_states
    from enrol.errors import EnrolCommandError
    from verify.banlist import pseudonymise

    home = args.home_dir
    try:
        # The desk opens its own bundle only, never the processor keystore (that holds the CA key).
        keys = DeskBundle.open(args.bundle or home.desk_bundle)
        station = keys.station_credentials(args.station)
    except KeystoreError as exc:
        raise CliError(f"desk keys: {exc}", ExitCode.KEYS) from None
    try:  # the HMAC key in its token (pkcs11 backend, used through the token) or the bundle's 0600 file
        ref_key = keys.holder_ref_key()
    except KeystoreError as exc:
        raise CliError(f"{exc} (create it with `cardbound gate pseudonymise --new-key`)", ExitCode.KEYS) from None
    # the same gate rules `cardbound enrol` uses (categories the policy admits, its longest validity, revoked cards)
    try:
        rules = load_rules(args, keys)
    except EnrolCommandError as exc:
        raise CliError(str(exc), ExitCode.CONFIG) from None
    cert_end = station.certificate.not_valid_after_utc.date()
    max_days = min(args.max_validity_days, rules.max_validity.days)

    def max_valid_until() -> date:
        # the flow counts the maximum from now to 23:59:59 UTC of the chosen day: the last whole day is one less
        return min(cert_end - timedelta(days=1), datetime.now(UTC).date() + timedelta(days=max_days - 1))

    def verify_audit() -> tuple[bool, str, list[str]]:
        # as `cardbound audit verify` does on the station: the node's own verifier key from the keystore
        priv = key_path(home.keystore, home.node_id)
        try:
            key = next((load_verifier(p) for p in (priv.with_name(priv.name + ".pub"), priv) if p.is_file()), None)
            report = verify_database(home.audit_db, key)
        except (AuditLogError, CheckpointError, ValueError, OSError) as exc:
            return False, str(exc), []
        return report.ok, report.summary(), [f.line() for f in report.findings]

    return DeskServices(
        store=_store(home), audit=log, worker=worker, keys=keys, categories=tuple(sorted(rules.categories)),
        pseudonymise=lambda nrn: pseudonymise(nrn, ref_key), readers=reader_states,
        connect=lambda name: transport.connect(name or None, timeout=3.0), verify_audit=verify_audit,
        max_valid_until=max_valid_until, rules=rules, register=CardRegister.beside(home.keystore),
    )


def run_serve(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    from audit import AuditLog
    from biometric.isolation import FaceWorker, IsolationError
    from enrol.desk import BindRefused, DeskConfig, check_bind, create_app, is_loopback

    tls = args.tls_cert is not None or args.tls_key is not None
    try:
        check_bind(args.bind, tls)
    except BindRefused as exc:
        raise CliError(str(exc), ExitCode.USAGE) from None
    ctx: ssl.SSLContext | None = None
    if tls:
        if args.tls_cert is None or args.tls_key is None:
            raise CliError("--tls-cert and --tls-key go together", ExitCode.USAGE)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise CliError(f"TLS certificate or key unusable: {exc}", ExitCode.CONFIG) from None
    host = args.server_name or ("localhost" if is_loopback(args.bind) else args.bind)
    scheme = "https" if tls else "http"
    origin = f"{scheme}://{host}:{args.port}"
    home = args.home_dir.ensure()
    config = DeskConfig(station=args.station, origin=origin, rp_id=host, idle_s=args.idle_minutes * 60,
                        absolute_s=args.session_hours * 3600)
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(AuditLog.open_station(home.root, node_id=home.node_id))
        try:
            worker = stack.enter_context(FaceWorker())
        except IsolationError as exc:
            raise CliError(f"biometric worker could not start: {exc}", ExitCode.FAILURE) from None
        app = create_app(config, build_services(args, worker, log))
        # Werkzeug logs every request line, registration links included (the token is the secret): not kept.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        try:
            server = make_server(args.bind, args.port, app, threaded=True, ssl_context=ctx)
        except OSError as exc:
            raise CliError(f"cannot listen on {args.bind}:{args.port}: {exc}", ExitCode.USAGE) from None
        print(f"desk ready: {origin}/  (station {args.station}; Ctrl-C stops)", file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0
