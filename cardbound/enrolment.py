"""Wiring of `cardbound enrol`: the composition root loads the gate's rules (through `verify`) and hands the desk
plain values, so `enrol` stays independent of `verify`.

- categories: those the configured gate policy admits (case-exact), else `enrol.rules.DEFAULT_CATEGORIES`;
- maximum validity: the policy's `max_validity_days`;
- revoked cards: the gate's revoked-card list (GUIDs), the keystore's CRL (card-auth certificate serials) and
  the issued-card register's revocations;
- the holder-reference key for `--nrn-stdin` / `--nrn-prompt` (HOME/keys/holder-ref.key, as `gate pseudonymise`).
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

from card.bundles import DeskKeys
from card.register import CardRegister, RegisterError
from card.values import CardGuid
from cardbound.exits import exit_code
from enrol import cli as enrol_cli
from enrol.errors import EnrolCommandError, EnrolCommandFailure
from enrol.rules import EnrolmentRules

GATE_CONFIG = "gate.toml"


def gate_config_path(args: argparse.Namespace) -> Path | None:
    if args.gate_config is not None:
        return Path(args.gate_config)
    default = args.home_dir.config / GATE_CONFIG
    return default if default.is_file() else None


def load_rules(args: argparse.Namespace, keys: DeskKeys) -> EnrolmentRules:
    from verify.config import ConfigError, GateConfig

    path = gate_config_path(args)
    cfg = None
    if path is not None:
        try:
            cfg = GateConfig.load(path)
        except ConfigError as exc:  # fail closed: a desk never guesses the gate's rules
            raise EnrolCommandError(f"gate configuration: {exc}", EnrolCommandFailure.CONFIG) from None
    revoked_list = cfg.revoked if cfg is not None else None
    crl = keys.crl()
    register = CardRegister.beside(args.home_dir.keystore)  # the issued-card register (not in a desk bundle)

    def revoked(guid: CardGuid, serial: int | None) -> str | None:
        if revoked_list is not None and revoked_list.is_revoked(guid.value):
            return "on the gate's revoked-card list"
        if serial is not None and crl.get_revoked_certificate_by_serial_number(serial) is not None:
            return "its card-auth certificate is on the CRL"
        try:
            if any(c.guid == guid and c.revoked is not None for c in register.cards()):
                return "revoked in the issued-card register"
        except RegisterError:
            return "the issued-card register cannot be read (fail closed)"
        return None

    if cfg is None or path is None:
        return EnrolmentRules.default(revoked)
    return EnrolmentRules.of(cfg.policy.admitted_categories, timedelta(days=cfg.policy.max_validity_days), revoked,
                             source=f"gate policy {path.name}")


def holder_ref_key(args: argparse.Namespace) -> enrol_cli.Pseudonymise:
    from card.bundles import MANIFEST, DeskBundle
    from card.keystore import KeyStore, KeystoreError
    from verify.banlist import pseudonymise

    try:
        # From the desk bundle when there is one (`keys export-desk` carries the key file, or names its token),
        # else the station's keystore dir. With the pkcs11 backend the HMAC is computed in the token.
        bundle = args.bundle or args.home_dir.desk_bundle
        desk = DeskBundle.open(bundle) if (bundle / MANIFEST).is_file() else None
        key = (desk.holder_ref_key() if desk is not None and desk.has_holder_ref_key
               else KeyStore(args.home_dir.keystore).holder_ref_key())
    except KeystoreError as exc:
        raise EnrolCommandError(f"holder-reference key: {exc} (create it with `cardbound gate pseudonymise "
                                "--new-key`)", EnrolCommandFailure.KEYS) from None
    return lambda nrn: pseudonymise(nrn, key)


WIRING = enrol_cli.DeskWiring(rules=load_rules, pseudonymise=holder_ref_key, exit_code=exit_code)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "enrol",
        help="enrol a person: capture a face, write the sealed template to their card",
        description=(
            "Capture one person's face (photos or a camera), build the template in the sandboxed worker (every "
            "sample must match every other: one person per card), check it against the gate's rules, seal it to "
            "the card in READER (personalising a blank card first), read it back, and keep nothing. The raw "
            "sample never leaves memory; --delete-source also destroys the photo files."
        ),
    )
    enrol_cli.add_arguments(p)
    p.set_defaults(handler=lambda args: enrol_cli.run(args, WIRING))
