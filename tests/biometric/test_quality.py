"""Quality gate: stable reason codes on real photos and controlled degradations of them (in memory only)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from biometric import (
    DESK,
    GATE,
    FaceEngine,
    QualityFailure,
    QualityReason,
    load_path,
    message,
)


def _reasons(engine: FaceEngine, frame: np.ndarray, **kw: bool) -> tuple[QualityReason, ...]:
    try:
        sample = engine.analyse(np.ascontiguousarray(frame), **kw)
    except QualityFailure as exc:
        return exc.reasons
    sample.wipe()
    return ()


@pytest.fixture(scope="module")
def obama(obama_jpg: Path) -> np.ndarray:
    return load_path(obama_jpg)


def test_reason_codes_are_stable() -> None:
    assert [r.value for r in QualityReason] == [
        "NO_FACE", "MULTIPLE_FACES", "FACE_TOO_SMALL", "FACE_CUT_OFF", "BLURRY", "UNDEREXPOSED", "OVEREXPOSED", "POSE",
    ]


def test_every_reason_has_three_distinct_messages() -> None:
    for reason in QualityReason:
        texts = [message(reason, lang) for lang in ("fr", "nl", "en")]
        assert all(t.strip() for t in texts) and len(set(texts)) == 3


def test_presets_are_frozen_and_gate_is_more_lenient() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        GATE.min_sharpness = 0  # type: ignore[misc]
    assert GATE.min_inter_eye_px < DESK.min_inter_eye_px
    assert GATE.min_sharpness < DESK.min_sharpness
    assert GATE.max_yaw_deg > DESK.max_yaw_deg and GATE.max_roll_deg > DESK.max_roll_deg


def test_good_portrait_passes_both_presets(desk_engine: FaceEngine, gate_engine: FaceEngine, obama: np.ndarray) -> None:
    assert _reasons(desk_engine, obama) == ()
    assert _reasons(gate_engine, obama) == ()


@pytest.mark.parametrize("folder", ["face_recognition/_multi_person", "dlib/_unlabelled_multi_person"])
def test_group_photos_are_multiple_faces(desk_engine: FaceEngine, portraits: Path, folder: str) -> None:
    """The desk searches for small faces too (`small_faces`): a bystander makes an enrolment photo unusable."""
    photos = sorted((portraits / folder).glob("*.jpg"))
    assert photos
    for photo in photos:
        assert _reasons(desk_engine, load_path(photo)) == (QualityReason.MULTIPLE_FACES,), photo.name


def test_gate_skips_the_upsampled_search_on_camera_frames(gate_engine: FaceEngine, portraits: Path) -> None:
    """The gate detects without upsampling on frames larger than `upsample_max_pixels` (speed): in a 500×375 group
    photo it sees fewer faces than the desk, whose `small_faces` search finds the ~40-px ones as well."""
    frame = load_path(portraits / "dlib" / "_unlabelled_multi_person" / "2007_007763.jpg")
    assert frame.shape[0] * frame.shape[1] > FaceEngine().config.upsample_max_pixels
    assert 1 <= len(gate_engine.detect(frame)) < len(gate_engine.detect(frame, small_faces=True))


def test_allow_several_gate_takes_the_central_face_desk_a_dominant_one(
    gate_engine: FaceEngine, desk_engine: FaceEngine, portraits: Path
) -> None:
    frame = load_path(portraits / "face_recognition" / "_multi_person" / "obama_and_biden.jpg")
    h, w = frame.shape[:2]
    boxes = gate_engine.detect(frame)
    assert len(boxes) >= 2 and boxes[0].area >= boxes[1].area
    sample = gate_engine.analyse(frame, allow_several=True)
    central = min(boxes, key=lambda b: (b.cx - w / 2) ** 2 + (b.cy - h / 2) ** 2)
    assert sample.box == central
    # The desk preset wants the largest face to dominate clearly (2× the area of the next one).
    dominant = boxes[0].area >= DESK.dominance * boxes[1].area
    assert (_reasons(desk_engine, frame, allow_several=True) != (QualityReason.MULTIPLE_FACES,)) == dominant


def test_gate_prefers_a_central_face_to_a_larger_bystander(gate_engine: FaceEngine, portraits: Path) -> None:
    # A bystander close to the lens at the edge of the picture, the card holder smaller in the middle.
    def face_crop(photo: str, side: int) -> np.ndarray:
        img = load_path(portraits / "face_recognition" / photo)
        b = gate_engine.detect(img)[0]
        m = (b.right - b.left) // 2  # half a face of margin all round
        crop = img[max(0, b.top - m):b.bottom + m, max(0, b.left - m):b.right + m]
        return cv2.resize(crop, (side, side))

    # Faces of ~220 and ~180 px: at 1280×720 the gate's first pass finds faces from ~160 px (640×360, no upsample).
    canvas = np.full((720, 1280, 3), 128, dtype=np.uint8)
    canvas[140:580, 0:440] = face_crop("obama/obama.jpg", 440)
    canvas[180:540, 460:820] = face_crop("biden/biden.jpg", 360)
    boxes = gate_engine.detect(canvas)
    assert len(boxes) == 2 and boxes[0].cx < 640 - 200  # the largest face is the bystander at the left
    sample = gate_engine.analyse(canvas, allow_several=True)
    assert sample.box == boxes[1] and abs(sample.box.cx - 640) < 100
    assert _reasons(gate_engine, canvas) == (QualityReason.MULTIPLE_FACES,)  # several faces need allow_several


def test_non_face_images_are_no_face(gate_engine: FaceEngine) -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    x = np.linspace(0, 255, 640, dtype=np.float32)
    gradient = np.repeat(np.broadcast_to(x, (480, 640))[:, :, None], 3, axis=2).astype(np.uint8)
    checker = ((np.indices((480, 640)).sum(0) // 40) % 2 * 255).astype(np.uint8)
    for frame in (noise, gradient, np.repeat(checker[:, :, None], 3, axis=2)):
        assert _reasons(gate_engine, frame) == (QualityReason.NO_FACE,)


def test_blur(desk_engine: FaceEngine, obama: np.ndarray) -> None:
    assert QualityReason.BLURRY in _reasons(desk_engine, cv2.GaussianBlur(obama, (0, 0), 6))
    assert QualityReason.BLURRY not in _reasons(desk_engine, cv2.GaussianBlur(obama, (0, 0), 1))


def test_exposure(desk_engine: FaceEngine, obama: np.ndarray) -> None:
    dark = (obama * 0.2).astype(np.uint8)
    bright = (255 - (255 - obama.astype(np.float32)) * 0.2).astype(np.uint8)
    assert _reasons(desk_engine, dark) == (QualityReason.UNDEREXPOSED,)
    assert _reasons(desk_engine, bright) == (QualityReason.OVEREXPOSED,)


def test_roll(desk_engine: FaceEngine, gate_engine: FaceEngine, obama: np.ndarray) -> None:
    h, w = obama.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0)
    tilted = cv2.warpAffine(obama, rot, (w, h), borderMode=cv2.BORDER_REPLICATE)
    assert _reasons(desk_engine, tilted) == (QualityReason.POSE,)
    assert _reasons(gate_engine, tilted) == ()  # 20° is within the gate's tolerance


def test_yaw_on_turned_head(desk_engine: FaceEngine, gate_engine: FaceEngine, faces_dir: Path) -> None:
    frame = load_path(faces_dir / "lfw-view1" / "Michael_Jasny" / "Michael_Jasny_0001.jpg")  # turned ~35-40°
    with pytest.raises(QualityFailure) as info:
        desk_engine.analyse(frame)
    assert QualityReason.POSE in info.value.reasons  # (a 250×250 LFW image is also too small for the desk)
    assert info.value.metrics is not None and abs(info.value.metrics.yaw_deg) > DESK.max_yaw_deg
    assert _reasons(gate_engine, frame) == ()  # within the gate's tolerance (50°)


def test_yaw_estimate_orders_and_mirrors(gate_engine: FaceEngine, portraits: Path) -> None:
    """The 5-point yaw estimate grows with the head turn and changes sign with the mirror image."""
    def yaw(frame: np.ndarray) -> float:
        sample = gate_engine.analyse(np.ascontiguousarray(frame))
        try:
            return sample.quality.yaw_deg
        finally:
            sample.wipe()

    frontal = yaw(load_path(portraits / "face_recognition" / "obama" / "obama.jpg"))
    turned = load_path(portraits / "face_recognition" / "obama" / "obama2.jpg")  # head turned ~20°
    a, b = yaw(turned), yaw(turned[:, ::-1])
    assert abs(frontal) < 8 < 15 < abs(a)
    assert a * b < 0 and abs(abs(a) - abs(b)) < 5


def test_small_faces(desk_engine: FaceEngine, gate_engine: FaceEngine, obama: np.ndarray, portraits: Path) -> None:
    h, w = obama.shape[:2]
    small = cv2.resize(obama, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    assert _reasons(desk_engine, small) == (QualityReason.FACE_TOO_SMALL,)
    chip = load_path(next((portraits / "dlib" / "John_Simm").glob("*.jpg")))  # 150×150 face chip
    assert _reasons(desk_engine, chip) == (QualityReason.FACE_TOO_SMALL,)
    assert _reasons(gate_engine, chip) == ()


def test_face_cut_off(desk_engine: FaceEngine, obama: np.ndarray) -> None:
    box = desk_engine.detect(obama)[0]
    cut = obama[:, (box.left + box.right) // 2 - 30:]
    assert QualityReason.FACE_CUT_OFF in _reasons(desk_engine, cut)


def test_failure_carries_metrics_and_messages(desk_engine: FaceEngine, obama: np.ndarray) -> None:
    with pytest.raises(QualityFailure) as info:
        desk_engine.analyse((obama * 0.2).astype(np.uint8))
    exc = info.value
    assert exc.reason is QualityReason.UNDEREXPOSED and exc.metrics is not None
    assert exc.metrics.brightness < DESK.min_brightness
    assert exc.message("nl") == message(QualityReason.UNDEREXPOSED, "nl")
