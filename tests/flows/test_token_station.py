"""A station on the PKCS#11 backend, driven through the installed `cardbound` command as an operator would: keys init
on SoftHSM2, desk and gate bundles, card issuance, an enrolment from a national register number, gate decisions
with a ban list — then the station home and its bundles are searched for any file that is (or holds) a private or
secret key. There must be none outside SoftHSM2's own store (which the token encrypts under its PIN): CA,
station, verifier, audit checkpoint, holder-reference and card management keys all live in tokens, as
non-extractable objects whose value cannot be read.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pkcs11 as p11
import pytest
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from card import pkcs11
from card.bundles import gate_holder_ref_key_spec
from card.keystore import KeyStore
from cardbound.errors import ExitCode
from cardbound.home import Home

CARDBOUND = str(Path(sys.executable).with_name("cardbound"))
SITE = "BEANR-TOKEN"
NRN = "85.07.30-033.28"  # made up, valid check digits
PORTRAITS = "portraits/face_recognition"
TOKENS = ("cb-ca", f"cb-site-{SITE}", "cb-desk-desk-1", "cb-holder-ref", "cb-card-mgmt", "cb-node")


def cb(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CARDBOUND, "--home", str(home), *args], capture_output=True, text=True, timeout=180,
                          input=stdin)


def key_files(root: Path, *, store: Path | None) -> dict[str, str]:
    """Every file under `root` (outside `store`) that is or holds a private or secret key, with why."""
    found = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or (store is not None and store in path.parents):
            continue
        data = path.read_bytes()
        why = None
        if path.name.endswith((".key", ".ed25519", ".secret")):
            why = "key file name"
        elif b"PRIVATE KEY" in data:
            why = "PEM private key"
        elif len(data) == 32:
            why = "32 raw bytes (an Ed25519 seed, an HMAC or master secret)"
        elif re.fullmatch(rb"\s*[0-9a-fA-F]{64}\s*", data):
            why = "64 hex characters (a 32-byte HMAC key file)"
        else:
            try:
                serialization.load_der_private_key(data, password=None)
                why = "DER PKCS#8 private key"
            except TypeError:
                why = "encrypted DER PKCS#8 private key"
            except (ValueError, UnsupportedAlgorithm):
                pass
        if why:
            found[str(path.relative_to(root))] = why
    return found


def test_the_key_file_search_finds_every_kind_of_key(tmp_path: Path) -> None:
    """The search above is not blind: each kind of key file a station could hold is found."""
    ed = ed25519.Ed25519PrivateKey.generate()
    ecdsa = ec.generate_private_key(ec.SECP256R1())
    plain = serialization.NoEncryption()
    files = {
        "a.pem": ecdsa.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, plain),
        "b.der": ecdsa.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, plain),
        "c.der": ecdsa.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.BestAvailableEncryption(b"passphrase-long-enough")),
        "seed": ed.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, plain),
        "hmac": (b"ab" * 32) + b"\n",
        "x.secret": b"anything", "y.key": b"anything", "audit-n.ed25519": b"anything",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "public.pem").write_bytes(ecdsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert set(key_files(tmp_path, store=None)) == set(files)


def test_a_token_station_home_holds_no_key_file(pcscd, virtual_card, faces_dir: Path,  # type: ignore[no-untyped-def]
                                                tmp_path: Path) -> None:
    home = tmp_path / "station"
    photos = faces_dir / PORTRAITS

    def ok(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        res = cb(home, *args, stdin=stdin)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr
        return res

    # key officer
    ok("keys", "init", "--backend", "pkcs11", "--site", SITE)
    ok("keys", "issue-station", "desk-1")
    ok("keys", "export-desk", "desk-1", str(home / "desk-keys"))
    ok("keys", "export-gate", "gate-1", str(home / "gate-keys"), "--site", SITE)
    ok("keys", "personalise-card", "--reader", "0")
    # desk: the national register number is pseudonymised with the HMAC key in the token
    until = (datetime.now(UTC) + timedelta(days=200)).date().isoformat()
    enrolled = ok("enrol", "--reader", "0", "--nrn-stdin", "--category", "regular", "--valid-until", until,
                  "--json", "--photo", str(photos / "obama/obama.jpg"), "--photo", str(photos / "obama/obama3.jpg"),
                  stdin=NRN + "\n")
    assert json.loads(enrolled.stdout.strip().splitlines()[-1])["card_id"]
    ref = ok("gate", "pseudonymise", stdin=NRN + "\n").stdout.strip()  # the ISPS platform's side, same token key

    # gate: ban list named by its key's RFC 7512 URI; matched through the token
    ks_spec = gate_holder_ref_key_spec(home / "gate-keys")  # what the gate bundle names: the token key's URI
    assert ks_spec is not None and ks_spec.startswith("pkcs11:token=cb-holder-ref;")
    ban = tmp_path / "banlist.txt"
    from verify.banlist import BanEntry, format_banlist

    pkcs11.use_softhsm(home / "token")
    officer_key = KeyStore(home / "keys").holder_ref_key()
    ban.write_text(format_banlist([], officer_key))
    example = (Path(__file__).parents[2] / "verify" / "gate.example.toml").read_text()
    config = tmp_path / "gate.toml"
    config.write_text(f'[gate]\nid = "gate-1"\nsite = "{SITE}"\nban_list = "{ban}"\nban_list_key = "{ks_spec}"\n\n'
                      + example[example.index("\n[policy.") + 1:])
    ok("gate", "level", "1", "--config", str(config))
    live = ["verify", "--once", "--reader", "0", "--config", str(config), "--photo", str(photos / "obama/obama2.jpg")]
    assert json.loads(ok(*live).stdout.strip().splitlines()[-1])["reason"] == "ACCEPTED"
    ban.write_text(format_banlist([BanEntry(bytes.fromhex(ref), datetime.now(UTC).date() + timedelta(days=9))],
                                  officer_key))
    banned = cb(home, *live)
    assert banned.returncode == ExitCode.BANNED, banned.stderr
    assert json.loads(banned.stdout.strip().splitlines()[-1])["reason"] == "BANNED"

    # the audit log was signed in the token all along (only the public key is a file) and verifies
    node = Home(home).node_id
    assert not (home / "keys" / f"audit-{node}.ed25519").exists()
    assert (home / "keys" / f"audit-{node}.ed25519.pub").is_file()
    assert "OK audit log" in ok("audit", "verify").stdout

    # no private or secret key file in the home or its bundles; the token's store is the only place keys are
    store = home / "token" / "store"
    assert key_files(home, store=store) == {}
    assert any(store.rglob("*.object"))
    assert NRN.replace(".", "").replace("-", "") not in "".join(
        p.read_bytes().decode("latin-1") for p in home.rglob("*") if p.is_file() and store not in p.parents)

    # every private and secret key in every token: non-extractable, generated there, its value unreadable
    for label in TOKENS:
        session = pkcs11.TokenSession.open(label)
        objects = [o for klass in (p11.ObjectClass.PRIVATE_KEY, p11.ObjectClass.SECRET_KEY)
                   for o in session._session.get_objects({p11.Attribute.CLASS: klass})]  # noqa: SLF001
        assert objects, label
        for obj in objects:
            assert obj[p11.Attribute.EXTRACTABLE] is False and obj[p11.Attribute.NEVER_EXTRACTABLE] is True
            assert obj[p11.Attribute.SENSITIVE] is True and obj[p11.Attribute.LOCAL] is True
            with pytest.raises(p11.AttributeSensitive):
                obj[p11.Attribute.VALUE]
    kinds = {(o.label.split(":")[0], o.key_type) for label in TOKENS for o in pkcs11.TokenSession.open(label).objects()
             if o.object_class in ("private_key", "secret_key")}
    assert {("audit", "ec_edwards"), ("holder-ref", "generic_secret"), ("management-master", "generic_secret"),
            ("ca", "ec"), ("station", "ec"), ("verifier", "ec")} <= kinds
