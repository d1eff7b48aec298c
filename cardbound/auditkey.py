"""The station's audit checkpoint key on the pkcs11 backend: an Ed25519 key in the home's token, never a file.

`cardbound` registers `token_signer` with `audit.checkpoint.set_signer_source` at start, so every audit log a
command opens in a home that has a token (HOME/token, made by `keys init --backend pkcs11`, or the token its
pkcs11 desk or gate bundle names)
signs its checkpoints with `audit:<NODE>` in token `cb-node` (generated there, non-extractable, on first use).
Only the public half is written, `HOME/keys/audit-<NODE>.ed25519.pub`, for `cardbound audit verify` and auditors.
A home without a token keeps the audit module's file key (`audit-<NODE>.ed25519`, 0600).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from audit.checkpoint import CheckpointError, Signer, key_name, key_path

NODE_TOKEN = "cb-node"  # noqa: S105 - a token label; the station's own token (audit checkpoint key)


def node_key_label(node_id: str) -> str:
    return f"audit:{node_id}"


def _token_dir(home_root: Path) -> Path | None:
    """The home's own token (HOME/token), else the token its desk or gate bundle names (a desk or gate home whose
    keys are in a token it does not keep under HOME/token)."""
    if (home_root / "token" / "softhsm2.conf").is_file():
        return home_root / "token"
    for bundle in ("desk-keys", "gate-keys"):
        try:
            manifest = json.loads((home_root / bundle / "bundle.json").read_text())
            conf = Path(manifest["pkcs11"]["softhsm_conf"]) if manifest.get("backend") == "pkcs11" else None
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if conf is not None and conf.is_file():
            return conf.parent
    return None


def token_signer(keys_dir: Path, node_id: str) -> Signer | None:
    """The checkpoint signer in the token of the home that `keys_dir` (HOME/keys) belongs to, or None when that
    home has no token. Fails closed (CheckpointError) when the token is there but unusable (no PIN, wrong PIN)."""
    token_dir = _token_dir(Path(keys_dir).parent)
    if token_dir is None:
        return None
    from card import pkcs11

    label = node_key_label(node_id)
    try:
        pkcs11.softhsm_init(token_dir, NODE_TOKEN, pin=pkcs11.token_pin(), so_pin=secrets.token_hex(16))
        session = pkcs11.TokenSession.open(NODE_TOKEN)
        try:
            key = session.ed25519_key(label)
        except pkcs11.TokenKeyMissingError:
            key = session.generate_ed25519(label)
    except pkcs11.TokenError as exc:
        raise CheckpointError(f"audit checkpoint key in the token: {exc}") from None
    signer = Signer(key_name(node_id), key)
    pub = key_path(Path(keys_dir), node_id)
    pub = pub.with_name(pub.name + ".pub")
    if not pub.is_file():
        pub.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        pub.write_text(signer.verifier.encode() + "\n")
    return signer


def install() -> None:
    from audit.checkpoint import set_signer_source

    set_signer_source(token_signer)


__all__ = ["NODE_TOKEN", "install", "node_key_label", "token_signer"]
