"""Keys in a real PKCS#11 token (SoftHSM2 through python-pkcs11): generated non-extractable, used only through it.

Proves what the key custody issue asks: CKA_EXTRACTABLE false (and NEVER_EXTRACTABLE, SENSITIVE, LOCAL true),
reading CKA_VALUE fails, and the token keys do the real work: sign a sealed template and a CA certificate/CRL,
unseal at a gate by ECDH in the token, sign an audit note with EdDSA, HMAC a holder reference.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pkcs11 as p11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from card import pkcs11, pki, sealed
from card.pkcs11 import TokenError, TokenSession, Usage

PIN = "4711-test-pin"
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> TokenSession:
    home = tmp_path_factory.mktemp("station-home")
    pkcs11.softhsm_init(home / "token", "cb-test", pin=PIN, so_pin="so-" + PIN)
    session = TokenSession.open("cb-test", pin=PIN)
    yield session  # type: ignore[misc]
    session.close()


def _raw(session: TokenSession, label: str, object_class: p11.ObjectClass) -> p11.Object:
    return next(iter(session._session.get_objects({p11.Attribute.LABEL: label,  # noqa: SLF001 - the raw object
                                                   p11.Attribute.CLASS: object_class})))


@pytest.mark.parametrize("kind", ["ec-sign", "ec-derive", "ed25519", "hmac"])
def test_keys_are_generated_in_the_token_and_cannot_be_extracted(token: TokenSession, kind: str) -> None:
    label = f"k-{kind}"
    if kind == "ec-sign":
        token.generate_ec(label, usage=Usage.SIGN)
    elif kind == "ec-derive":
        token.generate_ec(label, usage=Usage.DERIVE)
    elif kind == "ed25519":
        token.generate_ed25519(label)
    else:
        token.generate_hmac(label)
    klass = p11.ObjectClass.SECRET_KEY if kind == "hmac" else p11.ObjectClass.PRIVATE_KEY
    obj = _raw(token, label, klass)
    assert obj[p11.Attribute.EXTRACTABLE] is False
    assert obj[p11.Attribute.NEVER_EXTRACTABLE] is True
    assert obj[p11.Attribute.SENSITIVE] is True and obj[p11.Attribute.ALWAYS_SENSITIVE] is True
    assert obj[p11.Attribute.LOCAL] is True  # generated on the token, not imported
    assert obj[p11.Attribute.TOKEN] is True and obj[p11.Attribute.PRIVATE] is True
    with pytest.raises(p11.AttributeSensitive):
        obj[p11.Attribute.VALUE]
    if kind != "hmac":
        with pytest.raises((p11.AttributeSensitive, p11.AttributeTypeInvalid)):
            obj[p11.Attribute.PRIVATE_EXPONENT if kind == "never" else p11.Attribute.VALUE]
    # Nor can it be wrapped out under a key we would know.
    wrapper = token._session.generate_key(p11.KeyType.AES, 256, store=False,  # noqa: SLF001
                                          template={p11.Attribute.WRAP: True})
    with pytest.raises(p11.PKCS11Error):
        wrapper.wrap_key(obj, mechanism=p11.Mechanism.AES_KEY_WRAP_PAD)
    listed = {(o.label, o.object_class): o for o in token.objects()}
    entry = listed[(label, klass.name.lower())]
    assert entry.extractable is False and entry.sensitive is True


def test_a_template_sealed_and_unsealed_with_token_keys(token: TokenSession) -> None:
    ca_key = token.generate_ec("ca", usage=Usage.SIGN)
    station_key = token.generate_ec("station:desk1", usage=Usage.SIGN)
    verifier = token.generate_ec("verifier:site-a", usage=Usage.DERIVE)
    # The CA certificate, a station certificate and the CRL are signed in the token (TBS signed, standard DER).
    ca_cert = pki.make_ca_certificate(ca_key, now=NOW - timedelta(days=1))
    ca_cert.verify_directly_issued_by(ca_cert)
    station_cert = pki.issue_station_certificate(ca_key, ca_cert, "desk1", station_key.public_key(),
                                                 now=NOW - timedelta(days=1))
    crl = pki.build_crl(ca_key, ca_cert, {}, number=1, now=NOW - timedelta(days=1))
    assert crl.is_signature_valid(ca_key.public_key())
    pki.check_station_certificate(station_cert, ca_cert, crl, now=NOW)
    assert isinstance(x509.load_der_x509_certificate(station_cert.public_bytes(pki.serialization.Encoding.DER)),
                      x509.Certificate)

    card_key = ec.generate_private_key(ec.SECP256R1())
    binding = sealed.CardBinding.for_card(os.urandom(16), card_key.public_key())
    header = sealed.TemplateHeader(0x0103, 1, "dlib-resnet", "v1", NOW, NOW + timedelta(days=30), 80, "regular",
                                   os.urandom(32))
    template = os.urandom(512)
    data = sealed.seal(template, header, binding, sealed.StationCredentials(station_cert, station_key),
                       [verifier.public_key()])
    trust = sealed.GateTrust.create(ca_cert, crl, [verifier])  # the gate's key is a token handle
    opened = sealed.unseal(data, trust=trust, expected=binding, now=NOW)
    assert bytes(opened.template) == template and opened.verifier_kid == pki.verifier_kid(verifier.public_key())
    opened.wipe()
    # A signing key cannot do ECDH and a verifier key cannot sign: usage is fixed at generation.
    with pytest.raises(TokenError):
        station_key.exchange(ec.ECDH(), card_key.public_key())
    with pytest.raises(TokenError):
        verifier.sign(b"x", ec.ECDSA(hashes.SHA256()))


def test_eddsa_and_hmac_in_the_token(token: TokenSession) -> None:
    audit = token.generate_ed25519("audit:node-1")
    note = b"cardbound-audit-node-1\n42\nroot\n"
    audit.public_key().verify(audit.sign(note), note)
    holder = token.generate_hmac("holder-ref")
    a, b = holder.mac(b"85073003328"), holder.mac(b"92021418679")
    assert len(a) == 32 and a != b and holder.mac(b"85073003328") == a
    assert a != hashlib.sha256(b"85073003328").digest()


def test_wrong_pin_missing_token_missing_key_and_no_pin_fail_closed(token: TokenSession,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    token_dir = Path(os.environ[pkcs11.SOFTHSM_CONF_ENV]).parent
    pkcs11.softhsm_init(token_dir, "cb-other", pin=PIN, so_pin="so-" + PIN)
    with pytest.raises(TokenError, match="wrong PIN"):
        TokenSession.open("cb-other", pin="0000-wrong")
    with pytest.raises(TokenError, match="no PKCS#11 token"):
        TokenSession.open("cb-nowhere", pin=PIN)
    with pytest.raises(pkcs11.TokenKeyMissingError):
        token.ec_key("station:ghost")
    with pytest.raises(TokenError, match="already holds"):
        token.generate_ec("station:desk1-dup", usage=Usage.SIGN) and token.generate_ec("station:desk1-dup",
                                                                                      usage=Usage.SIGN)
    monkeypatch.delenv(pkcs11.PIN_ENV, raising=False)
    monkeypatch.delenv(pkcs11.PIN_FILE_ENV, raising=False)
    with pytest.raises(TokenError, match="PIN is needed"):
        TokenSession.open("cb-other")
    pin_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"cb-pin-{os.getpid()}"
    pin_file.write_text(PIN + "\n")
    try:
        os.chmod(pin_file, 0o644)
        monkeypatch.setenv(pkcs11.PIN_FILE_ENV, str(pin_file))
        with pytest.raises(TokenError, match="chmod 600"):
            TokenSession.open("cb-other")
        os.chmod(pin_file, 0o600)
        TokenSession.open("cb-other").close()
    finally:
        pin_file.unlink()
