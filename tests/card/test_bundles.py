"""Role bundles, keys at rest, per-site verifier keys and rotation with overlap.

A desk holds its station key and the sites' *public* keys; a gate holds its own site's verifier keys; each
refuses a bundle with a key its role must not have and a secret file open to group or others. Every private key
file is PKCS#8 encrypted (scrypt). A gate of site A cannot unseal a template sealed only to site B.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from card import bundles, keyfile, sealed
from card.bundles import DeskBundle, load_gate_bundle
from card.keystore import KeyStore, KeystoreError, KeystorePassphraseError
from card.sealed import CardBinding, TemplateHeader, seal, unseal

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
SITE_A, SITE_B = "BEANR-1700", "BEZEE-0100"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    ks = KeyStore.init(tmp_path_factory.mktemp("officer") / "keys", now=NOW - timedelta(days=1), site=SITE_A)
    ks.add_site(SITE_B)
    ks.issue_station("desk1", now=NOW - timedelta(days=1))
    return ks


def _header(created: datetime = NOW) -> TemplateHeader:
    return TemplateHeader(0x0103, 1, "dlib-resnet", "v1", created, created + timedelta(days=365), 80, "regular",
                          os.urandom(32))


def _binding() -> CardBinding:
    return CardBinding.for_card(os.urandom(16), ec.generate_private_key(ec.SECP256R1()).public_key())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------------------------------- desk bundle


def test_desk_bundle_holds_what_a_desk_needs_and_nothing_more(store: KeyStore, tmp_path: Path) -> None:
    desk = store.export_desk("desk1", tmp_path / "desk")
    names = sorted(p.name for p in desk.iterdir())
    assert names == sorted(["bundle.json", "ca.crt", "crl.pem", "station.key", "station.crt", "management.secret",
                            f"recipient-{SITE_A}.pem", f"recipient-{SITE_B}.pem"])
    assert _mode(desk) == 0o700 and _mode(desk / "station.key") == 0o600 and _mode(desk / "management.secret") == 0o600
    blob = b"".join(p.read_bytes() for p in desk.iterdir())
    assert b"ENCRYPTED PRIVATE KEY" in blob and blob.count(b"PRIVATE KEY-----") == 2  # station key only (BEGIN/END)
    bundle = DeskBundle.open(desk)
    creds = bundle.station_credentials("desk1")
    kids = {sealed.pki.verifier_kid(k) for k in bundle.seal_recipients()}
    assert kids == {store.current_verifier_kid(SITE_A), store.current_verifier_kid(SITE_B)}
    assert [sealed.pki.verifier_kid(k) for k in bundle.seal_recipients([SITE_B])] == [store.current_verifier_kid(SITE_B)]
    guid = os.urandom(16)
    assert bundle.management_key_for(guid) == store.management_key_for(guid)
    # A desk can seal for both sites; the processor's keys open it.
    data = seal(os.urandom(512), _header(), b := _binding(), creds, bundle.seal_recipients())
    assert unseal(data, trust=store.gate_trust(), expected=b, now=NOW).template
    with pytest.raises(bundles.BlankCardError, match="key officer"):
        bundle.issue_card_auth_certificate(guid, ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(KeystoreError, match="for station 'desk1'"):
        bundle.station_credentials("desk2")


@pytest.mark.parametrize(
    ("intruder", "source"),
    [
        ("ca.key", "ca.key"),
        (f"verifier-{'0' * 16}.key", "verifier"),
        ("recipient-EXTRA.pem", "verifier"),  # a private key disguised as a public one: checked by content
        ("notes.txt", None),
    ],
)
def test_desk_refuses_a_bundle_with_a_key_it_must_not_have(store: KeyStore, tmp_path: Path, intruder: str,
                                                           source: str | None) -> None:
    desk = store.export_desk("desk1", tmp_path / "desk")
    DeskBundle.open(desk)
    if source == "ca.key":
        data = (store.path / "ca.key").read_bytes()
    elif source == "verifier":
        data = next((store.path / "verifier" / SITE_A).glob("*.key")).read_bytes()
    else:
        data = b"hello\n"
    fd = os.open(desk / intruder, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, data)
    os.close(fd)
    with pytest.raises(bundles.BundleOverreachError, match="desk bundle"):
        DeskBundle.open(desk)


def test_desk_and_gate_refuse_loose_permissions_and_the_wrong_role(store: KeyStore, tmp_path: Path) -> None:
    desk = store.export_desk("desk1", tmp_path / "desk")
    gate = store.export_gate("gate-a1", tmp_path / "gate", site=SITE_A)
    os.chmod(desk / "station.key", 0o640)
    with pytest.raises(bundles.BundlePermissionError, match="chmod 600"):
        DeskBundle.open(desk)
    os.chmod(desk / "station.key", 0o600)
    os.chmod(desk / "management.secret", 0o604)
    with pytest.raises(bundles.BundlePermissionError):
        DeskBundle.open(desk)
    key = next(gate.glob("verifier-*.key"))
    os.chmod(key, 0o644)
    with pytest.raises(bundles.BundlePermissionError, match="open to group or others"):
        load_gate_bundle(gate)
    os.chmod(key, 0o600)
    load_gate_bundle(gate)
    with pytest.raises(bundles.BundleRoleError, match="not a desk bundle"):
        DeskBundle.open(gate)
    with pytest.raises(bundles.BundleRoleError, match="processor keystore"):
        load_gate_bundle(store.path)  # the gate never opens the keystore, even when pointed at it
    with pytest.raises(bundles.BundleMissingError):
        load_gate_bundle(tmp_path / "nowhere")


def test_gate_bundle_carries_the_holder_reference_key_for_its_ban_list(tmp_path: Path) -> None:
    """File backend: the gate gets its own 0600 copy of the holder-reference key (it never reads the keystore);
    a copy open to others is refused like any secret file."""
    from card import holderref
    from verify.banlist import format_banlist, load_key

    ks = KeyStore.init(tmp_path / "keys", site=SITE_A, now=NOW)
    assert bundles.gate_holder_ref_key_spec(ks.export_gate("g0", tmp_path / "g0", site=SITE_A)) is None
    officer = holderref.new_file_key(ks.path / "holder-ref.key")
    gate = ks.export_gate("gate-a1", tmp_path / "gate", site=SITE_A)
    spec = bundles.gate_holder_ref_key_spec(gate)
    assert spec == str(gate / "holder-ref.key") and _mode(gate / "holder-ref.key") == 0o600
    assert load_key(spec).key_id == officer.key_id == format_banlist([], officer).split("key-id=")[1][:16]
    load_gate_bundle(gate)
    os.chmod(gate / "holder-ref.key", 0o640)
    with pytest.raises(bundles.BundlePermissionError, match="chmod 600"):
        load_gate_bundle(gate)


@pytest.mark.parametrize("intruder", ["station.key", "management.secret", "ca.key"])
def test_gate_refuses_a_bundle_with_a_key_it_must_not_have(store: KeyStore, tmp_path: Path, intruder: str) -> None:
    gate = store.export_gate("gate-a1", tmp_path / "gate", site=SITE_A)
    fd = os.open(gate / intruder, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (store.path / "ca.key").read_bytes())
    os.close(fd)
    with pytest.raises(bundles.BundleOverreachError, match="a gate must not have it"):
        load_gate_bundle(gate)


def test_gate_bundle_holds_only_its_own_sites_keys(store: KeyStore, tmp_path: Path) -> None:
    gate = store.export_gate("gate-b1", tmp_path / "gate", site=SITE_B)
    names = sorted(p.name for p in gate.iterdir())
    kids = [k.hex() for k in store.verifier_kids(SITE_B)]
    assert names == sorted(["bundle.json", "ca.crt", "crl.pem"] + [f"verifier-{k}.key" for k in kids])
    trust = load_gate_bundle(gate)
    assert trust.site == SITE_B and set(trust.verifier_keys) == set(store.verifier_kids(SITE_B))
    assert not set(trust.verifier_keys) & set(store.verifier_kids(SITE_A))


# ------------------------------------------------------------------------------------------- per-site keys


def test_site_a_cannot_unseal_a_template_sealed_only_to_site_b(store: KeyStore, tmp_path: Path) -> None:
    gate_a = load_gate_bundle(store.export_gate("gate-a1", tmp_path / "a", site=SITE_A))
    gate_b = load_gate_bundle(store.export_gate("gate-b1", tmp_path / "b", site=SITE_B))
    creds = store.station_credentials("desk1")
    binding = _binding()
    only_b = seal(os.urandom(512), _header(), binding, creds, store.seal_recipients([SITE_B]))
    with pytest.raises(sealed.NotSealedForThisSiteError, match=f"site {SITE_A}") as refused:
        unseal(only_b, trust=gate_a, expected=binding, now=NOW)
    assert refused.value.code == "sealed_for_other_site"
    assert unseal(only_b, trust=gate_b, expected=binding, now=NOW).verifier_kid == store.current_verifier_kid(SITE_B)
    both = seal(os.urandom(512), _header(), binding, creds, store.seal_recipients([SITE_A, SITE_B]))
    assert unseal(both, trust=gate_a, expected=binding, now=NOW).verifier_kid == store.current_verifier_kid(SITE_A)
    assert unseal(both, trust=gate_b, expected=binding, now=NOW).verifier_kid == store.current_verifier_kid(SITE_B)


def test_five_sites_fit_in_2_kb_and_a_sixth_is_refused(store: KeyStore) -> None:
    creds = store.station_credentials("desk1")
    binding = _binding()
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(sealed.MAX_RECIPIENTS + 1)]
    sizes = {}
    for n in range(1, sealed.MAX_RECIPIENTS + 1):
        data = seal(os.urandom(512), _header(), binding, creds, [k.public_key() for k in keys[:n]])
        sizes[n] = len(data)
        trust = sealed.GateTrust.create(store.ca_certificate(), store.crl(), [keys[n - 1]])
        assert unseal(data, trust=trust, expected=binding, now=NOW).template  # the last recipient works too
    print(f"sealed size by number of sites (512-byte template): {sizes}")
    assert sizes[sealed.MAX_RECIPIENTS] <= sealed.TARGET_SEALED_SIZE
    with pytest.raises(ValueError, match="1..5"):
        seal(os.urandom(512), _header(), binding, creds, [k.public_key() for k in keys])
    with pytest.raises(ValueError, match="twice"):
        seal(os.urandom(512), _header(), binding, creds, [keys[0].public_key()] * 2)


def test_rotation_with_overlap_crosses_the_old_keys_expiry(tmp_path: Path) -> None:
    ks = KeyStore.init(tmp_path / "keys", now=NOW - timedelta(days=1), site=SITE_A)
    ks.issue_station("desk1", now=NOW - timedelta(days=1))
    creds = ks.station_credentials("desk1")
    binding = _binding()
    template = os.urandom(512)
    old_card = seal(template, _header(), binding, creds, ks.seal_recipients())
    old_kid = ks.current_verifier_kid()
    new_kid = ks.rotate_verifier(SITE_A, overlap=timedelta(days=10), now=NOW)
    assert ks.verifier_not_after(old_kid) == NOW + timedelta(days=10) and ks.verifier_not_after(new_kid) is None
    gate = load_gate_bundle(ks.export_gate("gate-a1", tmp_path / "gate", site=SITE_A))
    assert set(gate.verifier_keys) == {old_kid, new_kid}
    # inside the overlap: the old card still opens
    assert unseal(old_card, trust=gate, expected=binding, now=NOW + timedelta(days=9)).verifier_kid == old_kid
    # past the old key's end: refused with its own reason, even though the gate still holds the key
    with pytest.raises(sealed.VerifierKeyExpiredError, match="re-seal") as refused:
        unseal(old_card, trust=gate, expected=binding, now=NOW + timedelta(days=11))
    assert refused.value.code == "verifier_key_expired"
    # a re-seal without a new capture: the key officer re-wraps the content key to the current keys; the signed
    # template inside is untouched (same ciphertext), and the gate opens it with the new key
    resealed = sealed.rewrap(old_card, trust=ks.gate_trust(), recipients=ks.seal_recipients(),
                             now=NOW + timedelta(days=11))
    assert sealed.recipient_kids(resealed) == [new_kid] and sealed.recipient_kids(old_card) == [old_kid]
    opened = unseal(resealed, trust=gate, expected=binding, now=NOW + timedelta(days=11))
    assert opened.verifier_kid == new_kid and bytes(opened.template) == template
    tampered = bytearray(old_card)
    tampered[len(tampered) // 2] ^= 1
    with pytest.raises(sealed.SealedTemplateError):
        sealed.rewrap(bytes(tampered), trust=ks.gate_trust(), recipients=ks.seal_recipients(),
                      now=NOW + timedelta(days=11))
    ks.retire_verifier(old_kid)
    gate = load_gate_bundle(ks.export_gate("gate-a1", tmp_path / "gate", site=SITE_A))
    assert set(gate.verifier_keys) == {new_kid}


# ------------------------------------------------------------------------------------------- keys at rest


def test_every_private_key_file_is_encrypted_at_rest(store: KeyStore, tmp_path: Path) -> None:
    store.export_desk("desk1", tmp_path / "desk")
    store.export_gate("gate-a1", tmp_path / "gate", site=SITE_A)
    key_files = [p for root in (store.path, tmp_path) for p in root.rglob("*.key")]
    assert len(key_files) >= 6
    for path in key_files:
        pem = path.read_bytes()
        assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"), path
        assert b"-----BEGIN PRIVATE KEY-----" not in pem and b"EC PRIVATE KEY" not in pem
    # Standard PKCS#8 / PBES2 with scrypt: OpenSSL reads the parameters, and cannot open it without the passphrase.
    parsed = subprocess.run(["openssl", "asn1parse", "-in", str(key_files[0])], capture_output=True, text=True)
    assert ":PBES2" in parsed.stdout and ":scrypt" in parsed.stdout and ":aes-256-cbc" in parsed.stdout
    wrong = subprocess.run(["openssl", "pkcs8", "-in", str(key_files[0]), "-passin", "pass:wrong-passphrase"],
                           capture_output=True, text=True)
    assert wrong.returncode != 0 and "PRIVATE KEY" not in wrong.stdout
    right = subprocess.run(["openssl", "pkcs8", "-in", str(key_files[0]), "-passin",
                            f"pass:{os.environ[keyfile.PASSPHRASE_ENV]}"], capture_output=True, text=True)
    assert right.returncode == 0 and "BEGIN PRIVATE KEY" in right.stdout


def test_plain_keys_wrong_or_missing_passphrases_fail_closed(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ks = KeyStore.init(tmp_path / "keys", site=SITE_A)
    ks.issue_station("desk1")
    desk = ks.export_desk("desk1", tmp_path / "desk")
    with pytest.raises(KeystorePassphraseError, match="wrong key passphrase"):
        DeskBundle.open(desk, passphrase=b"not-the-passphrase").station_credentials("desk1")
    # a plain PEM key put in place of the encrypted one is refused, not used
    plain = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    saved = (desk / "station.key").read_bytes()
    (desk / "station.key").write_bytes(plain)
    with pytest.raises(KeystorePassphraseError, match="not encrypted at rest"):
        DeskBundle.open(desk).station_credentials("desk1")
    (desk / "station.key").write_bytes(saved)
    # no passphrase anywhere (and no terminal): nothing is decrypted, nothing is created
    monkeypatch.delenv(keyfile.PASSPHRASE_ENV, raising=False)
    monkeypatch.delenv(keyfile.PASSPHRASE_FILE_ENV, raising=False)
    with pytest.raises(KeystorePassphraseError, match=keyfile.PASSPHRASE_FILE_ENV):
        DeskBundle.open(desk).station_credentials("desk1")
    with pytest.raises(KeystorePassphraseError):
        KeyStore.init(tmp_path / "other")
    assert not (tmp_path / "other").exists()
    # a passphrase file must be the user's own and closed to others
    secret_file = tmp_path / "passphrase"
    secret_file.write_text("test-passphrase-not-secret\n")
    os.chmod(secret_file, 0o644)
    monkeypatch.setenv(keyfile.PASSPHRASE_FILE_ENV, str(secret_file))
    with pytest.raises(KeystorePassphraseError, match="chmod 600"):
        DeskBundle.open(desk).station_credentials("desk1")
    os.chmod(secret_file, 0o600)
    assert DeskBundle.open(desk).station_credentials("desk1").certificate


def test_export_refuses_the_keystore_itself_as_destination(store: KeyStore, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(store.path, copy)
    with pytest.raises(bundles.BundleRoleError):
        store.export_gate("gate-a1", copy, site=SITE_A)
