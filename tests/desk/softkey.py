"""A software FIDO2 authenticator for the desk's protocol tests: an EC P-256 key, real WebAuthn structures (CBOR
attestation object, authenticator data, client data JSON) built with python-fido2's own types and signed with
`cryptography`. The browser tests use Chromium's DevTools virtual authenticator instead."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.cose import ES256
from fido2.utils import websafe_decode, websafe_encode
from fido2.webauthn import (
    AttestationObject,
    AttestedCredentialData,
    AuthenticatorData,
    CollectedClientData,
)


class SoftKey:
    def __init__(self, rp_id: str, origin: str) -> None:
        self.rp_id = rp_id
        self.origin = origin
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.counter = 0

    def _rp_hash(self) -> bytes:
        return hashlib.sha256(self.rp_id.encode()).digest()

    def register(self, options: dict[str, Any], *, origin: str | None = None) -> dict[str, Any]:
        pk = options["publicKey"]
        challenge = websafe_decode(pk["challenge"])
        client = CollectedClientData.create("webauthn.create", challenge, origin or self.origin)
        cred = AttestedCredentialData.create(b"\0" * 16, self.credential_id,
                                             ES256.from_cryptography_key(self.key.public_key()))
        self.counter += 1
        flags = AuthenticatorData.FLAG.UP | AuthenticatorData.FLAG.UV | AuthenticatorData.FLAG.AT
        auth = AuthenticatorData.create(self._rp_hash(), flags, self.counter, bytes(cred))
        att = AttestationObject.create("none", auth, {})
        return {"id": websafe_encode(self.credential_id), "rawId": websafe_encode(self.credential_id),
                "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": websafe_encode(bytes(client)),
                             "attestationObject": websafe_encode(bytes(att))}}

    def assert_(self, options: dict[str, Any], *, origin: str | None = None, counter: int | None = None
                ) -> dict[str, Any]:
        pk = options["publicKey"]
        challenge = websafe_decode(pk["challenge"])
        client = CollectedClientData.create("webauthn.get", challenge, origin or self.origin)
        if counter is None:
            self.counter += 1
            counter = self.counter
        flags = AuthenticatorData.FLAG.UP | AuthenticatorData.FLAG.UV
        auth = AuthenticatorData.create(self._rp_hash(), flags, counter)
        sig = self.key.sign(bytes(auth) + client.hash, ec.ECDSA(hashes.SHA256()))
        return {"id": websafe_encode(self.credential_id), "rawId": websafe_encode(self.credential_id),
                "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": websafe_encode(bytes(client)),
                             "authenticatorData": websafe_encode(bytes(auth)), "signature": websafe_encode(sig)}}
