"""A card pulled *during* the face capture, through the installed `cardbound gate` (real pcscd, a virtual card, the
sandboxed worker): the card transaction is complete, the capture is still running on a slow frame source when the
card leaves; the face then matches, but the card cannot be re-proved — CARD_REMOVED, never ACCEPTED, the door hook
never runs, exactly one audited decision."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gate_helpers import RunningGate, audited, enrol_card, gate_config, gate_home
from PIL import Image

GREY_FRAMES = 100  # faceless 1280x720 frames before the face: ~55 ms each in the worker here (2.3 s for 40), so
# the capture runs for about 5 s


def test_card_removed_during_the_capture_is_never_accepted_and_the_door_stays_shut(  # type: ignore[no-untyped-def]
        virtual_card_factory, tmp_path: Path, faces_dir: Path) -> None:
    home = gate_home(tmp_path)
    root = faces_dir / "portraits/face_recognition"
    card = virtual_card_factory(reader=0)
    enrol_card(home, card.reader_name, root / "obama/obama.jpg")
    card.remove()

    # The slow "camera": faceless frames first (each costs a face detection), then the holder's face, so the
    # capture ends in a match well after the card transaction has finished.
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(GREY_FRAMES):
        Image.new("RGB", (1280, 720), (80 + i, 90, 100)).save(frames / f"{i:03d}.png")
    (frames / "zzz-face.jpg").symlink_to(root / "obama/obama2.jpg")  # read in place, never copied
    cfg = gate_config(tmp_path / "gate.toml", time_budget_ms=30000)
    marker = tmp_path / "door-opened"
    hook = tmp_path / "door.sh"
    hook.write_text(f"#!/bin/sh\ncat > /dev/null\ntouch {marker}\n")
    hook.chmod(0o755)

    gate = RunningGate(home, "--config", str(cfg), "--reader", "0", "--frames", str(frames),
                       "--max-frames", str(GREY_FRAMES + 1), "--door-hook", str(hook))
    try:
        assert gate.wait_ready(), "".join(gate.stderr)
        t_insert = time.monotonic()
        card.insert()
        time.sleep(2.0)  # the card transaction (~0.3 s) is over; the capture is not
        assert gate.lines.empty(), "the decision came before the card was pulled: the capture was not slow enough"
        card.remove()
        removed_after_s = time.monotonic() - t_insert
        d: dict[str, Any] = gate.next(timeout=60)
        time.sleep(2.0)  # the door hook runs in its own thread right after an ACCEPTED decision: give it time
    finally:
        rc = gate.stop()
    assert rc == 0 and not any("Traceback" in ln for ln in gate.stderr), "".join(gate.stderr)

    # The premise: the card was read completely, and the capture outlasted the card's presence.
    assert {"card_auth", "card_read", "unseal"} <= set(d["timings_ms"]), d
    assert d["timings_ms"]["capture"] > removed_after_s * 1000 - 500, (d["timings_ms"], removed_after_s)
    assert d["distance"] is not None and d["distance"] <= d["threshold"]  # the face alone would have passed
    # The outcome: the card is gone, so no access and no door.
    assert (d["reason"], d["decision"]) == ("CARD_REMOVED", "reject"), d
    assert "re-proved" in d.get("detail", "")
    assert not marker.exists()
    decisions = audited(home, "gate.decision")
    assert [e["reason_code"] for e in decisions] == ["card_removed"]
    assert decisions[0]["card_id"] == d["card_id"] and d["card_id"]
    assert audited(home, "gate.fault") == []
