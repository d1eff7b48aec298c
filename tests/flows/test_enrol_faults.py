"""A fault at every step of an enrolment leaves a log that says how far it got, and a card that is either in its
previous valid state or clearly not enrolled (issue 9, point 3).

Real chain: pcscd + vsmartcard-vpcd + the virtual card with its fault injection (`Faults.drop_after`: the card is
pulled when APDU N+1 arrives), a real audit log, a real keystore. The template is computed once from a real photo
in this process (the sandboxed worker is exercised by the CLI tests) and copied for each run.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit import AuditLog
from biometric import DESK, FaceEngine, load_path
from biometric.capture import SampleSource, enrolment_template
from biometric.isolation import FaceWorker
from card import transport
from card.personalise import CardState, personalisation_state, read_sealed_template
from card.piv import PivSession
from card.register import CardRegister
from card.virtual.vpcd import Faults
from enrol.facecapture import worker_capture
from enrol.flow import CapturedTemplate, EnrolError, EnrolFailure, EnrolRequest, SourceFile, enrol
from enrol.rules import EnrolmentRules

STATION = "desk-test"


@pytest.fixture(scope="module")
def template(faces_dir: Path) -> bytes:
    engine = FaceEngine(quality=DESK)
    got = enrolment_template(engine, [load_path(faces_dir / "portraits/face_recognition/obama/obama.jpg")])
    assert got.template is not None
    raw = got.template.to_bytes()
    got.wipe()
    return raw


def capture_of(template: bytes, before: Callable[[], None] | None = None) -> Callable[[], CapturedTemplate]:
    def capture() -> CapturedTemplate:
        if before is not None:
            before()
        return CapturedTemplate(bytearray(template), 1, 1, 80, 0.0)

    return capture


def request(**kw: Any) -> EnrolRequest:
    base: dict[str, Any] = dict(holder_ref=b"\x05" * 32, category="regular",
                                valid_until=datetime.now(UTC).replace(microsecond=0) + timedelta(days=200),
                                station=STATION, operator="op-f")
    base.update(kw)
    return EnrolRequest(**base)


def events(log: AuditLog, since: int = 0) -> list[dict[str, Any]]:
    return [log.entry(i).record() for i in range(since, log.size)]


def card_view(card: Any) -> tuple[CardState, bytes | None]:
    """(personalisation state, sealed template) of the card as a gate would find it."""
    card.insert(Faults())
    with transport.connect(card.reader_name, timeout=5) as conn:
        session = PivSession(conn)
        state = personalisation_state(session)
        data = read_sealed_template(session)
    card.remove()
    return state, data


def run_once(card: Any, keystore: Any, log: AuditLog, capture: Callable[[], CapturedTemplate],
             **kw: Any) -> EnrolError | None:
    try:
        with transport.connect(card.reader_name, timeout=5) as conn:
            enrol(request(**kw), session=PivSession(conn), keys=keystore, capture=capture, audit=log,
                  rules=EnrolmentRules.default())
    except EnrolError as exc:
        return exc
    except transport.TransportError:  # pulled before the flow began (the SELECT itself)
        return EnrolError(EnrolFailure.CARD_REMOVED, "pulled before the flow", stage="connect")
    return None


@pytest.mark.parametrize("previous", [False, True], ids=["blank-card", "re-enrolment"])
def test_card_pulled_at_every_apdu(virtual_card_factory, keystore, audit_log, template, tmp_path,  # type: ignore[no-untyped-def]
                                   previous: bool) -> None:
    base = tmp_path / "base.json"
    old: bytes | None = None
    if previous:  # a card enrolled once: a failed re-enrolment must leave it valid as it was, or clearly empty
        card = virtual_card_factory(image=base)
        assert run_once(card, keystore, audit_log, capture_of(template)) is None
        card.remove()
        old = card_view(card)[1]
        assert old is not None
    n, completed = 0, False
    while not completed:
        image = tmp_path / f"card-{n}.json"
        if previous:
            shutil.copyfile(base, image)
        card = virtual_card_factory(image=image, faults=Faults(drop_after=n))
        since = audit_log.size
        err = run_once(card, keystore, audit_log, capture_of(template), replace=previous)
        card.remove()
        log = events(audit_log, since)
        state, data = card_view(card)
        if err is None:
            completed = True
            assert [e["type"] for e in log][-1] == "enrolment.completed"
            assert data is not None and data != old
            break
        assert err.failure in (EnrolFailure.CARD_REMOVED, EnrolFailure.CARD_ERROR, EnrolFailure.NO_CARD), err
        types = [e["type"] for e in log]
        if err.stage != "connect":
            # the log says how far it got: started ... refused with the stage
            assert types[0] == "enrolment.started" and types[-1] == "enrolment.refused", types
            refused = log[-1]["payload"]
            assert refused["stage"] == err.stage
        writing = [e for e in log if e["type"] == "card.writing"]
        if data is not None and data != old:
            # the new template is on the card only when the write itself went through: the log must say the
            # write was sent (card.writing step=template) and that the read-back was not confirmed
            assert err.stage == "readback" and err.card_state == "unverified", (n, err.stage)
            assert writing and writing[-1]["payload"]["step"] == "template"
        elif previous:
            assert data == old or data is None, n  # previous valid state, or clearly not enrolled
        else:
            assert data is None or state is not CardState.PERSONALISED, n  # clearly not enrolled
        n += 1
        assert n < 80, "enrolment never completed"
    assert n >= 8  # the pull was tried at every APDU of a real enrolment


class FailingAudit(AuditLog):
    """The real audit log whose `fail_at`-th append (0-based, counting append_many calls) raises, like a full disk."""

    fail_at: int = -1
    calls: int = 0

    def append_many(self, events):  # type: ignore[no-untyped-def, override]
        n = self.calls
        self.calls += 1
        if n == self.fail_at:
            raise OSError(28, "No space left on device")
        return super().append_many(events)


def test_audit_append_failing_at_every_step(virtual_card_factory, keystore, template, tmp_path) -> None:  # type: ignore[no-untyped-def]
    step = 0
    while True:
        log = FailingAudit.open(tmp_path / f"a{step}.sqlite3", node_id="test-node", key_file=tmp_path / f"k{step}")
        log.fail_at, log.calls = step, 0
        card = virtual_card_factory(image=tmp_path / f"card-a{step}.json")
        err = run_once(card, keystore, log, capture_of(template))
        card.remove()
        types = [e["type"] for e in events(log)]
        log.close()
        state, data = card_view(card)
        if err is None:
            assert types[-1] == "enrolment.completed"
            break
        assert err.failure is EnrolFailure.AUDIT, (step, err, err.stage, types)
        # the card agrees with the log: a template stays on the card only if card.written made it into the log
        if "card.written" in types:
            assert data is not None and err.card_state == "enrolled"
        else:
            assert data is None, (step, types)
            assert err.card_state in ("unchanged", "not_enrolled")
        if "card.writing" not in types:
            assert state is CardState.BLANK  # nothing was written ahead of the log
        step += 1
        assert step < 10
    assert step >= 4  # started, writing(personalise), writing(template), written, completed


def test_destroy_failing_is_audited_not_a_traceback(virtual_card, keystore, audit_log, template, tmp_path) -> None:  # type: ignore[no-untyped-def]
    photo = tmp_path / "arrived.jpg"
    photo.write_bytes(b"stand-in: the capture below does not read it")
    kept = tmp_path / "kept.jpg"
    kept.write_bytes(b"kept by the operator")
    since = audit_log.size
    with transport.connect(virtual_card.reader_name, timeout=5) as conn:
        result = enrol(
            request(sources=(SourceFile(photo, destroy=True), SourceFile(kept, destroy=False))),
            session=PivSession(conn), keys=keystore, audit=audit_log, rules=EnrolmentRules.default(),
            capture=capture_of(template, before=photo.unlink),  # the file vanishes: its destruction must fail
        )
    assert [d.outcome for d in result.disposals] == ["failed", "kept"]
    assert "FileNotFoundError" in result.disposals[0].detail
    log = events(audit_log, since)
    destroyed = [e for e in log if e["type"] == "source.destroyed"]
    assert [e["payload"]["outcome"] for e in destroyed] == ["failed", "kept"]
    done = log[-1]["payload"]
    assert log[-1]["type"] == "enrolment.completed"
    assert (done["source_kind"], done["sources_destroyed"], done["sources_kept"], done["sources_failed"]) == \
        ("file", 0, 1, 1)
    assert kept.exists()


def test_worker_killed_mid_capture_leaves_the_card_untouched(virtual_card, keystore, audit_log, faces_dir) -> None:  # type: ignore[no-untyped-def]
    source = SampleSource.photos(*(str(faces_dir / "portraits/face_recognition/obama" / f) for f in
                                   ("obama3.jpg", "obama.jpg", "obama3.jpg")))
    with FaceWorker() as worker:
        pid = worker.pid
        assert pid is not None

        def capture() -> CapturedTemplate:
            killer = threading.Timer(0.3, os.kill, (pid, signal.SIGKILL))
            killer.start()
            try:
                return worker_capture(worker, source, 3, "en")
            finally:
                killer.cancel()

        since = audit_log.size
        with transport.connect(virtual_card.reader_name, timeout=5) as conn:
            session = PivSession(conn)
            with pytest.raises(EnrolError) as exc:
                enrol(request(), session=session, keys=keystore, audit=audit_log, capture=capture,
                      rules=EnrolmentRules.default())
            assert personalisation_state(session) is CardState.BLANK
    assert exc.value.failure is EnrolFailure.WORKER_FAILED and exc.value.stage == "capture"
    log = events(audit_log, since)
    assert [e["type"] for e in log] == ["enrolment.started", "enrolment.refused"]
    assert log[-1]["payload"]["stage"] == "capture"


def test_register_records_issue_and_enrolment_never_a_template(virtual_card, keystore, audit_log, template,  # type: ignore[no-untyped-def]
                                                               tmp_path) -> None:
    register = CardRegister(tmp_path / "register.jsonl")
    with transport.connect(virtual_card.reader_name, timeout=5) as conn:
        result = enrol(request(), session=PivSession(conn), keys=keystore, audit=audit_log,
                       capture=capture_of(template), rules=EnrolmentRules.default(), register=register)
    card = register.find(result.card_id)
    assert card.holder_ref is not None and card.holder_ref.value == b"\x05" * 32 and card.valid_until is not None
    assert register.find(card.guid.hex()) == card and register.find(f"{card.serials[0]:x}") == card
    text = register.path.read_text()
    assert template.hex()[:32] not in text and len(text) < 2000  # card facts only, no template
