"""`cardbound keys ...`: manage the processor's keystore (CA, station certificates, CRL, verifier keys)."""

from __future__ import annotations

import argparse
import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from card import pki
from card.errors import CardCommandError, CardFailure
from card.keystore import KeyStore, KeystoreError


def _open(args: argparse.Namespace) -> KeyStore:
    return KeyStore.open(args.home_dir.keystore)


def _audit(args: argparse.Namespace, event: Any) -> None:
    """Every key operation is an audit event in the key officer's own log (home/audit)."""
    from audit import AuditLog

    home = args.home_dir
    with AuditLog.open_station(home.ensure().root, node_id=home.node_id) as log:
        log.append(event)


def _operator(args: argparse.Namespace) -> str:
    return str(getattr(args, "operator", None) or "key-officer")


def _init(args: argparse.Namespace) -> int:
    from audit import KeyIssued

    store = KeyStore.init(args.home_dir.ensure().keystore, site=args.site, backend=args.backend)
    ca = store.ca_certificate()
    kid = store.current_verifier_kid(args.site)
    print(f"keystore initialised at {store.path} ({store.backend} backend)")
    print(f"site {args.site}: verifier key {kid.hex()}")
    _audit(args, KeyIssued(key_id=f"ca:{ca.serial_number:x}"[:64], key_kind="ca", subject=ca.subject.rfc4514_string(),
                           operator_id=_operator(args), expires=ca.not_valid_after_utc.isoformat()))
    _audit(args, KeyIssued(key_id=f"verifier:{kid.hex()}", key_kind="verifier", subject=f"site {args.site}",
                           operator_id=_operator(args)))
    if store.has_holder_ref_key():  # pkcs11: generated in its token at init (file backend: on demand)
        _audit(args, KeyIssued(key_id=f"holder-ref:{store.holder_ref_key().key_id}", key_kind="holder_ref",
                               subject="holder-reference HMAC key (token cb-holder-ref)", operator_id=_operator(args)))
    return 0


def _add_site(args: argparse.Namespace) -> int:
    from audit import KeyIssued

    kid = _open(args).add_site(args.site)
    _audit(args, KeyIssued(key_id=f"verifier:{kid.hex()}", key_kind="verifier", subject=f"site {args.site}",
                           operator_id=_operator(args)))
    print(f"site {args.site}: verifier key {kid.hex()} (re-export the desk bundles that enrol for it)")
    return 0


def _issue_station(args: argparse.Namespace) -> int:
    from audit import KeyIssued

    cert = _open(args).issue_station(args.name)
    _audit(args, KeyIssued(key_id=f"station:{args.name}:{cert.serial_number:x}"[:64], key_kind="station",
                           subject=f"station {args.name}", operator_id=_operator(args),
                           expires=cert.not_valid_after_utc.isoformat()))
    until = cert.not_valid_after_utc
    print(f"station {args.name}: certificate {cert.serial_number:x}, valid until {until:%Y-%m-%d}")
    return 0


def _revoke_station(args: argparse.Namespace) -> int:
    from audit import KeyRevoked

    crl = _open(args).revoke_station(args.name)
    _audit(args, KeyRevoked(key_id=f"station:{args.name}"[:64], key_kind="station", reason_code="revoked",
                            operator_id=_operator(args)))
    print(f"station {args.name} revoked; CRL number {pki.crl_number(crl)}: export it to every gate")
    return 0


def _rotate_verifier(args: argparse.Namespace) -> int:
    if args.overlap_days < 0:
        raise CardCommandError("--overlap-days must be 0 or more", CardFailure.USAGE)
    store = _open(args)
    old = store.current_verifier_kid(args.site)
    kid = store.rotate_verifier(args.site, overlap=timedelta(days=args.overlap_days))
    until = store.verifier_not_after(old)
    assert until is not None
    from audit import KeyRotated

    _audit(args, KeyRotated(key_id=f"verifier:{old.hex()}", new_key_id=f"verifier:{kid.hex()}", key_kind="verifier",
                            overlap_ends=until.isoformat(), operator_id=_operator(args)))
    print(f"site {store.site_of(kid)}: new current verifier key {kid.hex()}; old key {old.hex()} unseals until "
          f"{until:%Y-%m-%d %H:%M} UTC. Re-export the site's gates and every desk; re-seal cards "
          "here (`cardbound keys reseal-card`: no capture) or re-enrol them at a desk before then")
    return 0


def _retire_verifier(args: argparse.Namespace) -> int:
    try:
        kid = bytes.fromhex(args.kid)
    except ValueError as exc:
        raise CardCommandError(f"not a key id: {args.kid!r}", CardFailure.USAGE) from exc
    _open(args).retire_verifier(kid)
    from audit import KeyRevoked

    _audit(args, KeyRevoked(key_id=f"verifier:{kid.hex()}", key_kind="verifier", reason_code="retired",
                            operator_id=_operator(args)))
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
    from audit import KeyRevoked

    _audit(args, KeyRevoked(key_id=f"card:{guid.card_id}", key_kind="card_auth", reason_code="revoked",
                            operator_id=_operator(args)))
    print(f"card {guid.card_id} (GUID {guid.hex()}) revoked; CRL number {pki.crl_number(crl)}: export it to every gate")
    return 0


def _refresh_crl(args: argparse.Namespace) -> int:
    from audit import KeyIssued

    crl = _open(args).refresh_crl()
    _audit(args, KeyIssued(key_id=f"crl:{pki.crl_number(crl)}", key_kind="crl", subject="CRL re-signed",
                           operator_id=_operator(args),
                           expires=None if crl.next_update_utc is None else crl.next_update_utc.isoformat()))
    print(f"CRL number {pki.crl_number(crl)}, next update {crl.next_update_utc:%Y-%m-%d %H:%M} UTC")
    return 0


def _export_gate(args: argparse.Namespace) -> int:
    from audit import KeyExported

    store = _open(args)
    dest = store.export_gate(args.gate, Path(args.dest), site=args.site)
    kids = " ".join(f"verifier:{k.hex()}" for k in store.verifier_kids(store.site_of_gate(args.gate)))
    _audit(args, KeyExported(bundle="gate_bundle", station_id=args.gate, key_ids=kids, backend=store.backend,
                             operator_id=_operator(args)))
    print(f"gate bundle for {args.gate} written to {dest}: CA certificate, CRL and the verifier key(s) of one site "
          "(secret: copy it to that gate only)")
    return 0


def _export_desk(args: argparse.Namespace) -> int:
    from audit import KeyExported

    store = _open(args)
    dest = store.export_desk(args.station, Path(args.dest), sites=args.site or None)
    kids = " ".join(f"verifier:{pki.verifier_kid(k).hex()}" for k in store.seal_recipients(args.site or None))
    _audit(args, KeyExported(bundle="desk_bundle", station_id=args.station, key_ids=f"station:{args.station} {kids}",
                             backend=store.backend, operator_id=_operator(args)))
    print(f"desk bundle for {args.station} written to {dest}: station key and certificate, CA certificate, CRL, "
          "verifier public keys, management secret (no CA key, no verifier private key)")
    return 0


def _personalise_card(args: argparse.Namespace) -> int:
    """Card issuance needs the CA (it signs the card's 9E certificate): done at the key officer's station."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from card import apdu, transport
    from card.personalise import PersonalisationError, personalise
    from card.piv import PivFormatError, PivSession
    from card.register import CardRegister
    from card.values import CardGuid

    store = _open(args)
    register = CardRegister.beside(store.path)

    def issue(guid: bytes, public_key: ec.EllipticCurvePublicKey) -> x509.Certificate:
        cert = store.issue_card_auth_certificate(guid, public_key)
        register.record_issued(CardGuid(guid), cert.serial_number, cert.not_valid_after_utc)  # the issued-card register
        return cert

    try:
        with transport.connect(args.reader, timeout=args.timeout) as conn:
            done = personalise(PivSession(conn), issue, store.management_key_for)
    except (transport.TransportError, apdu.ApduError, PivFormatError, PersonalisationError) as exc:
        raise CardCommandError(f"card personalisation failed: {exc}", CardFailure.CARD_ERROR) from None
    from audit import KeyIssued
    from card.values import CardId

    _audit(args, KeyIssued(key_id=f"card:{CardId.of(done.guid)}", key_kind="card_auth",
                           subject="card-auth certificate (key generated on the card)", operator_id=_operator(args)))
    print(f"card personalised: GUID {done.guid.hex()} (9E key generated on the card, certificate issued)")
    return 0


def _show(args: argparse.Namespace) -> int:
    store = _open(args)
    if args.json:
        import json

        print(json.dumps({"keystore": str(store.path), "backend": store.backend, "keys": store.inventory()},
                         indent=1))
        return 0
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
    for site in store.sites():
        current = store.current_verifier_kid(site)
        for kid in store.verifier_kids(site):
            until = store.verifier_not_after(kid)
            state = "(current)" if kid == current else f"(rotated, unseals until {until:%Y-%m-%d})" if until else ""
            print(f"verifier   {site:<20} {kid.hex()}  {state}")
    for station in store.stations():
        state = "REVOKED" if station.revoked else "active"
        print(f"station    {station.name:<20} {station.serial:x}  {state}  until {station.not_after:%Y-%m-%d}")
    management = store.management_reference()
    print(f"management master in token {management['token']} (non-extractable)" if management else
          "management master secret present (never displayed)")
    holder = store.holder_ref_reference()
    if holder or store.has_holder_ref_key():
        print(f"holder-reference key in token {holder['token']} (non-extractable)" if holder else
              "holder-reference key present (never displayed)")
    return 0


def _reseal_card(args: argparse.Namespace) -> int:
    """Re-wrap the card's sealed template to the sites' current verifier keys (after a rotation), without a new
    capture: only the key officer holds verifier private keys, so this runs here, like card issuance."""
    import hmac
    from datetime import UTC, datetime

    from audit import CardWritten
    from card import apdu, sealed, transport
    from card.personalise import read_guid, read_sealed_template, write_sealed_template
    from card.piv import PivFormatError, PivSession
    from card.values import CardId

    store = _open(args)
    try:
        with transport.connect(args.reader, timeout=args.timeout) as conn:
            session = PivSession(conn)
            session.select()
            guid = read_guid(session)
            data = read_sealed_template(session)
            if guid is None or data is None:
                raise CardCommandError("the card holds no sealed template: enrol it instead", CardFailure.CARD_ERROR)
            sites = args.site or sorted({store.site_of(kid) for kid in sealed.recipient_kids(data)})
            try:
                new = sealed.rewrap(data, trust=store.gate_trust(), recipients=store.seal_recipients(sites),
                                    now=datetime.now(UTC))
            except (sealed.SealedTemplateError, ValueError) as exc:
                raise CardCommandError(f"cannot re-seal this card: {exc}", CardFailure.CARD_ERROR) from None
            mgmt = store.management_key_for(guid)
            write_sealed_template(session, mgmt, new)
            back = read_sealed_template(session)
            if back is None or not hmac.compare_digest(back, new):
                write_sealed_template(session, mgmt, data)
                raise CardCommandError("read-back differs; the previous template was written back",
                                       CardFailure.CARD_ERROR)
    except (transport.TransportError, apdu.ApduError, PivFormatError) as exc:
        raise CardCommandError(f"card error: {exc}", CardFailure.CARD_ERROR) from None
    _audit(args, CardWritten(station_id="key-officer", operator_id=_operator(args), card_id=str(CardId.of(guid)),
                             container_version=sealed.FORMAT_VERSION, container_bytes=len(new)))
    print(f"card {CardId.of(guid)} re-sealed for {', '.join(sites)} ({len(new)} B); no capture, same signed template")
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

    p = sub.add_parser("init", help="create the CA, an empty CRL, the first site's verifier key, the management secret")
    p.add_argument("--site", default="default", help="the first port facility (site) with its own verifier key")
    p.add_argument("--backend", choices=("file", "pkcs11"), default="file",
                   help="private keys as encrypted files, or non-extractable in a PKCS#11 token (SoftHSM2: HOME/token)")
    p.set_defaults(handler=_guard(_init))
    p = sub.add_parser("add-site", help="a port facility (or gate group) with its own verifier key pair")
    p.add_argument("site")
    p.set_defaults(handler=_guard(_add_site))
    p = sub.add_parser("issue-station", help="issue a template-signing certificate for an enrolment station")
    p.add_argument("name")
    p.set_defaults(handler=_guard(_issue_station))
    p = sub.add_parser("revoke-station", help="revoke a station certificate (CRL re-signed)")
    p.add_argument("name")
    p.set_defaults(handler=_guard(_revoke_station))
    p = sub.add_parser("rotate-verifier", help="new current verifier key for a site; the old one overlaps, then ends")
    p.add_argument("site", nargs="?", default=None, help="the site (optional when the keystore has one)")
    p.add_argument("--overlap-days", type=int, default=90, help="days the old key keeps unsealing (default 90)")
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
    p = sub.add_parser("export-gate", help="write a gate's bundle: its site's verifier key(s), CA cert, CRL")
    p.add_argument("gate")
    p.add_argument("dest")
    p.add_argument("--site", help="the gate's site (optional when the keystore has one)")
    p.set_defaults(handler=_guard(_export_gate))
    p = sub.add_parser("export-desk", help="write a desk's bundle: station key + cert, CA cert, CRL, recipients")
    p.add_argument("station")
    p.add_argument("dest")
    p.add_argument("--site", action="append", help="a site this desk enrols for (repeat; default: every site)")
    p.set_defaults(handler=_guard(_export_desk))
    p = sub.add_parser("personalise-card", help="personalise a blank card (9E key on the card, certificate by the CA)")
    p.add_argument("--reader", help="reader index or name prefix (default: the first reader)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a card")
    p.set_defaults(handler=_guard(_personalise_card))
    p = sub.add_parser("reseal-card", help="re-wrap a card's template to the current verifier keys (no new capture)")
    p.add_argument("--reader", help="reader index or name prefix (default: the first reader)")
    p.add_argument("--site", action="append", help="seal for this site (repeat; default: the sites it is sealed to)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a card")
    p.set_defaults(handler=_guard(_reseal_card))
    p = sub.add_parser("show", help="list CA, CRL, verifier keys and stations (no secrets)")
    p.add_argument("--json", action="store_true", help="the full inventory as JSON (id, algorithm, backend, usage, "
                                                        "validity, status)")
    p.set_defaults(handler=_guard(_show))
