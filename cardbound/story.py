"""The demo's story, scene by scene, on the real components. Used by `cardbound demo` and by the end-to-end tests
(which assert every decision), so the story shown to people is the story that is tested.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import verify as verify_pkg
from audit import AuditLog
from audit.verify import verify_database
from biometric.capture import SampleSource
from biometric.isolation import FaceWorker
from card import keyfile, transport
from card.bundles import DeskBundle, gate_holder_ref_key_spec, load_gate_bundle
from card.holderref import HolderRefKey
from card.keystore import KeyStore
from card.personalise import personalise, read_guid, read_sealed_template, write_sealed_template
from card.piv import DEFAULT_MANAGEMENT_KEY, ManagementKeyType, ObjectId, PivSession
from card.virtual.harness import PcscDaemon, VirtualCardProcess
from cardbound.home import Home
from enrol.facecapture import worker_capture
from enrol.flow import EnrolRequest, enrol
from verify.banlist import BanEntry, format_banlist, pseudonymise
from verify.decision import Decision
from verify.facematch import worker_match
from verify.flow import Gate
from verify.station import load_settings

STATION = "desk-demo"
GATE_ID = "gate-demo"
SITE = "BEANR-DEMO"  # the gate's port facility; the desk also seals to a second site, as for a holder of both
OTHER_SITE = "BEZEE-DEMO"
HOLDER_KEY_FILE = "holder-ref.key"
PORTRAITS = Path("portraits") / "face_recognition"


@dataclass(frozen=True)
class Person:
    name: str
    national_number: str
    category: str
    enrol_photos: tuple[str, ...]
    live_photo: str


# Made-up national register numbers (valid mod-97 check digits, nobody's): the desk turns them into pseudonymous
# holder references with the processor's key and keeps neither.
PEOPLE = (
    Person("Person A", "85.07.30-033.28", "regular", ("obama/obama.jpg", "obama/obama3.jpg"), "obama/obama2.jpg"),
    Person("Person B", "92.02.14-186.79", "occasional", ("rose_leslie/img1.jpg",), "rose_leslie/img2.jpg"),
)


@dataclass
class Scene:
    title: str
    expected: str  # "accept" | "reject"
    decision: Decision


Say = Callable[[str], None]


def _demo_secret(home: Home, say: Say, *, file_env: str, value_env: str, name: str, make: Callable[[], str],
                 said: str) -> None:
    """The operator's secret if `$file_env` or `$value_env` is set; else one made once for the demo in
    HOME/config/`name` (0600), said with `said` (its path first), and pointed to by `$file_env`."""
    if os.environ.get(file_env) or os.environ.get(value_env):
        return
    path = home.config / name
    if not path.exists():
        home.config.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(make() + "\n")
        say(said.format(path=path))
    os.environ[file_env] = str(path)


def demo_passphrase(home: Home, say: Say) -> None:
    """Private keys are encrypted at rest: without a passphrase from the operator, the demo makes one (0600) in
    its home and says so. A real station gets it from its service manager or the operator."""
    _demo_secret(home, say, file_env=keyfile.PASSPHRASE_FILE_ENV, value_env=keyfile.PASSPHRASE_ENV,
                 name="demo-key-passphrase", make=lambda: secrets.token_urlsafe(24),
                 said="keys: demo passphrase for the encrypted key files written to {path} (0600; a real station is "
                      f"given ${keyfile.PASSPHRASE_FILE_ENV} by its operator)")


def demo_token_pin(home: Home, say: Say) -> None:
    """The PKCS#11 token's user PIN: the operator's, else one made for the demo (0600) in its home."""
    from card import pkcs11

    _demo_secret(home, say, file_env=pkcs11.PIN_FILE_ENV, value_env=pkcs11.PIN_ENV, name="demo-token-pin",
                 make=lambda: secrets.token_hex(8),
                 said="keys: demo PIN of the SoftHSM2 tokens written to {path} (0600; a real station is given "
                      f"${pkcs11.PIN_FILE_ENV} by its operator)")


def _keys(home: Home, say: Say, backend: str) -> KeyStore:
    """The key officer's keystore (offline CA station): only `keys` operations use it."""
    demo_passphrase(home, say)
    if backend == "pkcs11":
        demo_token_pin(home, say)
    try:
        keys = KeyStore.open(home.keystore)
        keys.ca_certificate()
        say(f"key officer: using the keystore {home.keystore} ({keys.backend} backend)")
    except Exception:
        keys = KeyStore.init(home.keystore, site=SITE, backend=backend)
        keys.add_site(OTHER_SITE)
        where = (f"non-extractable in SoftHSM2 tokens under {keys.token_dir}" if backend == "pkcs11" else
                 "encrypted at rest")
        say(f"key officer: new issuing CA, CRL and verifier keys for sites {SITE} and {OTHER_SITE} in "
            f"{home.keystore} (private keys {where})")
    if STATION not in {s.name for s in keys.stations()}:
        keys.issue_station(STATION)
        say(f"key officer: station certificate issued for {STATION}")
    return keys


def _export_bundles(keys: KeyStore, home: Home, say: Say) -> None:
    keys.export_desk(STATION, home.desk_bundle)
    keys.export_gate(GATE_ID, home.gate_bundle, site=SITE)
    say(f"key officer: desk bundle -> {home.desk_bundle} (no CA key, no verifier private key; seals to "
        f"{SITE} and {OTHER_SITE}); gate bundle -> {home.gate_bundle} (site {SITE}'s verifier key only)")


def _holder_key(keys: KeyStore, say: Say) -> HolderRefKey:
    """The processor's holder-reference key (HMAC key for pseudonymous holder references): a non-extractable key
    in token cb-holder-ref with the pkcs11 backend, else a 0600 file in the keystore."""
    if not keys.has_holder_ref_key():
        keys.new_holder_ref_key()
        say("keystore: new holder-reference key " + ("in token cb-holder-ref (non-extractable HMAC key)"
                                                     if keys.backend == "pkcs11" else HOLDER_KEY_FILE))
    key: HolderRefKey = keys.holder_ref_key()
    return key


def _gate_config(workdir: Path, ban_file: Path, key_spec: str) -> Path:
    """The demo gate's configuration: the example policy with this gate's identity and lists."""
    example = (Path(verify_pkg.__file__).parent / "gate.example.toml").read_text()
    policy = example[example.index("[policy.level1]"):]
    path = workdir / "gate.toml"
    path.write_text(
        "[gate]\n"
        f'id = "{GATE_ID}"\n'
        'site = "BEANR-DEMO"\n'
        "time_budget_ms = 2000\n"
        f'ban_list = "{ban_file}"\n'
        f'ban_list_key = "{key_spec}"\n\n' + policy
    )
    return path


def _session(reader: str) -> tuple[transport.PcscConnection, PivSession]:
    conn = transport.connect(reader, timeout=10.0)
    return conn, PivSession(conn)


def audit_signer(keys: KeyStore, home: Home, say: Say) -> Any:
    """With the token backend the station's audit checkpoint key is an Ed25519 key in its token, too (the same
    key `cardbound` commands use: cardbound.auditkey)."""
    if keys.backend != "pkcs11":
        return None
    from cardbound.auditkey import NODE_TOKEN, node_key_label, token_signer

    signer = token_signer(home.keystore, home.node_id)
    say(f"audit: checkpoint key {node_key_label(home.node_id)} in token {NODE_TOKEN} (non-extractable)")
    return signer


def tell(home: Home, faces: Path, workdir: Path, *, say: Say, lang: str = "en", backend: str = "file") -> list[Scene]:
    scenes: list[Scene] = []
    photos = faces / PORTRAITS
    keys = _keys(home, say, backend)
    signer = audit_signer(keys, home, say)
    holder_key = _holder_key(keys, say)  # the ISPS platform's side: ban lists are made with it
    _export_bundles(keys, home, say)
    ban_file = workdir / "banlist.txt"
    ban_file.write_text(format_banlist([], holder_key))
    gate_key = gate_holder_ref_key_spec(home.gate_bundle)  # the gate's own copy (file) or the token key's URI
    assert gate_key is not None
    gate_config = _gate_config(workdir, ban_file, gate_key)
    desk = DeskBundle.open(home.desk_bundle)  # what the desk holds
    desk_holder_key = desk.holder_ref_key()  # the desk pseudonymises with its bundle's key (in the token: pkcs11)
    trust = load_gate_bundle(home.gate_bundle)  # what the gate holds
    valid_until = (datetime.now(UTC) + timedelta(days=365)).replace(microsecond=0)
    with PcscDaemon() as _pcscd, AuditLog.open_station(home.root, node_id=home.node_id,
                                                                      signer=signer) as log, FaceWorker() as worker:
        sb = worker.sandbox
        if sb is not None:
            say(f"pcscd running; face worker (pid {sb.pid}) sandboxed: file size limit {sb.fsize_limit[0]}, "
                f"core limit {sb.core_limit[0]}, dumpable {sb.dumpable}, memory locked {sb.memory_locked}")
        cards = [VirtualCardProcess(workdir / f"card-{i}.json", reader=i) for i in range(2)]
        try:
            for card in cards:
                card.insert()
            say("two blank virtual PIV cards inserted in 'Virtual PCD 00 00' and 'Virtual PCD 00 01'")
            # -- card issuance at the key officer (the CA signs each card's 9E certificate; a desk cannot)
            for card in cards:
                conn, session = _session(card.reader_name)
                with conn:
                    personalise(session, keys.issue_card_auth_certificate, keys.management_key_for)
            say("key officer: both cards personalised (9E key generated on each card, certificate by the CA)")

            # -- enrolment desk
            for person, card in zip(PEOPLE, cards, strict=True):
                source = SampleSource.photos(*(str(photos / x) for x in person.enrol_photos))
                conn, session = _session(card.reader_name)
                with conn:
                    result = enrol(
                        EnrolRequest(pseudonymise(person.national_number, desk_holder_key), person.category,
                                     valid_until, STATION, "operator-demo"),
                        session=session,
                        keys=desk,
                        capture=functools.partial(worker_capture, worker, source, 3, lang),
                        audit=log,
                    )
                say(f"enrolled {person.name} ({person.category}) on card {result.card_id}: "
                    f"{result.frames_used} photo(s), {result.container_bytes} B sealed, "
                    f"{result.timings_ms['total']:.0f} ms; the template exists only on the card now")

            settings = load_settings(gate_config, home)
            if settings.level_problem():  # a new gate runs at level 3 until the duty officer sets the level
                settings.set_security_level(1, operator="duty-officer-demo", log=log)
            say(f"gate {settings.gate_id}: policy from {gate_config.name}, ban list {settings.bans!r}, "
                f"ISPS security level {settings.security_level()}")
            gate = Gate(settings.gate_id, trust, settings.policy, settings.security_level,
                        worker_match(worker, _photo(photos, ""), settings.time_budget_s), log, bans=settings.bans,
                        revoked=settings.revoked)

            def present(title: str, expected: str, card: VirtualCardProcess, live: str) -> Decision:
                gate.match = worker_match(worker, _photo(photos, live), 2.0)
                conn, session = _session(card.reader_name)
                with conn:
                    d = gate.decide(session)
                scenes.append(Scene(title, expected, d))
                say(f"gate: {title}: {'ACCESS' if d.accepted else 'REFUSED'} ({d.reason.value}) — {d.message(lang)}")
                return d

            a, b = PEOPLE
            present("Person A, own card", "accept", cards[0], a.live_photo)
            present("Person B, own card", "accept", cards[1], b.live_photo)
            present("Person B presents Person A's card", "reject", cards[0], b.live_photo)

            # -- tampering: one bit of the sealed template changed on the card (an attacker with write access)
            mgmt_a = desk.management_key_for(_guid(cards[0]))
            original = _read(cards[0])
            tampered = bytearray(original)
            tampered[len(tampered) // 2] ^= 0x01
            _write(cards[0], mgmt_a, bytes(tampered))
            present("tampered card (one bit of the template flipped)", "reject", cards[0], a.live_photo)
            _write(cards[0], mgmt_a, original)

            # -- copy: Person A's sealed template copied onto Person B's genuine card
            mgmt_b = desk.management_key_for(_guid(cards[1]))
            original_b = _read(cards[1])
            _write(cards[1], mgmt_b, original)
            present("Person A's template copied onto Person B's card", "reject", cards[1], a.live_photo)
            _write(cards[1], mgmt_b, original_b)

            # -- clone: every readable object of card A copied onto a blank card (it lacks A's private 9E key)
            cards[1].remove()
            clone = VirtualCardProcess(workdir / "clone.json", reader=1).insert()
            _clone_readable_objects(cards[0], clone)
            present("cloned card (all readable data of A's card on a blank card)", "reject", clone, a.live_photo)
            clone.remove()
            cards[1].insert()

            # -- port ban (art. 2.5.2.81): Person B's holder reference on the ban list
            until = datetime.now(UTC).date() + timedelta(days=30)
            ban_file.write_text(format_banlist([BanEntry(pseudonymise(b.national_number, holder_key), until)],
                                               holder_key))
            gate.bans = load_settings(gate_config, home).bans  # a gate reloads its lists when they change
            present("Person B while on the port-ban list", "reject", cards[1], b.live_photo)
        finally:
            for card in cards:
                card.stop()
        log.checkpoint("demo")
    report = verify_database(home.audit_db, key=None if signer is None else signer.verifier)
    say(f"audit log verified: {report.summary()}" if report.ok else
        "AUDIT LOG VERIFICATION FAILED: " + "; ".join(f.line() for f in report.findings))
    return scenes


def _photo(root: Path, rel: str) -> SampleSource:
    return SampleSource.photos(str(root / rel)) if rel else SampleSource.photos(str(root))


@contextlib.contextmanager
def _piv(card: VirtualCardProcess) -> Iterator[PivSession]:
    """A selected PIV session on the card in `card`'s reader, closed afterwards."""
    conn, session = _session(card.reader_name)
    with conn:
        session.select()
        yield session


def _guid(card: VirtualCardProcess) -> bytes:
    with _piv(card) as session:
        guid = read_guid(session)
    assert guid is not None
    return guid


def _read(card: VirtualCardProcess) -> bytes:
    with _piv(card) as session:
        data = read_sealed_template(session)
    assert data is not None
    return data


def _write(card: VirtualCardProcess, mgmt_key: bytes, data: bytes) -> None:
    with _piv(card) as session:
        write_sealed_template(session, mgmt_key, data)


def _clone_readable_objects(source: VirtualCardProcess, blank: VirtualCardProcess) -> None:
    with _piv(source) as session:
        objects = {oid: session.get_data_or_none(oid) for oid in (ObjectId.CHUID, ObjectId.CARD_AUTH,
                                                                 ObjectId.SEALED_TEMPLATE)}
    with _piv(blank) as session:
        session.authenticate(ManagementKeyType.TDES, DEFAULT_MANAGEMENT_KEY)
        for oid, data in objects.items():
            if data is not None:
                session.put_data(oid, data)
