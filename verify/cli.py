"""`cardbound verify --once` (one decision, exit code) and `cardbound gate` (the long-running verifier)."""

from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from audit import AuditLog, ConfigChanged
from biometric.capture import SampleSource
from biometric.isolation import FaceWorker, IsolationError
from card import transport
from card.bundles import load_gate_bundle
from card.keystore import KeystoreError
from card.pki import crl_number
from card.sealed import GateTrust
from verify.config import ConfigError
from verify.decision import Decision, Reason
from verify.errors import GateCommandError, GateFailure
from verify.facematch import worker_match, worker_probe
from verify.flow import Gate, list_health, list_stamps
from verify.freshness import Assessment, Freshness
from verify.gateloop import DoorHook, GateLoop, HookError, Lane, LoopResult
from verify.selfcheck import Check, Status, attempt, list_check, source_check, worst
from verify.station import GateConfigError, GateSettings, NoSourceError
from verify.station import load_settings as _load_settings


def _add_source_args(p: argparse.ArgumentParser, required: bool) -> None:
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("--camera", type=int, metavar="N", help="live camera device index")
    src.add_argument("--video", type=Path, metavar="FILE", help="video file as the camera (tests, replays)")
    src.add_argument("--frames", type=Path, metavar="DIR", help="directory of frames as the camera (tests)")
    src.add_argument("--photo", type=Path, metavar="FILE", help="one photo as the live sample (tests)")
    p.add_argument("--max-frames", type=int, default=30, help="live frames to try at most per decision")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="gate configuration (TOML); default: built-in policy")
    p.add_argument("--trust", type=Path, metavar="DIR",
                   help="gate bundle from `cardbound keys export-gate GATE DIR` (default: HOME/gate-keys)")
    p.add_argument("--gate-id", help="gate id for decisions and audit events (overrides the config)")
    p.add_argument("--lang", choices=("fr", "nl", "en"), default="en", help="language of the human message")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    v = subparsers.add_parser(
        "verify",
        help="one gate decision for the card in a reader (exit code 0 = access granted)",
        description="Card authentication, unseal, live capture, 1:1 compare, decision. Prints one JSON line.",
    )
    v.add_argument("--once", action="store_true", help="make one decision and exit (the only mode; kept explicit)")
    v.add_argument("--reader", help="reader index (0, 1, ...) or name prefix (default: first reader)")
    v.add_argument("--card-timeout", type=float, default=10.0, help="seconds to wait for a card (default 10)")
    _add_source_args(v, required=True)
    _add_common(v)
    v.set_defaults(handler=run_once)

    g = subparsers.add_parser(
        "gate",
        help="run the gate verifier on one or more readers; `gate level N` sets the ISPS security level",
        description=(
            "Long-running verifier: on each card presented, one decision as a JSON line on stdout; optionally run "
            "a door-relay hook on acceptance. Sub-commands: `level N` (set the ISPS security level, audited), "
            "`pseudonymise` (national register number to holder reference)."
        ),
    )
    g.add_argument("--reader", action="append", help="reader index or name prefix (repeat; default: all readers)")
    g.add_argument("--door-hook", metavar="CMD",
                   help="command run on each acceptance (decision JSON on stdin, with reader_id and lane_id); "
                        "checked at start-up; a failure or timeout is audited as a gate fault")
    g.add_argument("--door-hook-timeout", type=float, default=2.0, metavar="S",
                   help="seconds the door hook may take before it is killed (default 2)")
    g.add_argument("--max-decisions", type=int, default=0, help="stop after N decisions (0 = run until stopped)")
    _add_source_args(g, required=False)
    _add_common(g)
    g.set_defaults(handler=run_gate)
    gsub = g.add_subparsers(dest="gate_command", metavar="ACTION")
    lv = gsub.add_parser("level", help="set the current ISPS security level (1, 2 or 3); audited")
    lv.add_argument("level", type=int, choices=(1, 2, 3))
    lv.add_argument("--operator", default="operator", help="operator id recorded in the audit log")
    lv.add_argument("--config", type=Path, help="gate configuration (TOML); its [gate] site is the site id")
    lv.add_argument("--site", help="site id recorded in the audit event (overrides the configuration's)")
    lv.set_defaults(handler=run_level)
    ck = gsub.add_parser(
        "check",
        help="start-up self-check: readers, camera or source, trust bundle and CRL, policy, level, door hook, audit",
        description="One line per piece, OK / WARN / FAIL; exit code non-zero when anything FAILs. The same checks "
                    "run when `cardbound gate` starts.",
    )
    ck.add_argument("--reader", action="append", help="reader index or name prefix (repeat; default: all readers)")
    ck.add_argument("--door-hook", metavar="CMD", help="door hook command to check")
    ck.add_argument("--door-hook-timeout", type=float, default=2.0, metavar="S")
    _add_source_args(ck, required=False)
    _add_common(ck)
    ck.set_defaults(handler=run_check)
    ps = gsub.add_parser(
        "pseudonymise",
        help="national register number (read from stdin) -> pseudonymous holder reference (hex)",
        description=(
            "Reads a Belgian national register number from standard input (so it stays out of shell history), "
            "checks it and prints HMAC-SHA256(holder-reference key, NRN) in hex: the value for `enrol --holder-ref` "
            "and for ban lists. The number itself is never stored."
        ),
    )
    ps.add_argument("--key", help="holder-reference key: a file, or a pkcs11: URI of the HMAC key in a token "
                    "(default: the keystore's, HOME/keys/holder-ref.key or its token)")
    ps.add_argument("--new-key", action="store_true", help="create the key file first (refused if it exists)")
    ps.set_defaults(handler=run_pseudonymise)


# ----------------------------------------------------------------------------------------------- composition


def load_settings(config: Path | None, home: object, *, gate_id: str | None = None) -> GateSettings:
    try:
        settings = _load_settings(config, home, gate_id=gate_id)
        problem = settings.level_problem()
        if problem:  # fail closed, and loudly: the strictest level until an operator sets one
            print(f"WARNING: {problem}: running at ISPS security level 3", file=sys.stderr, flush=True)
        return settings
    except (GateConfigError, ConfigError) as exc:
        raise GateCommandError(str(exc), GateFailure.CONFIG) from None


def _source(args: argparse.Namespace, settings: GateSettings) -> SampleSource:
    if args.photo:
        return SampleSource.photos(str(args.photo))
    if args.frames:
        return SampleSource("frames", (str(args.frames),), max_frames=args.max_frames)
    if args.video:
        return SampleSource("video", (str(args.video),), max_frames=args.max_frames)
    if args.camera is not None:
        return SampleSource("camera", device=args.camera, max_frames=args.max_frames)
    try:
        return settings.default_source(args.max_frames)
    except NoSourceError as exc:
        raise GateCommandError(str(exc), GateFailure.USAGE) from None


def _trust(args: argparse.Namespace) -> GateTrust:
    try:
        # A gate opens its own bundle only, never the processor keystore (that holds the CA key).
        return load_gate_bundle(args.trust or args.home_dir.gate_bundle)
    except (KeystoreError, ValueError, OSError) as exc:
        raise GateCommandError(f"gate trust: {exc}", GateFailure.KEYS) from None


@dataclass
class _Runtime:
    gate: Gate
    worker: FaceWorker
    log: AuditLog

    def close(self) -> None:
        self.worker.close()
        self.log.close()


def _runtime(args: argparse.Namespace, source: SampleSource, settings: GateSettings) -> _Runtime:
    trust = _trust(args)
    home = args.home_dir.ensure()
    log = AuditLog.open_station(home.root, node_id=home.node_id)
    worker = FaceWorker()
    try:
        worker.start()
    except IsolationError as exc:
        log.close()
        raise GateCommandError(f"biometric worker: {exc}", GateFailure.WORKER) from None
    gate = Gate(
        gate_id=settings.gate_id,
        trust=trust,
        policy=settings.policy,
        security_level=settings.security_level,
        match=worker_match(worker, source, settings.time_budget_s),
        audit=log,
        bans=settings.bans,
        revoked=settings.revoked,
        # card and face in parallel: the worker captures while this process runs the card transaction
        start_probe=worker_probe(worker, source, settings.time_budget_s),
    )
    return _Runtime(gate, worker, log)


def decide_on_reader(gate: Gate, reader: str | None, card_timeout: float) -> Decision:
    try:
        conn = transport.connect(reader, timeout=card_timeout)
    except transport.NoReaderError as exc:
        raise GateCommandError(str(exc), GateFailure.NO_READER) from None
    except transport.PcscUnavailableError as exc:
        raise GateCommandError(f"PC/SC unavailable: {exc}", GateFailure.NO_READER) from None
    except transport.NoCardError:  # audited too: every presentation (or its absence) leaves its event
        return gate.record(Decision(Reason.NO_CARD, gate.gate_id, security_level=gate.security_level()))
    except transport.TransportError as exc:
        return gate.record(Decision(Reason.CARD_ERROR, gate.gate_id, detail=f"connect: {type(exc).__name__}",
                                    security_level=gate.security_level()))
    with conn:
        return gate.decide_connection(conn)


def _emit(decision: Decision, lang: str) -> None:
    print(decision.to_json(), flush=True)
    print(f"{decision.gate_id}: {'ACCESS' if decision.accepted else 'REFUSED'} — {decision.message(lang)}",
          file=sys.stderr, flush=True)


def run_once(args: argparse.Namespace) -> Reason:
    settings = load_settings(args.config, args.home_dir, gate_id=args.gate_id)
    source = _source(args, settings)
    rt = _runtime(args, source, settings)
    try:
        decision = decide_on_reader(rt.gate, args.reader, args.card_timeout)
    finally:
        rt.close()
    _emit(decision, args.lang)
    return decision.reason


def _lanes(settings: GateSettings, names: list[str], readers: list[str]) -> list[Lane]:
    """Reader i of the watched list is `reader-i`; its lane id comes from `gate.lanes` (same order as
    `gate.readers`) when the readers are the configured ones, else `lane-<i+1>`."""
    configured = bool(settings.lanes) and names == list(settings.readers)
    return [Lane(reader, f"reader-{i}", settings.lanes[i] if configured else f"lane-{i + 1}")
            for i, reader in enumerate(readers)]


def run_gate(args: argparse.Namespace) -> GateFailure | None:
    settings = load_settings(args.config, args.home_dir, gate_id=args.gate_id)
    hook: DoorHook | None = None
    if args.door_hook is not None:
        try:  # a hook that cannot run is refused now, not at the first acceptance
            hook = DoorHook.parse(args.door_hook, args.door_hook_timeout)
        except HookError as exc:
            raise GateCommandError(str(exc), GateFailure.USAGE) from None
    source = _source(args, settings)
    camera = source_check(source)
    if camera.status is Status.FAIL:  # the gate's fault, said once at start-up, not a refusal of each person
        raise GateCommandError(f"camera: {camera.message}", GateFailure.NO_CAMERA)
    names = [r for r in (args.reader or settings.readers or [])]
    try:
        available = transport.list_readers()
        readers = [transport.resolve_reader(r, available) for r in names] if names else available
    except transport.TransportError as exc:
        raise GateCommandError(f"PC/SC unavailable: {exc}", GateFailure.NO_READER) from None
    if not readers:
        raise GateCommandError("no PC/SC reader found", GateFailure.NO_READER)
    lanes = _lanes(settings, names, readers)
    rt = _runtime(args, source, settings)
    level = settings.security_level()
    health = rt.gate.list_health(level)
    stale = [h for h in health if h.stale]
    if stale:  # the gate's fault, said once: not a stream of LISTS_STALE refusals
        _fault(rt.log, settings.gate_id, "lists_stale_at_start")
        rt.close()
        raise GateCommandError("; ".join(h.message for h in stale) + f" — at level {level} every card would be "
                               "refused LISTS_STALE; the gate does not start", GateFailure.LISTS_STALE)
    _warn_ahead(health)
    loop = GateLoop(rt.gate, lanes, rt.log, emit=lambda d: _emit(d, args.lang), hook=hook,
                    max_decisions=args.max_decisions)

    def reload() -> None:
        """SIGHUP: re-read the configuration (policy, ban list, revoked cards) and the gate bundle (its CRL). A bad
        file, a stale, undated or future-dated list, a list older than the one in force, or a rolled-back CRL
        keeps what is in force: said, audited."""

        def refuse(why: str, code: str) -> None:
            print(f"reload REFUSED, the previous configuration stays in force: {why}", file=sys.stderr, flush=True)
            loop.fault(code)

        policy, bans, revoked = rt.gate.policy, rt.gate.bans, rt.gate.revoked
        if args.config is not None:
            try:
                new = _load_settings(args.config, args.home_dir, gate_id=args.gate_id)
            except (GateConfigError, ConfigError) as exc:
                return refuse(str(exc), "config_reload_refused")
            policy, bans, revoked = new.policy, new.bans, new.revoked
        in_force = crl_number(rt.gate.trust.crl)
        try:  # the same checks as at start, and never an older CRL than the one in force (it would un-revoke)
            trust = load_gate_bundle(args.trust or args.home_dir.gate_bundle, previous_crl_number=in_force)
        except (KeystoreError, ValueError, OSError) as exc:
            return refuse(f"gate trust: {exc}", "trust_reload_refused")
        # A new list too old for the current level (or undated, or from the future) is refused like a bad file.
        # The CRL in force (same number) is not judged again: if it is stale, decisions already say LISTS_STALE.
        health = list_health(policy, list_stamps(trust, bans, revoked), settings.security_level(), rt.gate.now())
        stale = [h.message for h in health if h.stale and (h.stamp.name != "crl" or crl_number(trust.crl) != in_force)]
        # Only the most recent list counts (as TWIC's 33 CFR 101.525 (e) puts it): an older one would un-ban.
        current = {st.name: st.issued for st in list_stamps(None, rt.gate.bans, rt.gate.revoked)}
        stale += [f"{h.stamp.name} {h.stamp.source}: issued {_issued(h)}, older than the one in force "
                  f"(issued {current[h.stamp.name]:%Y-%m-%dT%H:%M:%SZ})" for h in health
                  if h.stamp.issued is not None and (current.get(h.stamp.name) or h.stamp.issued) > h.stamp.issued]
        if stale:
            return refuse("; ".join(stale), "lists_reload_refused")
        rt.gate.policy, rt.gate.bans, rt.gate.revoked, rt.gate.trust = policy, bans, revoked, trust
        lists = ", ".join(f"{h.stamp.name}{' ' + str(crl_number(trust.crl)) if h.stamp.name == 'crl' else ''} "
                          f"issued {_issued(h)}" for h in health)
        what = f"{args.config.name if args.config else 'gate bundle'}; {lists}"
        try:
            rt.log.append(ConfigChanged(setting="gate.config_reloaded", new_value=what[:200]))
        except Exception as exc:  # noqa: BLE001
            print(f"reload: audit event failed ({type(exc).__name__})", file=sys.stderr, flush=True)
        print(f"reload: {args.config or 'gate bundle'} in force ({lists})", file=sys.stderr, flush=True)
        _warn_ahead(health)

    loop.on_reload = reload
    previous = signal.signal(signal.SIGTERM, lambda *_: loop.stop.set())  # a supervisor's stop: clean exit 0
    previous_hup = signal.signal(signal.SIGHUP, lambda *_: loop.reload.set())
    print(f"gate {settings.gate_id}: watching {', '.join(f'{ln.lane_id}={ln.reader}' for ln in lanes)}; "
          f"security level {settings.security_level()}", file=sys.stderr, flush=True)
    try:
        result = loop.run()
    except KeyboardInterrupt:
        loop.stop.set()
        result = LoopResult(fault=None)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGHUP, previous_hup)
        rt.close()
    if result.fault:
        print(f"gate {settings.gate_id}: stopped on a fault: {result.fault}", file=sys.stderr, flush=True)
        return GateFailure.FAULT
    return None


def _issued(health: Assessment) -> str:
    issued = health.stamp.issued
    return issued.strftime("%Y-%m-%dT%H:%M:%SZ") if issued is not None else "undated"


def _warn_ahead(health: list[Assessment]) -> None:
    for h in health:
        if h.status is Freshness.WARN:
            print(f"WARNING: {h.message}", file=sys.stderr, flush=True)


def _fault(log: AuditLog, gate_id: str, code: str) -> None:
    from audit import GateFault

    try:
        log.append(GateFault(gate_id=gate_id, fault_code=code))
    except Exception as exc:  # noqa: BLE001 - said, and the gate stops anyway
        print(f"gate fault {code} could not be audited: {type(exc).__name__}", file=sys.stderr, flush=True)


def _checks(args: argparse.Namespace) -> list[Check]:
    checks: list[Check] = []
    try:
        settings = load_settings(args.config, args.home_dir, gate_id=args.gate_id)
    except GateCommandError as exc:
        return [Check("config", Status.FAIL, str(exc))]
    checks.append(Check("config", Status.OK, f"gate {settings.gate_id}, policy "
                                             f"{'from ' + str(args.config) if args.config else 'built-in'}"))
    problem = settings.level_problem()
    checks.append(Check("level", Status.WARN, f"{problem}: running at level 3") if problem
                  else Check("level", Status.OK, f"ISPS security level {settings.security_level()}"))
    trust: GateTrust | None = None
    try:
        trust = _trust(args)
    except GateCommandError as exc:
        checks.append(Check("trust", Status.FAIL, str(exc)))
    else:
        checks.append(Check("trust", Status.OK, f"CA {trust.ca_certificate.subject.rfc4514_string()}, "
                                                f"{len(trust.verifier_keys)} verifier key(s)"))
    # Each list's age at the current level (the CRL only when the bundle loaded): the same rule as at decisions.
    stamps = list_stamps(trust, settings.bans, settings.revoked)
    for health in list_health(settings.policy, stamps, settings.security_level(), datetime.now(UTC)):
        checks.append(list_check(health))

    def readers() -> str:
        names = list(args.reader or settings.readers or [])
        available = transport.list_readers()
        found = [transport.resolve_reader(r, available) for r in names] if names else available
        if not found:
            raise ValueError("no PC/SC reader found")
        return ", ".join(found)

    checks.append(attempt("readers", readers))
    try:
        source: SampleSource | None = _source(args, settings)
    except GateCommandError:
        source = None
    checks.append(source_check(source))
    if args.door_hook is not None:
        checks.append(attempt("door hook", lambda: " ".join(DoorHook.parse(args.door_hook,
                                                                           args.door_hook_timeout).argv)))

    def audit() -> str:
        home = args.home_dir.ensure()
        with AuditLog.open_station(home.root, node_id=home.node_id) as log:
            return f"audit log {home.audit_db}, {log.size} entries"

    checks.append(attempt("audit", audit))
    return checks


def run_check(args: argparse.Namespace) -> GateFailure | None:
    checks = _checks(args)
    for c in checks:
        print(c.line())
    verdict = worst(checks)
    print(f"gate check: {verdict.value}")
    return GateFailure.CHECK if verdict is Status.FAIL else None


def run_level(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, args.home_dir)
    try:
        old, new = settings.set_security_level(args.level, operator=args.operator, site_id=args.site)
    except GateConfigError as exc:
        raise GateCommandError(str(exc), GateFailure.USAGE) from None
    except Exception as exc:  # the audit append failed: the level did not change
        raise GateCommandError(f"security level NOT changed: the audit event could not be written "
                               f"({type(exc).__name__}: {exc})", GateFailure.CONFIG) from None
    print(f"security level {old} -> {new}")
    _warn_lists_at(settings, new, args.home_dir.gate_bundle)
    return 0


def _warn_lists_at(settings: GateSettings, level: int, bundle: Path) -> None:
    """After a level change: say which lists are too old for the new level (a raised level takes effect at once,
    and every card is then refused LISTS_STALE until fresh lists are loaded: TWIC gives 12 h, we fail closed)."""
    from cryptography import x509

    from verify.freshness import ListStamp

    stamps = list_stamps(None, settings.bans, settings.revoked)
    try:  # the CRL's dates only (a public file): its signature is checked when the gate loads its bundle
        crl = x509.load_pem_x509_crl((bundle / "crl.pem").read_bytes())
        stamps.insert(0, ListStamp("crl", f"of {bundle}", crl.last_update_utc, crl.next_update_utc))
    except (OSError, ValueError):
        pass
    for h in list_health(settings.policy, stamps, level, datetime.now(UTC)):
        if h.stale:
            print(f"WARNING: {h.message} — until then every card is refused LISTS_STALE at level {level}",
                  file=sys.stderr, flush=True)
        elif h.status is Freshness.WARN:
            print(f"WARNING: {h.message}", file=sys.stderr, flush=True)


def run_pseudonymise(args: argparse.Namespace) -> int:
    from card import holderref
    from card.keystore import HOLDER_REF_TOKEN, KeyStore
    from verify.banlist import BanListError, InvalidNationalNumber, load_key, pseudonymise

    keystore = args.home_dir.keystore
    # A path, or the keystore's key: its token (pkcs11 backend: `pkcs11:` URI, HMAC in the token) or its 0600 file.
    spec: str = (str(args.key) if args.key else KeyStore(keystore).holder_ref_key_spec()
                 if (keystore / HOLDER_REF_TOKEN).is_file() else str(keystore / holderref.KEY_FILE_NAME))
    if args.new_key:
        if spec.startswith("pkcs11:"):
            raise GateCommandError("the holder-reference key is in the token already; not replaced", GateFailure.KEYS)
        try:
            holderref.new_file_key(spec)
        except holderref.HolderRefKeyError as exc:
            raise GateCommandError(str(exc), GateFailure.KEYS) from None
        print(f"new holder-reference key written to {spec}", file=sys.stderr)
    try:
        key = load_key(spec)
    except BanListError as exc:
        raise GateCommandError(f"{exc} (create one with --new-key)", GateFailure.KEYS) from None
    line = sys.stdin.readline().strip()
    try:
        ref = pseudonymise(line, key)
    except InvalidNationalNumber as exc:
        raise GateCommandError(f"not a valid national register number: {exc}", GateFailure.INPUT) from None
    print(ref.hex())
    return 0
