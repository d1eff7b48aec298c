"""A witness for the node logs: C2SP `tlog-cosignature` (cosignature/v1, Ed25519) on the nodes' checkpoints.

The witness reads each node's latest shipped checkpoint from the central store, checks it with the node's
*registered* key, rebuilds the tree from the shipped content and checks that it extends the last checkpoint it
cosigned for that node (same root at the old size: consistency, no fork, no roll-back), and only then adds one
signed-note signature line to the checkpoint:

    — <witness name> base64(key id[4] ‖ u64 timestamp (s, big-endian) ‖ Ed25519 signature[64])

over `cosignature/v1\\ntime <timestamp>\\n<checkpoint body>` (key id = SHA-256(name ‖ "\\n" ‖ 0x04 ‖ key)[:4]).
The cosigned note is stored centrally; a node fetches the latest one when it ships and keeps it *outside* its
database (`audit/cosigned.checkpoint` beside it), so `audit verify` catches a database rolled back to an older
copy, or forked, without anyone keeping a checkpoint by hand.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit import merkle
from audit.checkpoint import CheckpointError, VerifierKey, parse_checkpoint

ALG_COSIGNATURE_V1 = 0x04
_SIG_PREFIX = "\u2014 "
COSIGNED_FILE = "cosigned.checkpoint"


@dataclass(frozen=True)
class WitnessKey(VerifierKey):
    """A witness verifier key (signed-note vkey with signature type 0x04, cosignature/v1)."""

    ALG: ClassVar[int] = ALG_COSIGNATURE_V1
    KIND: ClassVar[str] = "witness"


@dataclass(frozen=True)
class Witness:
    name: str
    private: Ed25519PrivateKey

    @property
    def key(self) -> WitnessKey:
        raw = self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return WitnessKey(self.name, raw)


def load_or_create_witness(path: Path, name: str) -> Witness:
    """The witness's signing key: PKCS#8 PEM, 0600, created on first use, with its vkey in `<path>.pub`."""
    path = Path(path)
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise CheckpointError(f"{path}: witness key readable by others (chmod 600)")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointError(f"{path}: not an Ed25519 key")
        return Witness(name, key)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    witness = Witness(name, key)
    path.with_name(path.name + ".pub").write_text(witness.key.encode() + "\n")
    return witness


def _message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def cosign(note: str, witness: Witness, timestamp: int | None = None) -> str:
    """`note` (a signed checkpoint) with the witness's cosignature line appended."""
    if "\n\n" not in note:
        raise CheckpointError("not a signed note")
    body = note.partition("\n\n")[0] + "\n"
    ts = int(time.time()) if timestamp is None else timestamp
    sig = witness.private.sign(_message(body, ts))
    blob = base64.b64encode(witness.key.key_id + struct.pack(">Q", ts) + sig).decode()
    return f"{note}{_SIG_PREFIX}{witness.name} {blob}\n"


def verify_cosignature(note: str, key: WitnessKey) -> int:
    """The cosignature's timestamp (s) if `key` cosigned the note; CheckpointError otherwise."""
    if "\n\n" not in note:
        raise CheckpointError("not a signed note")
    body, _, sigs = note.partition("\n\n")
    body += "\n"
    for line in sigs.splitlines():
        if not line.startswith(_SIG_PREFIX):
            continue
        try:
            name, blob = line[len(_SIG_PREFIX):].split(" ")
            raw = base64.b64decode(blob, validate=True)
        except (ValueError, binascii.Error):
            continue
        if name != key.name or len(raw) != 76 or not hmac.compare_digest(raw[:4], key.key_id):
            continue
        (ts,) = struct.unpack(">Q", raw[4:12])
        try:
            Ed25519PublicKey.from_public_bytes(key.public_raw).verify(raw[12:], _message(body, ts))
        except InvalidSignature:
            continue
        return int(ts)
    raise CheckpointError(f"no valid cosignature by witness {key.name}")


# --- the node's copy -------------------------------------------------------------------------------------------


def cosigned_path(db: Path) -> Path:
    return Path(db).parent / COSIGNED_FILE


def store_cosigned(db: Path, note: str) -> None:
    """Keep the latest cosigned checkpoint beside (not inside) the node's database; never move it backwards."""
    path = cosigned_path(db)
    new = _size_of(note)
    if path.is_file():
        try:
            if _size_of(path.read_text()) > new:
                return
        except (OSError, ValueError):
            pass  # unreadable old copy: replace it
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(note)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _size_of(note: str) -> int:
    return int(note.split("\n")[1])


# --- the witness at work ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cosigned:
    node_id: str
    size: int


class WitnessRefused(Exception):
    """A node's shipped log is not consistent with what the witness cosigned before (fork or roll-back)."""


def witness_central(dsn: str, witness: Witness) -> tuple[list[Cosigned], list[str]]:
    """Cosign every node's latest shipped checkpoint that extends what this witness cosigned before.
    Returns (cosigned, refusals) — a refusal names the node and why; nothing is cosigned for it."""
    from audit.store import connect

    done: list[Cosigned] = []
    refused: list[str] = []
    with connect(dsn) as conn:
        nodes = conn.execute(
            "SELECT node_id, vkey, size, checkpoint, pruned_size FROM audit_nodes WHERE checkpoint IS NOT NULL "
            "ORDER BY node_id"
        ).fetchall()
        for node_id, vkey, _size, note, pruned in nodes:
            node_id, pruned = str(node_id), int(pruned)
            try:
                cp = parse_checkpoint(str(note), VerifierKey.decode(str(vkey)))
            except CheckpointError as exc:
                refused.append(f"node {node_id}: latest checkpoint does not verify with its registered key ({exc})")
                continue
            prev = conn.execute(
                "SELECT size, root FROM audit_cosignatures WHERE node_id=%s AND witness=%s ORDER BY size DESC "
                "LIMIT 1", (node_id, witness.name)).fetchone()
            if prev is not None and int(prev[0]) >= cp.size:
                if int(prev[0]) > cp.size:
                    refused.append(f"node {node_id}: central tree of size {cp.size} is smaller than the one "
                                   f"cosigned before ({prev[0]}): rolled back")
                continue
            if pruned:
                refused.append(f"node {node_id}: first shipped after pruning; the witness cannot rebuild its tree")
                continue
            leaves = [merkle.leaf_hash(bytes(b)) for (b,) in conn.execute(
                "SELECT body FROM audit_entries WHERE node_id=%s AND idx < %s ORDER BY idx", (node_id, cp.size))]
            if len(leaves) != cp.size:
                refused.append(f"node {node_id}: the central store lacks entries below size {cp.size}")
                continue
            levels = merkle.build_levels(leaves)
            if _root(levels, cp.size) != cp.root:
                refused.append(f"node {node_id}: shipped content does not match its checkpoint at size {cp.size}")
                continue
            if prev is not None and _root(levels, int(prev[0])) != bytes(prev[1]):
                refused.append(f"node {node_id}: checkpoint at size {cp.size} is not consistent with the one "
                               f"cosigned at size {prev[0]} (history rewritten: fork)")
                continue
            conn.execute(
                "INSERT INTO audit_cosignatures(node_id, witness, size, root, note) VALUES (%s, %s, %s, %s, %s)",
                (node_id, witness.name, cp.size, cp.root, cosign(str(note), witness)),
            )
            done.append(Cosigned(node_id, cp.size))
    return done, refused


def _root(levels: list[list[bytes]], size: int) -> bytes:
    return merkle.fold([levels[lv][ix] for lv, ix in merkle.decompose(size)])


def check_cosigned(note: str, keys: list[WitnessKey]) -> tuple[str, str] | None:
    """(code, message) of a finding about a node's kept cosigned checkpoint, or None if a given witness key
    cosigned it. Without keys: a warning that the cosignature itself was not checked."""
    if not keys:
        return ("witness-unchecked", "a cosigned checkpoint is kept beside the log, but no witness key was given "
                "(--witness-key): only the node's own signature on it was checked")
    for key in keys:
        try:
            verify_cosignature(note, key)
            return None
        except CheckpointError:
            continue
    return ("bad-cosignature", "the kept cosigned checkpoint carries no valid cosignature by "
            + ", ".join(k.name for k in keys))


def load_witness_key(path: Path) -> WitnessKey:
    return WitnessKey.decode(Path(path).read_text())
