"""`cardbound audit ...`: verify, checkpoint, ship, purge, export, verify-export. Thin adapter over `audit.*`."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from audit.checkpoint import CheckpointError, VerifierKey, key_path, load_verifier
from audit.errors import AuditCommandError, AuditFailure
from audit.log import AuditLog, AuditLogError, read_meta
from audit.verify import Report, verify_database


class StationHome(Protocol):
    """What these commands use of the station home (`cardbound.home.Home`, passed in as `args.home_dir`)."""

    @property
    def audit_db(self) -> Path: ...
    @property
    def keystore(self) -> Path: ...
    @property
    def config(self) -> Path: ...


def _db(args: argparse.Namespace) -> Path:
    if args.db:
        return Path(args.db)
    home: StationHome = args.home_dir
    return home.audit_db


def _node_of(db: Path) -> str:
    if not db.is_file():
        raise AuditCommandError(f"no audit log at {db}", AuditFailure.INPUT)
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            node = read_meta(conn, "node_id")
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise AuditCommandError(f"{db}: not an audit database ({exc})", AuditFailure.AUDIT) from None
    if node is None:
        raise AuditCommandError(f"{db}: not an audit database", AuditFailure.AUDIT)
    return node


def _key_file(args: argparse.Namespace, node: str) -> Path:
    home: StationHome = args.home_dir
    return key_path(home.keystore, node)


def _is_home_db(args: argparse.Namespace, db: Path) -> bool:
    home: StationHome = args.home_dir
    try:
        return db.resolve() == home.audit_db.resolve()
    except OSError:
        return False


def _home_verifier(args: argparse.Namespace, node: str) -> tuple[VerifierKey, Path] | None:
    """The node's .pub beside its private key in the station home (or derived from the private key)."""
    priv = _key_file(args, node)
    for path in (priv.with_name(priv.name + ".pub"), priv):
        if path.is_file():
            try:
                return load_verifier(path), path
            except (CheckpointError, ValueError, OSError) as exc:
                raise AuditCommandError(f"{path}: unusable verifier key ({exc})", AuditFailure.KEYS) from None
    return None


def _recorded_key(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return read_meta(conn, "vkey") or "(none recorded)"
    finally:
        conn.close()


def _choose_key(args: argparse.Namespace, db: Path, node: str) -> tuple[VerifierKey | None, str]:
    """The key to verify with and where it came from. Never another home's key, never the log's own silently.

    --key FILE: that key (the auditor's independent copy). Otherwise only the station's own log is checked with
    the key in its home; a copied log (--db elsewhere) needs --key, or --trust-log-key to run the checks with
    the key recorded in the log, which then verifies nothing about authorship (reported as UNVERIFIED)."""
    if args.key:
        keys = _keys_by_node_with_paths(args.key)
        if node not in keys:
            raise AuditCommandError(
                f"none of the keys given is node {node}'s (cardbound-audit-{node})", AuditFailure.KEYS
            )
        key, given = keys[node]
        return key, f"--key {given}"
    if _is_home_db(args, db):
        found = _home_verifier(args, node)
        if found is not None:
            key, path = found
            recorded = _recorded_key(db)
            if recorded != key.encode():
                raise AuditCommandError(
                    f"the key of node {node} in this station home ({path}) is not the key the log records "
                    f"({recorded}): the log comes from another station with the same node id, or its key record "
                    "was replaced; verify with --key FILE holding node's real verifier key", AuditFailure.KEYS)
            return key, f"station home {path}"
    if args.trust_log_key:
        return None, "the log itself (UNVERIFIED: anyone who can write the log can write this key)"
    raise AuditCommandError(
        f"no verifier key for node {node}: pass --key FILE with its verifier key audit-{node}.ed25519.pub, kept "
        f"apart from the log (the log records {_recorded_key(db)}; --trust-log-key checks with that one, unverified)",
        AuditFailure.KEYS)


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditCommandError(f"{path}: cannot read ({exc.__class__.__name__})", AuditFailure.INPUT) from None


def _open_log(args: argparse.Namespace) -> AuditLog:
    db = _db(args)
    node = _node_of(db)
    try:
        return AuditLog.open(db, node, key_file=_key_file(args, node))
    except (AuditLogError, CheckpointError) as exc:
        raise AuditCommandError(str(exc), AuditFailure.AUDIT) from None


# --- handlers -------------------------------------------------------------------------------------------------


def _keys_by_node_with_paths(paths: list[str] | None) -> dict[str, tuple[VerifierKey, str]]:
    keys = {}
    for p in paths or []:
        try:
            key = load_verifier(Path(p))
        except (CheckpointError, ValueError, OSError) as exc:
            raise AuditCommandError(f"{p}: unusable verifier key ({exc})", AuditFailure.KEYS) from None
        keys[key.name.removeprefix("cardbound-audit-")] = (key, p)
    return keys


def _keys_by_node(paths: list[str] | None) -> dict[str, VerifierKey]:
    return {node: key for node, (key, _p) in _keys_by_node_with_paths(paths).items()}


def _print_report(report: Report, verdict: str = "OK") -> bool:
    for f in report.findings:
        print(f.line(), file=sys.stderr if f.severity == "error" else sys.stdout)
    if not report.ok:
        n = sum(1 for f in report.findings if f.severity == "error")
        print(f"audit log of node {report.node_id} FAILED verification ({n} findings)", file=sys.stderr)
        return False
    print(f"{verdict} " + report.summary())
    return True


def cmd_verify(args: argparse.Namespace) -> AuditFailure | None:
    if args.dsn:
        from audit.central import CentralError, verify_central
        from audit.store import StoreUnreachable

        try:
            reports = verify_central(args.dsn, args.node, _keys_by_node(args.key))
        except StoreUnreachable as exc:
            raise AuditCommandError(str(exc), AuditFailure.STORE_UNREACHABLE) from None
        except (CentralError, AuditLogError) as exc:
            raise AuditCommandError(str(exc), AuditFailure.AUDIT) from None
        results = [_print_report(r) for r in reports]
        return None if all(results) else AuditFailure.AUDIT
    db = _db(args)
    node = _node_of(db)
    if args.node and args.node != node:
        raise AuditCommandError(f"{db} is the log of node {node}, not {args.node}", AuditFailure.USAGE)
    key, source = _choose_key(args, db, node)
    print(f"key: {key.encode() if key else _recorded_key(db)} from {source}")
    external = [(p, _read_text(p)) for p in args.checkpoint or []]
    from audit.witness import check_cosigned, cosigned_path

    kept = cosigned_path(db)
    cosigned = _read_text(str(kept)) if kept.is_file() else None
    if cosigned is not None:
        external.append((f"cosigned by the witness ({kept})", cosigned))
    try:
        report = verify_database(db, key, external)
    except (AuditLogError, CheckpointError) as exc:
        raise AuditCommandError(str(exc), AuditFailure.AUDIT) from None
    except (sqlite3.Error, ValueError, TypeError, KeyError) as exc:
        # The database is damaged beyond what the checks can name: still one line, still a failure.
        raise AuditCommandError(
            f"{db}: cannot be verified ({exc.__class__.__name__}: {exc})", AuditFailure.AUDIT
        ) from None
    if cosigned is not None:
        finding = check_cosigned(cosigned, _witness_keys(args))
        if finding is not None:
            report.add(finding[0], finding[1], "warning" if finding[0] == "witness-unchecked" else "error")
    elif _witness_keys(args):
        # A station that works with a witness but keeps no cosigned checkpoint: never shipped since the witness
        # started, or the file went with a roll-back. Visible, not a failure.
        report.add("no-cosigned-checkpoint", f"no cosigned checkpoint kept beside the log ({kept}): roll-back is "
                   "only detectable against the central store or a kept --checkpoint", "warning")
    if not _print_report(report, "OK" if key is not None else "NOT CONTRADICTED (unverified key)"):
        return AuditFailure.AUDIT
    if key is None:
        print(f"UNVERIFIED: node {node}'s log is consistent with the key it records itself, which proves nothing "
              "about who wrote it: pass --key FILE", file=sys.stderr)
        return AuditFailure.KEYS
    return None


def _witness_keys(args: argparse.Namespace) -> list[Any]:
    from audit.witness import load_witness_key

    paths = [Path(p) for p in (getattr(args, "witness_key", None) or [])]
    if not paths:
        home: StationHome = args.home_dir
        default = home.keystore / "audit-witness.pub"
        if default.is_file() and _is_home_db(args, _db(args)):
            paths = [default]
    keys = []
    for p in paths:
        try:
            keys.append(load_witness_key(p))
        except (CheckpointError, OSError) as exc:
            raise AuditCommandError(f"{p}: unusable witness key ({exc})", AuditFailure.KEYS) from None
    return keys


def cmd_checkpoint(args: argparse.Namespace) -> AuditFailure | None:
    with _open_log(args) as log:
        note = log.checkpoint()
    if args.out:
        Path(args.out).write_text(note)
    else:
        sys.stdout.write(note)
    return None


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="FILE", help="audit database (default: the station home's)")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("audit", help="tamper-evident audit log: verify, ship, purge, export")
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    p = sub.add_parser("verify", help="verify the log offline; name every problem found")
    _add_common(p)
    p.add_argument("--checkpoint", metavar="FILE", action="append",
                   help="a signed checkpoint kept elsewhere (detects truncation and roll-back); repeatable")
    p.add_argument("--key", metavar="FILE", action="append",
                   help="a node's verifier key (.pub), kept apart from the log; repeatable")
    p.add_argument("--trust-log-key", action="store_true",
                   help="without --key, check with the key recorded in the log itself (result: UNVERIFIED)")
    p.add_argument("--witness-key", metavar="FILE", action="append",
                   help="the witness's verifier key (default: home/keys/audit-witness.pub); repeatable")
    p.add_argument("--dsn", help="verify the central PostgreSQL store instead of a local log")
    p.add_argument("--node", metavar="ID", help="only this node")
    p.set_defaults(handler=cmd_verify)

    p = sub.add_parser("checkpoint", help="sign a checkpoint of the log now and print it (keep it elsewhere)")
    _add_common(p)
    p.add_argument("--out", metavar="FILE", help="write the checkpoint to FILE instead of stdout")
    p.set_defaults(handler=cmd_checkpoint)

    for extra in _EXTRA:
        extra(sub)


def cmd_ship(args: argparse.Namespace) -> AuditFailure | None:
    from audit.ship import ShipError, ShipRejected, ShipUnreachable, ShipUnregistered, ship

    with _open_log(args) as log:
        log.checkpoint()  # cover everything written so far, so all of it can ship
    try:
        result = ship(_db(args), args.dsn, max_batch=args.batch)
    except ShipUnregistered as exc:
        raise AuditCommandError(f"shipment refused: {exc}", AuditFailure.KEYS) from None
    except ShipRejected as exc:
        raise AuditCommandError(f"shipment refused: {exc}", AuditFailure.AUDIT) from None
    except ShipUnreachable as exc:
        raise AuditCommandError(f"{exc} (run again to resume)", AuditFailure.STORE_UNREACHABLE) from None
    except ShipError as exc:
        raise AuditCommandError(f"{exc} (run again to resume)", AuditFailure.FAILURE) from None
    print(f"shipped {result.shipped} entries of node {result.node_id}; central store holds {result.central_size}")
    if result.cosigned is not None:
        print(f"kept the witness's latest cosigned checkpoint (size {result.cosigned.split(chr(10))[1]})")
    return None


def _register_ship(sub: Any) -> None:
    p = sub.add_parser("ship", help="ship the log to the central PostgreSQL store (idempotent, resumable)")
    _add_common(p)
    p.add_argument("--dsn", required=True, help="PostgreSQL connection string of the central store")
    p.add_argument("--batch", type=int, default=5000, help="entries per transaction (ends on a checkpoint)")
    p.set_defaults(handler=cmd_ship)


def _retention_days(args: argparse.Namespace) -> int:
    from audit.retention import RetentionError, parse_retention

    value: str | int | None = args.retention
    if value is None:
        home: StationHome = args.home_dir
        cfg = home.config / "audit.json"
        if cfg.is_file():
            try:
                value = json.loads(cfg.read_text()).get("retention_days")
            except (ValueError, OSError, AttributeError) as exc:
                raise AuditCommandError(f"{cfg}: unreadable ({exc.__class__.__name__})", AuditFailure.CONFIG) from None
        if value is None:
            raise AuditCommandError(
                f"no retention period: pass --retention or set retention_days in {cfg}", AuditFailure.CONFIG
            )
    try:
        return parse_retention(value)
    except RetentionError as exc:
        raise AuditCommandError(str(exc), AuditFailure.CONFIG) from None


def cmd_purge(args: argparse.Namespace) -> AuditFailure | None:
    from audit.retention import PurgeRefused, purge

    days = _retention_days(args)
    with _open_log(args) as log:
        try:
            result = purge(log, days, operator_id=args.operator, force=args.force)
        except PurgeRefused as exc:
            raise AuditCommandError(str(exc), AuditFailure.FAILURE) from None
    forced = " (forced: recorded in the purge event)" if args.force else ""
    print(f"purged {result.removed} entries older than {days} days; log now starts at entry {result.first_kept}"
          + forced)
    return None


def _register_purge(sub: Any) -> None:
    p = sub.add_parser("purge", help="remove entries older than the retention period (max 10 years)")
    _add_common(p)
    p.add_argument("--retention", metavar="PERIOD", help="days, or Nd / Nm / Ny (default: config/audit.json)")
    p.add_argument("--operator", metavar="ID", help="operator id recorded in the purge event")
    p.add_argument("--force", action="store_true",
                   help="purge even entries not yet shipped, or with the clock behind the latest checkpoint "
                        "(recorded as forced in the purge event)")
    p.set_defaults(handler=cmd_purge)


def cmd_export(args: argparse.Namespace) -> AuditFailure | None:
    from audit.export import ExportError, export_log, parse_time

    try:
        from_ms = parse_time(args.from_time) if args.from_time else None
        to_ms = parse_time(args.to_time) if args.to_time else None
        if args.dsn:
            from audit.central import CentralError, export_central
            from audit.store import StoreUnreachable

            try:
                result = export_central(args.dsn, Path(args.out), fmt=args.format, from_ms=from_ms, to_ms=to_ms,
                                        event_type=args.type, node=args.node, overwrite=args.force)
            except CentralError as exc:
                raise AuditCommandError(str(exc), AuditFailure.FAILURE) from None
            except StoreUnreachable as exc:
                raise AuditCommandError(str(exc), AuditFailure.STORE_UNREACHABLE) from None
        else:
            with _open_log(args) as log:
                result = export_log(
                    log, Path(args.out), fmt=args.format, from_ms=from_ms, to_ms=to_ms, event_type=args.type,
                    node=args.node, operator_id=args.operator, overwrite=args.force,
                )
    except ExportError as exc:
        raise AuditCommandError(str(exc), AuditFailure.USAGE) from None
    except OSError as exc:
        raise AuditCommandError(f"{args.out}: cannot write ({exc.strerror})", AuditFailure.FAILURE) from None
    print(f"exported {result.rows} entries to {result.out} (checkpoint and proofs: {result.manifest})")
    return None


def cmd_verify_export(args: argparse.Namespace) -> AuditFailure | None:
    from audit.export import ExportError, verify_export

    keys = _keys_by_node(args.key)
    try:
        report = verify_export(Path(args.file), keys)
    except (ExportError, OSError) as exc:
        raise AuditCommandError(str(exc), AuditFailure.INPUT) from None
    for w in report.warnings:
        print(f"WARNING: {w}")
    for f in report.findings:
        print(f, file=sys.stderr)
    if not report.ok:
        print(f"export {args.file} FAILED verification ({len(report.findings)} findings)", file=sys.stderr)
        return AuditFailure.AUDIT
    print(f"OK export {args.file}: {report.verified} of {report.rows} rows verified against signed checkpoints")
    return None


def _register_export(sub: Any) -> None:
    p = sub.add_parser("export", help="export entries for auditors, with checkpoint and inclusion proofs")
    _add_common(p)
    p.add_argument("--from", dest="from_time", metavar="TIME", help="ISO 8601 start (inclusive, UTC default)")
    p.add_argument("--to", dest="to_time", metavar="TIME", help="ISO 8601 end (exclusive)")
    p.add_argument("--type", metavar="TYPE", help="event type, e.g. gate.decision")
    p.add_argument("--node", metavar="ID", help="node id (a local log: must be its own; central: that node)")
    p.add_argument("--dsn", help="export from the central PostgreSQL store (all nodes, or --node)")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("--out", metavar="FILE", required=True)
    p.add_argument("--operator", metavar="ID", help="operator id recorded in the export event")
    p.add_argument("--force", action="store_true", help="replace FILE (and its manifest) if they exist")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("verify-export", help="check an export offline against its signed checkpoint")
    p.add_argument("file", metavar="FILE", help="the export (its FILE.checkpoint.json beside it)")
    p.add_argument("--key", metavar="FILE", action="append",
                   help="a node's verifier key (.pub), kept apart from the export; repeatable")
    p.set_defaults(handler=cmd_verify_export)


def cmd_central_init(args: argparse.Namespace) -> AuditFailure | None:
    from audit.store import StoreError, StoreUnreachable, init_schema

    try:
        init_schema(args.dsn)
    except StoreUnreachable as exc:
        raise AuditCommandError(str(exc), AuditFailure.STORE_UNREACHABLE) from None
    except StoreError as exc:
        raise AuditCommandError(str(exc), AuditFailure.CONFIG) from None
    print("central audit store ready (tables, row-level security, roles cardbound_nodes and cardbound_witness)")
    return None


def cmd_central_add_node(args: argparse.Namespace) -> AuditFailure | None:
    from audit.log import NODE_ID
    from audit.store import StoreError, StoreUnreachable, add_node

    if not NODE_ID.fullmatch(args.node):
        raise AuditCommandError(f"invalid node id {args.node!r}", AuditFailure.USAGE)
    try:
        key = load_verifier(Path(args.key))
    except (CheckpointError, ValueError, OSError) as exc:
        raise AuditCommandError(f"{args.key}: unusable verifier key ({exc})", AuditFailure.KEYS) from None
    if key.name != f"cardbound-audit-{args.node}":
        raise AuditCommandError(f"{args.key} is the key of {key.name}, not of node {args.node}", AuditFailure.KEYS)
    password = _read_text(args.password_file).strip() if args.password_file else None
    try:
        role = add_node(args.dsn, args.node, key.encode(), role=args.role, password=password)
    except StoreUnreachable as exc:
        raise AuditCommandError(str(exc), AuditFailure.STORE_UNREACHABLE) from None
    except StoreError as exc:
        raise AuditCommandError(str(exc), AuditFailure.CONFIG) from None
    print(f"registered node {args.node} (key {key.encode()}); it ships as PostgreSQL role {role}")
    return None


def cmd_central_add_witness(args: argparse.Namespace) -> AuditFailure | None:
    from audit.store import StoreUnreachable, add_witness

    try:
        add_witness(args.dsn, args.role)
    except StoreUnreachable as exc:
        raise AuditCommandError(str(exc), AuditFailure.STORE_UNREACHABLE) from None
    print(f"role {args.role} may now read the store and insert cosignatures")
    return None


def cmd_witness(args: argparse.Namespace) -> AuditFailure | None:
    from audit.store import StoreUnreachable
    from audit.witness import load_or_create_witness, witness_central

    try:
        witness = load_or_create_witness(Path(args.key), args.name)
    except (CheckpointError, ValueError, OSError) as exc:
        raise AuditCommandError(f"{args.key}: unusable witness key ({exc})", AuditFailure.KEYS) from None
    try:
        done, refused = witness_central(args.dsn, witness)
    except StoreUnreachable as exc:
        raise AuditCommandError(str(exc), AuditFailure.STORE_UNREACHABLE) from None
    for c in done:
        print(f"cosigned node {c.node_id} at size {c.size}")
    for r in refused:
        print(f"REFUSED: {r}", file=sys.stderr)
    return AuditFailure.AUDIT if refused else None


def _register_central(sub: Any) -> None:
    central = sub.add_parser("central", help="set up the central PostgreSQL store (schema owner): init, add-node")
    csub = central.add_subparsers(dest="central_command", metavar="ACTION", required=True)
    p = csub.add_parser("init", help="create the schema, row-level security and roles (as the schema owner)")
    p.add_argument("--dsn", required=True, help="connection string of the schema-owner role")
    p.set_defaults(handler=cmd_central_init)
    p = csub.add_parser("add-node", help="register a node's verifier key and its own PostgreSQL role")
    p.add_argument("node", metavar="NODE")
    p.add_argument("--key", metavar="FILE", required=True, help="the node's verifier key (audit-NODE.ed25519.pub)")
    p.add_argument("--dsn", required=True, help="connection string of the schema-owner role")
    p.add_argument("--role", help="PostgreSQL login role for the node (default cardbound_node_<node>)")
    p.add_argument("--password-file", metavar="FILE", help="set the role's password from FILE")
    p.set_defaults(handler=cmd_central_add_node)
    p = csub.add_parser("add-witness", help="let an existing login role act as the witness")
    p.add_argument("role", metavar="ROLE")
    p.add_argument("--dsn", required=True, help="connection string of the schema-owner role")
    p.set_defaults(handler=cmd_central_add_witness)

    p = sub.add_parser("witness", help="cosign every node checkpoint consistent with what was cosigned before")
    p.add_argument("--dsn", required=True, help="connection string of the witness role")
    p.add_argument("--key", metavar="FILE", required=True, help="the witness's Ed25519 key (created if absent)")
    p.add_argument("--name", default="cardbound-witness", help="witness name in its cosignature lines")
    p.set_defaults(handler=cmd_witness)


# Later sub-commands register here (ship, purge, export, verify-export) to keep this module flat.
_EXTRA: list[Callable[[Any], None]] = [_register_ship, _register_purge, _register_export, _register_central]
