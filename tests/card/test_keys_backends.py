"""The keystore on its PKCS#11 backend (SoftHSM2), the key inventory (`keys show --json`) and the audit events of
key operations.

With the token backend, no private key exists as a file anywhere in the station home: the keystore and the bundles
hold handles (token label + key label), the keys live in SoftHSM2's store under HOME/token, which the token itself
encrypts under its PIN.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pkcs11 as p11
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from audit import AuditLog
from card import bundles, pki, sealed
from card.bundles import DeskBundle, load_gate_bundle
from card.keystore import KeyStore
from card.pkcs11 import TokenSession, Usage
from cardbound.cli import main as cli_main
from cardbound.errors import ExitCode
from cardbound.home import Home

SITE_A, SITE_B = "BEANR-1700", "BEZEE-0100"


def _header() -> sealed.TemplateHeader:
    now = datetime.now(UTC)
    return sealed.TemplateHeader(0x0103, 1, "dlib-resnet", "v1", now, now + timedelta(days=30), 80, "regular",
                                 os.urandom(32))


def _binding() -> sealed.CardBinding:
    return sealed.CardBinding.for_card(os.urandom(16), ec.generate_private_key(ec.SECP256R1()).public_key())


def _files_with_private_keys(root: Path) -> list[Path]:
    """Every file under `root` that is (or holds) a private key, outside the token's own store."""
    store = root / "token" / "store"
    found = []
    for path in root.rglob("*"):
        if not path.is_file() or store in path.parents:
            continue
        data = path.read_bytes()
        if path.suffix == ".key" or path.name.endswith(".ed25519") or b"PRIVATE KEY" in data:
            found.append(path)
    return found


def test_token_backend_holds_every_private_key_in_the_token(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    ks = KeyStore.init(home.keystore, site=SITE_A, backend="pkcs11")
    ks.add_site(SITE_B)
    ks.issue_station("desk1")
    desk = DeskBundle.open(ks.export_desk("desk1", home.desk_bundle))
    gate_a = load_gate_bundle(ks.export_gate("gate-a1", home.gate_bundle, site=SITE_A))
    gate_b = load_gate_bundle(ks.export_gate("gate-b1", tmp_path / "gate-b", site=SITE_B))

    # The whole story's crypto runs through the tokens: CA-signed certificates, station signature, gate ECDH.
    creds = desk.station_credentials("desk1")
    pki.check_station_certificate(creds.certificate, ks.ca_certificate(), ks.crl(), now=datetime.now(UTC))
    binding = _binding()
    both = sealed.seal(os.urandom(512), _header(), binding, creds, desk.seal_recipients())
    assert sealed.unseal(both, trust=gate_a, expected=binding, now=datetime.now(UTC)).template
    assert sealed.unseal(both, trust=gate_b, expected=binding, now=datetime.now(UTC)).template
    only_b = sealed.seal(os.urandom(512), _header(), binding, creds, desk.seal_recipients([SITE_B]))
    with pytest.raises(sealed.NotSealedForThisSiteError):
        sealed.unseal(only_b, trust=gate_a, expected=binding, now=datetime.now(UTC))

    # Bundles hold handles, not keys; the home holds no private key file of its own.
    assert json.loads((home.desk_bundle / "bundle.json").read_text())["backend"] == "pkcs11"
    assert not (home.desk_bundle / "station.key").exists() and not list(home.gate_bundle.glob("*.key"))
    assert _files_with_private_keys(home.root) == []
    assert any((home.root / "token" / "store").rglob("*.object"))  # SoftHSM2's own (PIN-encrypted) store

    # Every private and secret key in every token: non-extractable, sensitive, generated there.
    for label in ("cb-ca", f"cb-site-{SITE_A}", f"cb-site-{SITE_B}", "cb-desk-desk1", "cb-holder-ref", "cb-card-mgmt"):
        session = TokenSession.open(label)
        secrets_ = [o for klass in (p11.ObjectClass.PRIVATE_KEY, p11.ObjectClass.SECRET_KEY)
                    for o in session._session.get_objects({p11.Attribute.CLASS: klass})]  # noqa: SLF001
        assert secrets_, label
        for obj in secrets_:
            assert obj[p11.Attribute.EXTRACTABLE] is False and obj[p11.Attribute.NEVER_EXTRACTABLE] is True
            assert obj[p11.Attribute.LOCAL] is True
            with pytest.raises(p11.AttributeSensitive):
                obj[p11.Attribute.VALUE]
    inventory = {item["id"]: item for item in ks.inventory()}
    assert {i["backend"] for i in inventory.values() if i["kind"] in ("ca", "station", "verifier")} == {"token"}

    # A desk whose token also holds a key of another role refuses to start.
    TokenSession.open("cb-desk-desk1").generate_ec("verifier:smuggled", usage=Usage.DERIVE)
    with pytest.raises(bundles.BundleOverreachError, match="must not have it"):
        DeskBundle.open(home.desk_bundle).station_credentials("desk1")

    # Revocation destroys the station's key in the token; rotation keeps the old key until its overlap ends.
    old = ks.current_verifier_kid(SITE_A)
    ks.rotate_verifier(SITE_A, overlap=timedelta(days=1))
    assert set(load_gate_bundle(ks.export_gate("gate-a1", home.gate_bundle, site=SITE_A)).verifier_keys) == {
        old, ks.current_verifier_kid(SITE_A)}
    ks.revoke_station("desk1")
    assert not [o for o in TokenSession.open("cb-desk-desk1").objects() if o.label.startswith("station:")]


def test_holder_reference_key_is_an_hmac_key_used_through_the_token(tmp_path: Path) -> None:
    """The desk pseudonymises and the gate matches its ban list with the token's HMAC key; no key file anywhere."""
    from card.holderref import FileHolderRefKey, HolderRefKey
    from card.pkcs11 import TokenHmacKey
    from verify.banlist import BanEntry, BanList, BanListError, format_banlist, pseudonymise
    from verify.config import GateConfig

    home = Home(tmp_path / "home").ensure()
    ks = KeyStore.init(home.keystore, site=SITE_A, backend="pkcs11")
    ks.issue_station("desk1")
    officer_key = ks.holder_ref_key()
    assert isinstance(officer_key, TokenHmacKey) and isinstance(officer_key, HolderRefKey)
    assert not (home.keystore / "holder-ref.key").exists()
    assert json.loads((home.keystore / "holder-ref.token").read_text()) == {"token": "cb-holder-ref",
                                                                           "label": "holder-ref"}
    desk = DeskBundle.open(ks.export_desk("desk1", home.desk_bundle))
    assert not (home.desk_bundle / "holder-ref.key").exists()
    desk_key = desk.holder_ref_key()
    assert isinstance(desk_key, TokenHmacKey) and desk_key.key_id == officer_key.key_id
    ref = pseudonymise("85.07.30-033.28", desk_key)  # at enrolment, HMAC computed in the token
    assert len(ref) == 32 and ref == pseudonymise("85073003328", officer_key)
    assert ref != pseudonymise("85073003328", FileHolderRefKey(os.urandom(32)))

    # The ISPS platform's list, made with the same key; the gate names the key by its RFC 7512 URI.
    ban_file = tmp_path / "banlist.txt"
    ban_file.write_text(format_banlist([BanEntry(ref, datetime.now(UTC).date() + timedelta(days=9))], officer_key))
    assert ks.holder_ref_key_spec() == "pkcs11:token=cb-holder-ref;object=holder-ref;type=secret-key"
    gate_bundle = ks.export_gate("gate-a1", home.gate_bundle, site=SITE_A)
    assert not (gate_bundle / "holder-ref.key").exists()
    assert bundles.gate_holder_ref_key_spec(gate_bundle) == ks.holder_ref_key_spec()  # the gate names the token key
    config = tmp_path / "gate.toml"
    policy = (Path(__file__).parents[2] / "verify" / "gate.example.toml").read_text()
    config.write_text(f'[gate]\nid = "g1"\nban_list = "{ban_file}"\nban_list_key = "{ks.holder_ref_key_spec()}"\n\n'
                      + policy[policy.index("[policy.level1]"):])
    bans = GateConfig.load(config).ban_list
    assert bans is not None and bans.key_id == officer_key.key_id
    assert bans.is_banned(ref, datetime.now(UTC).date()) is not None
    with pytest.raises(BanListError, match="another key"):  # a list made with some other key fails loudly
        BanList.parse(format_banlist([], os.urandom(32)), desk_key)

    # A holder-reference token that holds another secret key is refused by the desk.
    TokenSession.open("cb-holder-ref").generate_hmac("smuggled")
    with pytest.raises(bundles.BundleOverreachError, match="holder-reference key only"):
        DeskBundle.open(home.desk_bundle).holder_ref_key()


def test_management_master_in_the_token_derives_per_card_keys_by_sp800_108(tmp_path: Path) -> None:
    """pkcs11 backend: the card management master is an HMAC key in token cb-card-mgmt; the key officer and the desk
    derive the same per-card key through it (NIST SP 800-108r1 counter mode, checked against `cryptography`)."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode

    master, guid = os.urandom(32), os.urandom(16)
    ours = pki.derive_management_key_kbkdf(lambda d: hmac.new(master, d, hashlib.sha256).digest(), guid)
    reference = KBKDFHMAC(hashes.SHA256(), Mode.CounterMode, 16, 4, 4, CounterLocation.BeforeFixed,
                          b"cardbound/piv/9B/management-key/v1", guid, None).derive(master)
    assert ours == reference

    home = Home(tmp_path / "home").ensure()
    ks = KeyStore.init(home.keystore, site=SITE_A, backend="pkcs11")
    ks.issue_station("desk1")
    desk = DeskBundle.open(ks.export_desk("desk1", home.desk_bundle))
    assert not (home.keystore / "management.secret").exists() and not (home.desk_bundle / "management.secret").exists()
    assert json.loads((home.desk_bundle / "bundle.json").read_text())["management"] == {
        "token": "cb-card-mgmt", "label": "management-master"}
    key = ks.management_key_for(guid)
    assert len(key) == 16 and desk.management_key_for(guid) == key and ks.management_key_for(os.urandom(16)) != key
    assert {i["backend"] for i in ks.inventory() if i["kind"] == "secret"} == {"token"}
    TokenSession.open("cb-card-mgmt").generate_hmac("smuggled")
    with pytest.raises(bundles.BundleOverreachError, match="card management master only"):
        DeskBundle.open(home.desk_bundle).management_key_for(guid)


def test_inventory_and_audit_events_of_key_operations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "officer"

    def keys(*argv: str) -> int:
        return cli_main(["--home", str(home), "keys", *argv])

    assert keys("init", "--site", SITE_A) == ExitCode.OK
    assert keys("add-site", SITE_B) == ExitCode.OK
    assert keys("issue-station", "desk1") == ExitCode.OK
    assert keys("export-desk", "desk1", str(tmp_path / "desk")) == ExitCode.OK
    assert keys("export-gate", "gate-a1", str(tmp_path / "gate"), "--site", SITE_A) == ExitCode.OK
    assert keys("rotate-verifier", SITE_A, "--overlap-days", "30") == ExitCode.OK
    assert keys("issue-station", "desk2") == ExitCode.OK
    assert keys("revoke-station", "desk2") == ExitCode.OK
    capsys.readouterr()
    assert keys("show", "--json") == ExitCode.OK
    out = capsys.readouterr().out
    shown = json.loads(out)
    items = shown["keys"]
    kinds = {i["kind"] for i in items}
    assert {"ca", "crl", "station", "verifier", "secret", "gate_bundle"} <= kinds
    for item in items:
        assert {"id", "kind", "status"} <= set(item)
    verifiers = [i for i in items if i["kind"] == "verifier"]
    assert sorted(i["status"] for i in verifiers if i["site"] == SITE_A) == ["rotated", "valid"]
    assert all(i["backend"] == "file" and i["algorithm"].startswith("ECDH P-256") for i in verifiers)
    stations = {i["subject"]: i for i in items if i["kind"] == "station"}
    assert stations["desk1"]["status"] == "valid" and stations["desk2"]["status"] == "revoked"
    assert [i["status"] for i in items if i["kind"] == "crl"] == ["valid"]
    assert "PRIVATE KEY" not in out and (home / "keys" / "management.secret").read_bytes().hex() not in out

    with AuditLog.open_station(home, node_id=Home(home).node_id) as log:
        records = [log.entry(i).record() for i in range(log.size)]
    types = [r["type"] for r in records]
    assert types.count("key.issued") == 5  # CA, verifier A, verifier B, desk1, desk2
    assert types.count("key.exported") == 2 and types.count("key.rotated") == 1 and types.count("key.revoked") == 1
    exported = [r for r in records if r["type"] == "key.exported"]
    assert {e["payload"]["bundle"] for e in exported} == {"desk_bundle", "gate_bundle"}


def test_a_home_uses_its_own_token_over_an_inherited_softhsm2_conf(tmp_path: Path) -> None:
    """Two homes, each with a token cb-holder-ref of its own key: a command of home A computes A's references even
    when the environment names B's token directory (a token label is not unique across directories)."""
    import subprocess
    import sys

    cardbound = str(Path(sys.executable).with_name("cardbound"))

    def pseudonymise(home: Path, env: dict[str, str]) -> str:
        res = subprocess.run([cardbound, "--home", str(home), "gate", "pseudonymise"], input="85.07.30-033.28\n",
                             capture_output=True, text=True, timeout=60, env=env)
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    homes = [tmp_path / "a", tmp_path / "b"]
    for h in homes:
        KeyStore.init(h / "keys", site=SITE_A, backend="pkcs11")
    own_a, own_b = (pseudonymise(h, env) for h in homes)
    assert own_a != own_b
    assert pseudonymise(homes[0], {**env, "SOFTHSM2_CONF": str(homes[1] / "token" / "softhsm2.conf")}) == own_a
