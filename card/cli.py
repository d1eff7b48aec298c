"""`cardbound card ...`: list readers, show a card's PIV state, run the virtual card."""

from __future__ import annotations

import argparse
from typing import Any

from card import apdu, transport
from card.errors import CardCommandError, CardFailure
from card.piv import PivFormatError, PivSession
from card.virtual import main as virtual_main
from card.virtual.image import ImageError


def _readers(args: argparse.Namespace) -> int:
    try:
        readers = transport.list_readers()
    except transport.PcscUnavailableError as exc:
        raise CardCommandError(f"PC/SC unavailable: is pcscd running? ({exc})", CardFailure.NO_READER) from None
    if not readers:
        raise CardCommandError("no PC/SC reader found", CardFailure.NO_READER)
    for name in readers:
        print(name)
    return 0


def _info(args: argparse.Namespace) -> int:
    from card.personalise import personalisation_state, read_sealed_template

    try:
        with transport.connect(args.reader, timeout=args.timeout) as conn:
            session = PivSession(conn)
            state = personalisation_state(session)
            guid = session.get_data_or_none(0x5FC102)
            template = read_sealed_template(session)
            print(f"reader: {conn.reader}")
            print(f"atr: {conn.atr.hex()}  extended length: {conn.extended_length}")
            print(f"state: {state.value}")
            if guid is not None:
                print(f"guid: {session.get_chuid().guid.hex()}")
            print(f"sealed template: {'none' if template is None else f'{len(template)} bytes'}")
    except transport.NoReaderError as exc:
        raise CardCommandError(str(exc), CardFailure.NO_READER) from None
    except transport.PcscUnavailableError as exc:
        raise CardCommandError(f"PC/SC unavailable: is pcscd running? ({exc})", CardFailure.NO_READER) from None
    except transport.NoCardError as exc:
        raise CardCommandError(str(exc), CardFailure.NO_CARD) from None
    except transport.ConnectionLostError as exc:
        raise CardCommandError(str(exc), CardFailure.CARD_REMOVED) from None
    except (transport.TransportError, apdu.ApduError, PivFormatError) as exc:
        raise CardCommandError(f"card error: {exc}", CardFailure.CARD_ERROR) from None
    return 0


def _lookup(args: argparse.Namespace) -> int:
    import json

    from card.register import CardRegister, RegisterError

    try:
        card = CardRegister.beside(args.home_dir.keystore).find(args.card)
    except RegisterError as exc:
        if args.json:
            print(json.dumps({"result": "not_found", "message": str(exc)}))
        raise CardCommandError(str(exc), CardFailure.INPUT) from None
    if args.json:
        print(json.dumps({"result": "found", **card.as_dict()}))
    else:
        for key, value in card.as_dict().items():
            print(f"{key:<22} {value if value is not None else '-'}")
    return 0


def _virtual(args: argparse.Namespace) -> int:
    try:
        return virtual_main.run(args)
    except ImageError as exc:
        raise CardCommandError(str(exc), CardFailure.INPUT) from None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("card", help="smartcard readers, PIV card state, the virtual card")
    sub = parser.add_subparsers(dest="card_command", metavar="SUBCOMMAND", required=True)

    readers = sub.add_parser("readers", help="list PC/SC readers")
    readers.set_defaults(handler=_readers)

    info = sub.add_parser("info", help="show the PIV state of the card in a reader (no secrets)")
    info.add_argument("--reader", help="reader index (0, 1, ...), name or name prefix (default: first reader)")
    info.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a card")
    info.set_defaults(handler=_info)

    lookup = sub.add_parser("lookup", help="find an issued card by card id, GUID (any spelling) or certificate serial")
    lookup.add_argument("card", metavar="CARD")
    lookup.add_argument("--json", action="store_true", help="print one JSON object")
    lookup.set_defaults(handler=_lookup)

    virtual = sub.add_parser(
        "virtual", help="run a virtual PIV card in a vpcd reader until SIGTERM (tests and demo only)"
    )
    virtual_main.add_arguments(virtual)
    virtual.set_defaults(handler=_virtual)
