"""Detection: downscaled HOG with coordinates mapped back to full resolution, fallbacks, optional CNN."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from biometric import EngineConfig, FaceEngine, load_path


def _canvas(portrait: np.ndarray, w: int, h: int, left: int, top: int, height: int) -> np.ndarray:
    pw = int(portrait.shape[1] * height / portrait.shape[0])
    frame = np.full((h, w, 3), 110, dtype=np.uint8)
    frame[top : top + height, left : left + pw] = cv2.resize(portrait, (pw, height), interpolation=cv2.INTER_AREA)
    return frame


def test_boxes_are_in_full_resolution_coordinates(gate_engine: FaceEngine, obama_jpg: Path) -> None:
    portrait = load_path(obama_jpg)
    frame = _canvas(portrait, 1920, 1080, left=1100, top=200, height=700)  # detection runs on 640×360
    boxes = gate_engine.detect(frame)
    assert len(boxes) == 1
    b = boxes[0]
    assert b.left >= 1100 and b.right <= 1100 + 700 and b.top >= 200 and b.bottom <= 900
    assert b.area > 150 * 150  # a box of the full-size face, not of the downscaled one
    sample = gate_engine.analyse(frame)
    assert sample.chip.shape == (150, 150, 3) and sample.quality.inter_eye_px > 60
    sample.wipe()


def test_full_resolution_description_is_close_to_native(gate_engine: FaceEngine, obama_jpg: Path) -> None:
    """Detecting on a 640-px copy and describing at full resolution gives the same template as a native run."""
    from biometric import compare

    frame = load_path(obama_jpg)
    native = FaceEngine(EngineConfig(detect_max_side=4000))
    a = gate_engine.probe_template(gate_engine.analyse(frame))
    b = native.probe_template(native.analyse(frame))
    assert compare(a, b) < 0.05


def test_tight_face_chip_is_found(gate_engine: FaceEngine, portraits: Path) -> None:
    for chip in sorted((portraits / "dlib" / "John_Salley").glob("*.jpg"))[:3]:
        assert len(gate_engine.detect(load_path(chip))) == 1


def test_fallbacks_do_not_slow_down_empty_camera_frames() -> None:
    """On a 640×480 frame only the first HOG pass runs (upsample and pad fallbacks are for small images)."""
    calls: list[int] = []
    engine = FaceEngine()

    class Counting(FaceEngine):
        def _detect_at(self, img: np.ndarray, upsample: int) -> list:  # type: ignore[type-arg]
            calls.append(img.shape[0] * img.shape[1])
            return super()._detect_at(img, upsample)

    counting = Counting(engine.config)
    assert counting.detect(np.zeros((480, 640, 3), dtype=np.uint8)) == []
    assert calls == []  # the single pass is the combined strong/weak HOG run
    assert counting.detect(np.zeros((240, 320, 3), dtype=np.uint8)) == []
    assert len(calls) == 2  # small image: one more upsample, then the padded frame


def test_cnn_detector_option(portraits: Path) -> None:
    chip = load_path(next((portraits / "dlib" / "John_Simm").glob("*.jpg")))
    cnn = FaceEngine(EngineConfig(detector="cnn"))
    assert len(cnn.detect(chip)) == 1
