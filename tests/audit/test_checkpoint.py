"""Checkpoints interoperate with the signed-note format (golang.org/x/mod/sumdb/note known-answer vector)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import (
    BadSignatureError,
    Checkpoint,
    CheckpointError,
    Signer,
    VerifierKey,
    load_or_create_signer,
    open_note,
    parse_checkpoint,
    sign_note,
)

# The example of golang.org/x/mod/sumdb/note (its package documentation and note_test.go).
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY_SEED = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"  # from PRIVATE+KEY+PeterNeumann+c74f20a3+...
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIG = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
GO_NOTE = GO_TEXT + "\n\u2014 PeterNeumann " + GO_SIG + "\n"


def test_go_sumdb_note_known_answer() -> None:
    key = VerifierKey.decode(GO_VKEY)
    assert key.encode() == GO_VKEY
    assert open_note(GO_NOTE, key) == GO_TEXT
    seed = base64.b64decode(GO_SKEY_SEED)[1:]
    signer = Signer("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed))
    assert signer.verifier.encode() == GO_VKEY
    assert sign_note(GO_TEXT, signer) == GO_NOTE  # Ed25519 is deterministic: byte-identical
    with pytest.raises(BadSignatureError):
        open_note(GO_NOTE.replace("problem,", "problem;"), key)


@pytest.mark.parametrize(
    "bad", ["PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "PeterNeumann+c74f20a3+AR", "x"]
)
def test_malformed_verifier_keys_refused(bad: str) -> None:
    with pytest.raises(CheckpointError):
        VerifierKey.decode(bad)


def test_checkpoint_round_trip_and_key_file(tmp_path: Path) -> None:
    signer = load_or_create_signer(tmp_path / "keys" / "audit-n1.ed25519", "n1")
    assert (tmp_path / "keys" / "audit-n1.ed25519").stat().st_mode & 0o777 == 0o600
    again = load_or_create_signer(tmp_path / "keys" / "audit-n1.ed25519", "n1")
    assert again.verifier == signer.verifier
    cp = Checkpoint("cardbound.audit/n1", 42, bytes(range(32)), 1_700_000_000_000)
    note = cp.sign(signer)
    assert note.startswith("cardbound.audit/n1\n42\n" + base64.b64encode(bytes(range(32))).decode() + "\ntime ")
    assert parse_checkpoint(note, signer.verifier) == cp
    other = load_or_create_signer(tmp_path / "other.ed25519", "n1")
    with pytest.raises(BadSignatureError):
        parse_checkpoint(note, other.verifier)
    (tmp_path / "keys" / "audit-n1.ed25519").chmod(0o644)
    with pytest.raises(CheckpointError, match="readable by others"):
        load_or_create_signer(tmp_path / "keys" / "audit-n1.ed25519", "n1")
