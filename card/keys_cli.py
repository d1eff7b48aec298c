"""`cardbound keys ...`: manage the processor's keystore (CA, station certificates, CRL, verifier keys)."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from card import pki
from card.errors import CardCommandError, CardFailure
from card.keystore import KeyStore, KeystoreError


def _open(args: argparse.Namespace) -> KeyStore:
    return KeyStore.open(args.home_dir.keystore)


def _init(args: argparse.Namespace) -> int:
    store = KeyStore.init(args.home_dir.ensure().keystore)
    print(f"keystore initialised at {store.path}")
    print(f"verifier key {store.current_verifier_kid().hex()}")
    return 0


def _issue_station(args: argparse.Namespace) -> int:
    cert = _open(args).issue_station(args.name)
    until = cert.not_valid_after_utc
    print(f"station {args.name}: certificate {cert.serial_number:x}, valid until {until:%Y-%m-%d}")
    return 0


def _revoke_station(args: argparse.Namespace) -> int:
    crl = _open(args).revoke_station(args.name)
    print(f"station {args.name} revoked; CRL number {pki.crl_number(crl)}: export it to every gate")
    return 0


def _rotate_verifier(args: argparse.Namespace) -> int:
    kid = _open(args).rotate_verifier()
    print(f"new current verifier key {kid.hex()} (old keys kept for unsealing; export to every gate)")
    return 0


def _retire_verifier(args: argparse.Namespace) -> int:
    try:
        kid = bytes.fromhex(args.kid)
    except ValueError as exc:
        raise CardCommandError(f"not a key id: {args.kid!r}", CardFailure.USAGE) from exc
    _open(args).retire_verifier(kid)
    print(f"verifier key {args.kid} retired")
    return 0


def _revoke_card(args: argparse.Namespace) -> int:
    """By what people have: the card id the desk printed, the GUID (any spelling) or the certificate serial, found
    in the issued-card register; a GUID not in the register (cards issued before it existed) still works."""
    from card.register import CardRegister, RegisterError, parse_guid

    store = _open(args)
    register = CardRegister.beside(store.path)
    try:
        guid = register.find(args.card).guid
    except RegisterError as exc:
        fallback = parse_guid(args.card)
        if fallback is None:
            raise CardCommandError(str(exc), CardFailure.USAGE) from None
        guid = fallback
    crl = store.revoke_card(guid.value)
    register.record_revoked(guid)
    print(f"card {guid.card_id} (GUID {guid.hex()}) revoked; CRL number {pki.crl_number(crl)}: export it to every gate")
    return 0


def _refresh_crl(args: argparse.Namespace) -> int:
    crl = _open(args).refresh_crl()
    print(f"CRL number {pki.crl_number(crl)}, next update {crl.next_update_utc:%Y-%m-%d %H:%M} UTC")
    return 0


def _export_gate(args: argparse.Namespace) -> int:
    dest = _open(args).export_gate_trust(Path(args.dest))
    print(f"gate trust bundle written to {dest} (contains verifier private keys: handle as a secret)")
    return 0


def _show(args: argparse.Namespace) -> int:
    store = _open(args)
    ca = store.ca_certificate()
    fingerprint = hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest()
    print(f"keystore   {store.path}")
    print(f"CA         {ca.subject.rfc4514_string()}  until {ca.not_valid_after_utc:%Y-%m-%d}")
    print(f"CA sha256  {fingerprint}")
    crl = store.crl()
    print(
        f"CRL        number {pki.crl_number(crl)}, {len(list(crl))} revoked, "
        f"next update {crl.next_update_utc:%Y-%m-%d %H:%M} UTC"
    )
    current = store.current_verifier_kid()
    for kid in store.verifier_kids():
        print(f"verifier   {kid.hex()}{'  (current)' if kid == current else ''}")
    for station in store.stations():
        state = "REVOKED" if station.revoked else "active"
        print(f"station    {station.name:<20} {station.serial:x}  {state}  until {station.not_after:%Y-%m-%d}")
    print("management master secret present (never displayed)")
    return 0


def _guard(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except KeystoreError as exc:
            raise CardCommandError(str(exc), CardFailure.KEYS) from exc
        except OSError as exc:
            raise CardCommandError(f"keystore I/O error: {exc}", CardFailure.KEYS) from exc

    return run


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = subparsers.add_parser("keys", help="manage the keystore: CA, station certificates, CRL, verifier keys")
    sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    p = sub.add_parser("init", help="create the CA, an empty CRL, the first verifier key, the management secret")
    p.set_defaults(handler=_guard(_init))
    p = sub.add_parser("issue-station", help="issue a template-signing certificate for an enrolment station")
    p.add_argument("name")
    p.set_defaults(handler=_guard(_issue_station))
    p = sub.add_parser("revoke-station", help="revoke a station certificate (CRL re-signed)")
    p.add_argument("name")
    p.set_defaults(handler=_guard(_revoke_station))
    p = sub.add_parser("rotate-verifier", help="make a new current verifier key (old ones kept)")
    p.set_defaults(handler=_guard(_rotate_verifier))
    p = sub.add_parser("retire-verifier", help="delete an old verifier key")
    p.add_argument("kid")
    p.set_defaults(handler=_guard(_retire_verifier))
    p = sub.add_parser("revoke-card", help="revoke a lost or stolen card (by the card id the desk printed, the "
                                           "GUID or the card-auth certificate serial)")
    p.add_argument("card", metavar="CARD", help="card id (16 hex digits), GUID (32 hex digits) or certificate serial")
    p.set_defaults(handler=_guard(_revoke_card))
    p = sub.add_parser("refresh-crl", help="re-sign the CRL before its next update")
    p.set_defaults(handler=_guard(_refresh_crl))
    p = sub.add_parser("export-gate", help="write the gate trust bundle (CA cert, CRL, verifier keys)")
    p.add_argument("dest")
    p.set_defaults(handler=_guard(_export_gate))
    p = sub.add_parser("show", help="list CA, CRL, verifier keys and stations (no secrets)")
    p.set_defaults(handler=_guard(_show))
