"""WebAuthn ceremonies with python-fido2's `Fido2Server`, plus the three checks the library leaves to its caller
(see docs/operator-guide.md, "Security"):

- the ceremony `state` lives server-side, in the desk session, and is *consumed* before it is verified, so the
  same response can never be verified twice (the library would accept a replay against the same state);
- the sign counter is compared with the stored one: it must grow (an authenticator that never counts, both 0, is
  accepted, as WebAuthn §6.1.1 allows); a counter that does not grow means a cloned key or a replay;
- `verify_origin` is an exact string comparison with the desk's own origin (the library's default accepts any
  subdomain or port of the RP id, and plain-HTTP localhost).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestedCredentialData,
    AuthenticationResponse,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    RegistrationResponse,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from enrol.desk.store import Operator


class CeremonyError(Exception):
    """A registration or login was refused. `code` is an audit reason code and a catalogue key."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True)
class LoginResult:
    credential_id: bytes
    sign_count: int


class WebAuthn:
    def __init__(self, rp_id: str, origin: str, rp_name: str = "cardbound desk") -> None:
        self.origin = origin
        self.server = Fido2Server(
            PublicKeyCredentialRpEntity(name=rp_name, id=rp_id),
            attestation=None,
            verify_origin=lambda o: hmac.compare_digest(o.encode(), origin.encode()),
        )

    # registration ---------------------------------------------------------------------------------------

    def register_begin(self, operator: str, existing: Operator | None) -> tuple[dict[str, Any], Any]:
        user = PublicKeyCredentialUserEntity(name=operator, id=operator.encode("utf-8"), display_name=operator)
        excluded = [AttestedCredentialData(bytes.fromhex(c.data)) for c in existing.credentials] if existing else []
        options, state = self.server.register_begin(
            user, excluded, resident_key_requirement=ResidentKeyRequirement.DISCOURAGED,
            user_verification=UserVerificationRequirement.PREFERRED,
        )
        return dict(options), state

    def register_complete(self, state: Any, response: Mapping[str, Any]) -> tuple[bytes, bytes, int]:
        """(credential id, attested credential data bytes, sign counter)."""
        if state is None:
            raise CeremonyError("no_ceremony", "no registration in progress (or it was already used)")
        try:
            parsed = RegistrationResponse.from_dict(response)
            auth_data = self.server.register_complete(state, parsed)
        except (ValueError, KeyError, TypeError) as exc:
            raise CeremonyError(_reason(exc), str(exc)) from None
        cred = auth_data.credential_data
        if cred is None:
            raise CeremonyError("no_credential", "the response carries no credential")
        return bytes(cred.credential_id), bytes(cred), int(auth_data.counter)

    # login ----------------------------------------------------------------------------------------------

    def login_begin(self, operator: Operator) -> tuple[dict[str, Any], Any]:
        creds = [AttestedCredentialData(bytes.fromhex(c.data)) for c in operator.credentials]
        options, state = self.server.authenticate_begin(creds, user_verification=UserVerificationRequirement.PREFERRED)
        return dict(options), state

    def login_complete(self, state: Any, operator: Operator, response: Mapping[str, Any]) -> LoginResult:
        if state is None:
            raise CeremonyError("no_ceremony", "no login in progress (or it was already used)")
        creds = [AttestedCredentialData(bytes.fromhex(c.data)) for c in operator.credentials]
        try:
            parsed = AuthenticationResponse.from_dict(response)
            cred = self.server.authenticate_complete(state, creds, parsed)
        except (ValueError, KeyError, TypeError) as exc:
            raise CeremonyError(_reason(exc), str(exc)) from None
        new = int(parsed.response.authenticator_data.counter)
        stored = next(c.sign_count for c in operator.credentials if c.credential_id == cred.credential_id.hex())
        if (new or stored) and new <= stored:
            raise CeremonyError("sign_counter", f"sign counter {new} did not grow past {stored} (cloned key?)")
        return LoginResult(bytes(cred.credential_id), new)


def _reason(exc: Exception) -> str:
    text = str(exc).lower()
    for needle, code in (("origin", "wrong_origin"), ("challenge", "wrong_challenge"), ("rp id", "wrong_rp"),
                         ("signature", "bad_signature"), ("unknown credential", "unknown_credential"),
                         ("user present", "no_user_presence"), ("user verification", "no_user_verification")):
        if needle in text:
            return code
    return "bad_response"
