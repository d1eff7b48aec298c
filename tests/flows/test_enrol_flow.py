"""The enrolment flow through the real PC/SC chain (pcscd + virtual card), with real photos.

The biometric capture here runs in the test process for speed; the sandboxed worker is exercised by the
end-to-end CLI tests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from biometric import DESK, FaceEngine, load_path
from biometric.capture import enrolment_template
from card import transport
from card.personalise import read_sealed_template
from card.piv import PivSession
from card.sealed import CardBinding, unseal
from enrol.flow import CapturedTemplate, CaptureRefused, EnrolError, EnrolFailure, EnrolRequest, enrol

STATION = "desk-test"  # issued by the keystore fixture in conftest.py


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    e = FaceEngine(quality=DESK)
    e.warm_up()
    return e


def photo_capture(engine: FaceEngine, photos: list[Path]):  # type: ignore[no-untyped-def]
    def capture() -> CapturedTemplate:
        got = enrolment_template(engine, (load_path(p) for p in photos), num_jitters=1)
        if got.template is None:
            raise CaptureRefused(EnrolFailure.QUALITY, "no photo passed the quality gate", got.reasons)
        out = CapturedTemplate(bytearray(got.template.to_bytes()), got.frames_used, got.frames_seen, got.quality)
        got.wipe()
        return out

    return capture


def request(**kw: object) -> EnrolRequest:
    base: dict[str, object] = dict(
        holder_ref=b"\x01" * 32,
        category="regular",
        valid_until=datetime.now(UTC).replace(microsecond=0) + timedelta(days=365),
        station=STATION,
        operator="op-1",
    )
    base.update(kw)
    return EnrolRequest(**base)  # type: ignore[arg-type]


def test_enrol_blank_card_then_refuse_second_enrolment_then_replace(
    virtual_card, keystore, audit_log, engine, faces_dir  # type: ignore[no-untyped-def]
) -> None:
    obama = faces_dir / "portraits/face_recognition/obama"
    with transport.connect(virtual_card.reader_name, timeout=5) as conn:
        session = PivSession(conn)
        result = enrol(request(), session=session, keys=keystore, capture=photo_capture(engine, [obama / "obama.jpg"]),
                       audit=audit_log)
        assert not result.replaced and result.frames_used == 1
        data = read_sealed_template(session)
        assert data is not None and len(data) == result.container_bytes <= 2048

        # the card now reads back as a valid template bound to this card, for a gate holding the trust bundle
        from card.cardauth import authenticate_card

        card = authenticate_card(session)
        u = unseal(data, trust=keystore.gate_trust(), expected=CardBinding.for_card(card.guid, card.public_key),
                   now=datetime.now(UTC))
        assert u.header.visitor_category == "regular" and len(u.template) == 512
        u.wipe()

        with pytest.raises(EnrolError) as exc:
            enrol(request(), session=session, keys=keystore, capture=photo_capture(engine, [obama / "obama1.jpg"]),
                  audit=audit_log)
        assert exc.value.failure is EnrolFailure.ALREADY_ENROLLED
        assert read_sealed_template(session) == data  # untouched

        again = enrol(request(replace=True), session=session, keys=keystore,
                      capture=photo_capture(engine, [obama / "obama3.jpg"]), audit=audit_log)
        assert again.replaced and again.card_id == result.card_id
        assert read_sealed_template(session) != data

    types = [audit_log.entry(i).record()["type"] for i in range(audit_log.size)]
    assert types.count("enrolment.completed") == 2
    assert "enrolment.refused" in types and "card.replaced" in types


def test_quality_refusal_leaves_blank_card_untouched(
    virtual_card, keystore, audit_log, engine, faces_dir  # type: ignore[no-untyped-def]
) -> None:
    group = faces_dir / "portraits/face_recognition/_multi_person/obama_and_biden.jpg"
    with transport.connect(virtual_card.reader_name, timeout=5) as conn:
        session = PivSession(conn)
        with pytest.raises(EnrolError) as exc:
            enrol(request(), session=session, keys=keystore, capture=photo_capture(engine, [group]), audit=audit_log)
        assert exc.value.failure is EnrolFailure.QUALITY
        assert "MULTIPLE_FACES" in exc.value.reasons
        from card.personalise import CardState, personalisation_state

        assert personalisation_state(session) is CardState.BLANK
    rec = audit_log.entry(audit_log.size - 1).record()
    assert rec["type"] == "enrolment.refused"


def test_delete_source_overwrites_and_unlinks(tmp_path: Path) -> None:
    from enrol.flow import destroy_file

    f = tmp_path / "sample.bin"
    f.write_bytes(b"x" * 5000)
    destroy_file(f)
    assert not f.exists()
