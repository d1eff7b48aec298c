"""`cardbound enrol`: one enrolment at the desk, from photos or a camera, onto the card in a reader."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path

from audit import AuditLog
from biometric.capture import SampleSource
from biometric.isolation import FaceWorker, IsolationError
from card import transport
from card.keystore import KeyStore, KeystoreError
from card.piv import PivSession
from enrol.errors import EnrolCommandError, EnrolCommandFailure
from enrol.facecapture import worker_capture
from enrol.flow import EnrolError, EnrolFailure, EnrolRequest, enrol

USAGE = EnrolCommandFailure.USAGE
CATEGORY_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "enrol",
        help="enrol a person: capture a face, write the sealed template to their card",
        description=(
            "Capture one person's face (photos or a camera), build the template in the sandboxed worker, seal it "
            "to the card in READER (personalising a blank card first), read it back, and keep nothing. The raw "
            "sample never leaves memory; --delete-source also destroys the photo files."
        ),
    )
    p.add_argument("--reader", help="reader index (0, 1, ...) or name prefix (default: the first reader)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--photo", action="append", type=Path, metavar="PATH", help="photo file (repeat for several)")
    src.add_argument("--camera", type=int, metavar="N", help="camera device index")
    p.add_argument("--frames", type=int, default=30, help="camera frames to try at most (default 30)")
    p.add_argument("--samples", type=int, default=3, help="good frames averaged into the template (default 3)")
    p.add_argument("--holder-ref", required=True, metavar="HEX",
                   help="pseudonymous holder reference (hex, e.g. from `cardbound gate pseudonymise`), never a name")
    p.add_argument("--category", required=True,
                   help="visitor category of the gate policy: seafarer, authority, regular, resident, occasional, ...")
    p.add_argument("--valid-until", required=True, metavar="YYYY-MM-DD", help="template expiry date")
    p.add_argument("--delete-source", action="store_true",
                   help="overwrite and unlink the photo files once the card is written and checked")
    p.add_argument("--replace", action="store_true", help="re-enrol a card that already holds a template (audited)")
    p.add_argument("--station", default="desk-1", help="enrolment station name (its certificate signs the template)")
    p.add_argument("--operator", default="operator", help="operator id recorded in the audit log")
    p.add_argument("--card-timeout", type=float, default=10.0, help="seconds to wait for a card (default 10)")
    p.add_argument("--lang", choices=("fr", "nl", "en"), default="en", help="language of quality messages")
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    p.set_defaults(handler=run)


def _parse_valid_until(text: str) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise EnrolCommandError(f"--valid-until {text!r} is not a date (YYYY-MM-DD)", USAGE) from None
    when = datetime.combine(day, time(23, 59, 59), UTC)
    if when <= datetime.now(UTC):
        raise EnrolCommandError(f"--valid-until {text} is in the past", USAGE)
    return when


def _parse_holder_ref(text: str) -> bytes:
    try:
        ref = bytes.fromhex(text)
    except ValueError:
        raise EnrolCommandError("--holder-ref must be hexadecimal", USAGE) from None
    if not 8 <= len(ref) <= 32:
        raise EnrolCommandError("--holder-ref must be 8 to 32 bytes (16 to 64 hex digits)", USAGE)
    return ref


def run(args: argparse.Namespace) -> int:
    valid_until = _parse_valid_until(args.valid_until)
    holder_ref = _parse_holder_ref(args.holder_ref)
    category = args.category.strip().lower()
    if not category or not set(category) <= CATEGORY_CHARS or len(category) > 32:
        raise EnrolCommandError("--category must be a short lowercase word (letters, digits, - and _)", USAGE)
    if args.photo:
        missing = [str(p) for p in args.photo if not p.is_file()]
        if missing:
            raise EnrolCommandError(f"photo not found: {', '.join(missing)}", EnrolFailure.BAD_INPUT)
        source = SampleSource.photos(*(str(p) for p in args.photo))
    else:
        source = SampleSource("camera", device=args.camera, max_frames=args.frames)
    home = args.home_dir
    try:
        keys = KeyStore.open(home.keystore)
        station = keys.station_credentials(args.station)
    except KeystoreError as exc:
        raise EnrolCommandError(
            f"keystore: {exc} (run `cardbound keys init` and `issue-station`)", EnrolFailure.KEYS
        ) from None
    # Checked before any capture: a gate would refuse a template that outlives its station certificate.
    if valid_until > station.certificate.not_valid_after_utc:
        raise EnrolCommandError(
            f"--valid-until {args.valid_until} is after the station certificate's end "
            f"({station.certificate.not_valid_after_utc:%Y-%m-%d}); choose an earlier date or renew the station",
            USAGE,
        )
    request = EnrolRequest(
        holder_ref=holder_ref,
        category=category,
        valid_until=valid_until,
        station=args.station,
        operator=args.operator,
        replace=args.replace,
        delete_sources=tuple(args.photo) if (args.delete_source and args.photo) else (),
    )
    home.ensure()
    try:
        # The card is reached first, so a missing reader or card fails before the face worker starts.
        with (
            AuditLog.open_station(home.root, node_id=home.node_id) as log,
            transport.connect(args.reader, timeout=args.card_timeout) as conn,
            FaceWorker() as worker,
        ):
            result = enrol(
                request,
                session=PivSession(conn),
                keys=keys,
                capture=lambda: worker_capture(worker, source, args.samples, args.lang),
                audit=log,
            )
    except EnrolError as exc:
        if args.json:
            print(json.dumps({"result": "refused", "failure": exc.failure.value, "reasons": list(exc.reasons),
                              "message": str(exc)}))
        raise EnrolCommandError(f"enrolment refused ({exc.failure.value}): {exc}", exc.failure) from None
    except transport.TransportError as exc:  # reader or card missing before the flow started
        failure = EnrolFailure.NO_CARD
        if isinstance(exc, transport.NoReaderError | transport.PcscUnavailableError):
            failure = EnrolFailure.NO_READER
        raise EnrolCommandError(f"enrolment refused ({failure.value}): {exc}", failure) from None
    except IsolationError as exc:
        raise EnrolCommandError(f"biometric worker could not start: {exc}", EnrolCommandFailure.WORKER) from None
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        print(
            f"enrolled: card {result.card_id}{' (replaced)' if result.replaced else ''}, "
            f"{result.frames_used}/{result.frames_seen} frames used, quality {result.quality}, "
            f"{result.container_bytes} B sealed, {result.timings_ms['total']:.0f} ms"
            + (f"; {result.sources_destroyed} source file(s) destroyed" if result.sources_destroyed else ""),
            file=sys.stdout,
        )
    return 0
