"""`cardbound enrol`: one enrolment at the desk, from photos or a camera, onto the card in a reader.

The gate's rules (categories, longest validity, revoked cards) and the national-register-number pseudonymiser are
handed in by the composition root (`cardbound.enrolment`), which loads them from the configured gate policy and
the keystore: `enrol` never reads the gate's own configuration.

Output: the whole message in the chosen language (`--lang`, `enrol.messages`); with `--json`, exactly one JSON
object on standard output for every outcome, failures included.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, NoReturn

from audit import AuditLog
from biometric.capture import SampleSource
from biometric.isolation import FaceWorker, IsolationError
from biometric.quality import QualityReason
from biometric.quality import message as quality_message
from card import transport
from card.bundles import DeskBundle, DeskKeys
from card.keystore import KeystoreError
from card.piv import PivSession
from card.register import CardRegister
from card.values import HolderRef, InvalidValue
from enrol import messages
from enrol.errors import EnrolCommandError, EnrolCommandFailure
from enrol.facecapture import worker_capture
from enrol.flow import (
    EnrolError,
    EnrolFailure,
    EnrolRequest,
    check_request,
    check_source,
    enrol,
)
from enrol.rules import EnrolmentRules

Pseudonymise = Callable[[str], bytes]  # national register number -> 32-byte holder reference


Outcome = EnrolFailure | EnrolCommandFailure


@dataclass(frozen=True)
class DeskWiring:
    """What the composition root hands the command: the gate's rules, the NRN pseudonymiser (both may raise
    `EnrolCommandError`), and the exit code of an outcome (for the `exit_code` field of the JSON object)."""

    rules: Callable[[argparse.Namespace, DeskKeys], EnrolmentRules]
    pseudonymise: Callable[[argparse.Namespace], Pseudonymise]
    exit_code: Callable[[Outcome], int]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reader", help="reader index (0, 1, ...) or name prefix (default: the first reader)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--photo", action="append", type=Path, metavar="PATH", help="photo file (repeat for several)")
    src.add_argument("--camera", type=int, metavar="N", help="camera device index")
    p.add_argument("--frames", type=int, default=30, help="camera frames to try at most (default 30)")
    p.add_argument("--samples", type=int, default=3,
                   help="good frames averaged into the template (default 3); they must all be of one person")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--holder-ref", metavar="HEX",
                     help="pseudonymous holder reference (64 hex digits, from `cardbound gate pseudonymise`)")
    who.add_argument("--nrn-stdin", action="store_true",
                     help="read the national register number from standard input and pseudonymise it here "
                          "(never stored, printed or logged)")
    who.add_argument("--nrn-prompt", action="store_true",
                     help="ask for the national register number without echoing it, then pseudonymise it")
    p.add_argument("--category", required=True,
                   help="visitor category exactly as the gate policy names it (seafarer, authority, regular, ...)")
    p.add_argument("--valid-until", required=True, metavar="YYYY-MM-DD", help="template expiry date")
    p.add_argument("--gate-config", type=Path, metavar="TOML",
                   help="gate configuration whose policy the desk enforces (default: HOME/config/gate.toml if "
                        "present, else the built-in categories and a 5-year maximum)")
    p.add_argument("--delete-source", action="store_true",
                   help="overwrite and unlink the photo files once the card is written and checked")
    p.add_argument("--delete-link-target", action="store_true",
                   help="with --delete-source: a photo given as a symbolic link destroys the file it points to "
                        "(otherwise such a photo is refused before enrolling)")
    p.add_argument("--replace", action="store_true", help="re-enrol a card that already holds a template (audited)")
    p.add_argument("--station", default="desk-1", help="enrolment station name (its certificate signs the template)")
    p.add_argument("--bundle", type=Path, metavar="DIR",
                   help="desk bundle from `cardbound keys export-desk STATION DIR` (default: HOME/desk-keys)")
    p.add_argument("--operator", default="operator", help="operator id recorded in the audit log")
    p.add_argument("--card-timeout", type=float, default=10.0, help="seconds to wait for a card (default 10)")
    p.add_argument("--lang", choices=messages.LANGS, default="en", help="language of the messages (fr, nl, en)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object, whatever the outcome")


class _Out:
    """Every outcome leaves through here: one localised line, or exactly one JSON object."""

    def __init__(self, args: argparse.Namespace, wiring: DeskWiring) -> None:
        self.json = bool(args.json)
        self.lang: messages.Lang = args.lang
        self.wiring = wiring

    def fail(self, failure: Outcome, detail: str, *, stage: str = "", reasons: tuple[str, ...] = (),
             card_state: str = "unchanged", **params: Any) -> NoReturn:
        code = failure.name
        text = self.text(code, **params)
        state = messages.render(f"CARD_STATE_{card_state}", self.lang)
        if self.json:
            print(json.dumps({"result": "refused", "failure": code, "stage": stage, "reasons": list(reasons),
                              "card_state": card_state, "message": text, "detail": detail,
                              "exit_code": self.wiring.exit_code(failure)}, ensure_ascii=False))
        raise EnrolCommandError(f"{text} {state}", failure)

    def text(self, message_code: str, /, **params: object) -> str:
        if message_code == "CATEGORY_UNKNOWN":
            s = params.get("suggestion")
            params["hint"] = messages.render("CATEGORY_HINT", self.lang, suggestion=s) if s else ""
        return messages.render(message_code, self.lang, **params)


def _parse_valid_until(text: str, out: _Out) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        out.fail(EnrolCommandFailure.BAD_DATE, f"--valid-until {text!r} is not a date (YYYY-MM-DD)",
                 stage="checks", valid_until=text)
    return datetime.combine(day, time(23, 59, 59), UTC)


def _holder_ref(args: argparse.Namespace, wiring: DeskWiring, out: _Out) -> HolderRef:
    if args.holder_ref is not None:
        try:
            return HolderRef.from_hex(args.holder_ref)
        except InvalidValue as exc:
            out.fail(EnrolCommandFailure.BAD_HOLDER_REF, str(exc), stage="checks")
    # The number lives in this one local only: pseudonymised at once, never stored, printed or logged.
    if args.nrn_stdin:
        nrn = sys.stdin.readline().strip()
    else:
        nrn = getpass.getpass(messages.render("NRN_PROMPT", out.lang)).strip()
    try:
        pseudonymise = wiring.pseudonymise(args)
        return HolderRef(bytes(pseudonymise(nrn)))
    except EnrolCommandError as exc:  # no holder-reference key
        out.fail(exc.failure, str(exc), stage="checks")
    except ValueError:
        out.fail(EnrolCommandFailure.BAD_NRN, "not a valid national register number", stage="checks")
    finally:
        nrn = ""  # noqa: F841 - drop the reference as soon as it is used


def _connect(args: argparse.Namespace, out: _Out) -> transport.PcscConnection:
    try:
        return transport.connect(args.reader, timeout=0.3)
    except transport.NoCardError:
        pass
    print(messages.render("PRESENT_CARD", out.lang, reader=args.reader or "0"), file=sys.stderr, flush=True)
    return transport.connect(args.reader, timeout=max(0.1, args.card_timeout - 0.3))


def run(args: argparse.Namespace, wiring: DeskWiring) -> None:
    """One enrolment; raises `EnrolCommandError` (its `failure` is the outcome) on any refusal or failure."""
    out = _Out(args, wiring)
    valid_until = _parse_valid_until(args.valid_until, out)
    home = args.home_dir
    try:
        # The desk opens its own bundle only, never the processor keystore (that holds the CA key).
        keys = DeskBundle.open(args.bundle or home.desk_bundle)
        station = keys.station_credentials(args.station)
        rules = wiring.rules(args, keys)
    except KeystoreError as exc:
        out.fail(EnrolFailure.KEYS, f"desk keys: {exc}", stage="checks")
    except EnrolCommandError as exc:  # the gate configuration is unusable: fail closed
        out.fail(exc.failure, str(exc), stage="checks")
    try:
        category = rules.category(args.category)
        sources = tuple(check_source(p, destroy=args.delete_source, follow_symlink=args.delete_link_target)
                        for p in args.photo) if args.photo else ()
        holder_ref = _holder_ref(args, wiring, out)
        request = EnrolRequest(holder_ref=holder_ref, category=category, valid_until=valid_until,
                               station=args.station, operator=args.operator, replace=args.replace,
                               source_kind="file" if args.photo else "camera", sources=sources)
        check_request(request, rules, datetime.now(UTC))  # the flow checks again; this refuses before any wait
    except EnrolError as exc:
        out.fail(exc.failure, str(exc), stage=exc.stage, **exc.params)
    except ValueError as exc:  # RuleViolation from rules.category
        out.fail(EnrolFailure.CATEGORY_UNKNOWN, str(exc), stage="checks", category=args.category,
                 suggestion=getattr(exc, "suggestion", None) or "", known=", ".join(sorted(rules.categories)))
    # Checked before any capture: a gate would refuse a template that outlives its station certificate.
    if valid_until > station.certificate.not_valid_after_utc:
        out.fail(EnrolFailure.VALIDITY, "valid-until is after the station certificate's end", stage="checks",
                 valid_until=args.valid_until, latest=f"{station.certificate.not_valid_after_utc:%Y-%m-%d}",
                 max_days=rules.max_validity.days)
    source = (SampleSource.photos(*(str(s.path) for s in sources)) if sources
              else SampleSource("camera", device=args.camera, max_frames=args.frames))
    home.ensure()
    try:
        # The card is reached first, so a missing reader or card fails before the face worker starts.
        with (
            AuditLog.open_station(home.root, node_id=home.node_id) as log,
            _connect(args, out) as conn,
            FaceWorker() as worker,
        ):
            result = enrol(
                request,
                session=PivSession(conn),
                keys=keys,
                capture=lambda: worker_capture(worker, source, args.samples, args.lang),
                audit=log,
                rules=rules,
                register=CardRegister.beside(home.keystore),
            )
    except EnrolError as exc:
        params = dict(exc.params)
        if exc.failure is EnrolFailure.QUALITY and exc.reasons:
            params["advice"] = quality_message(QualityReason(exc.reasons[0]), out.lang)
            params["codes"] = ", ".join(dict.fromkeys(exc.reasons))
        if exc.failure is EnrolFailure.BAD_INPUT and "path" not in params:
            params["path"] = ", ".join(str(s.path) for s in sources)
        out.fail(exc.failure, str(exc), stage=exc.stage, reasons=exc.reasons, card_state=exc.card_state, **params)
    except transport.TransportError as exc:  # reader or card missing before the flow started
        failure = EnrolFailure.NO_CARD
        if isinstance(exc, transport.NoReaderError | transport.PcscUnavailableError):
            failure = EnrolFailure.NO_READER
        out.fail(failure, str(exc), stage="connect")
    except IsolationError as exc:
        out.fail(EnrolFailure.WORKER_FAILED, f"biometric worker could not start: {exc}", stage="capture")
    except OSError as exc:  # the audit log's directory or database cannot be opened
        out.fail(EnrolFailure.AUDIT, f"audit log: {exc}", stage="start")
    if result.sources_failed:
        out.fail(EnrolCommandFailure.SOURCE_NOT_DESTROYED,
                 "; ".join(d.detail for d in result.disposals if d.detail), stage="dispose", card_state="enrolled",
                 card_id=result.card_id, failed=result.sources_failed)
    if args.json:
        print(json.dumps(result.as_dict() | {"message": out.text("ENROLLED", card_id=result.card_id,
                                                                samples=result.frames_used,
                                                                quality=result.quality)}, ensure_ascii=False))
    else:
        print(out.text("ENROLLED", card_id=result.card_id, samples=result.frames_used, quality=result.quality))
        print(
            f"  {result.frames_used}/{result.frames_seen} frames, spread {result.spread:.3f}, "
            f"{result.container_bytes} B sealed, {result.timings_ms['total']:.0f} ms"
            + (f"; {result.sources_destroyed} source file(s) destroyed" if result.sources_destroyed else "")
            + (" (replaced)" if result.replaced else ""),
        )
        for w in result.warnings:
            print(f"  warning: {w}", file=sys.stderr)
