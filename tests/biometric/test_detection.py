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
    """Detecting on a 640-px copy and describing at full resolution gives nearly the same template as a native run.

    Not identical: the 5-point landmarks move by a pixel or two with the detection box, which moves the template by
    0.03-0.06 between any two detection settings on this photo (genuine pairs average ~0.3, the threshold ~0.42)."""
    from biometric import compare

    frame = load_path(obama_jpg)
    native = FaceEngine(EngineConfig(detect_max_side=4000))
    a = gate_engine.probe_template(gate_engine.analyse(frame))
    b = native.probe_template(native.analyse(frame))
    assert compare(a, b) < 0.08


def test_tight_face_chip_is_found(gate_engine: FaceEngine, portraits: Path) -> None:
    for chip in sorted((portraits / "dlib" / "John_Salley").glob("*.jpg"))[:3]:
        assert len(gate_engine.detect(load_path(chip))) == 1


def test_fallbacks_do_not_slow_down_empty_camera_frames() -> None:
    """On a 640×480 frame only the first HOG pass runs (upsample and pad fallbacks are for small images)."""
    calls: list[int] = []
    cnn_calls: list[int] = []
    engine = FaceEngine()

    class Counting(FaceEngine):
        def _detect_at(self, img: np.ndarray, upsample: int) -> list:  # type: ignore[type-arg]
            calls.append(img.shape[0] * img.shape[1])
            return super()._detect_at(img, upsample)

        def _detect_cnn(self, img: np.ndarray, upsample: int) -> list:  # type: ignore[type-arg]
            cnn_calls.append(img.shape[0] * img.shape[1])
            return super()._detect_cnn(img, upsample)

    counting = Counting(engine.config)
    assert counting.detect(np.zeros((480, 640, 3), dtype=np.uint8)) == []
    assert calls == [] and cnn_calls == []  # the single pass is the combined strong/weak HOG run
    assert counting.detect(np.zeros((240, 320, 3), dtype=np.uint8)) == []
    assert len(calls) == 2  # small image: one more upsample, then the padded frame...
    assert cnn_calls == [240 * 320]  # ...then the CNN detector


def test_cnn_fallback_finds_a_frontal_face_that_hog_misses(faces_dir: Path) -> None:
    # An LFW DevTest image where every HOG pass (and the weak window) finds nothing.
    photo = load_path(faces_dir / "lfw-view1" / "Elisabeth_Schumacher" / "Elisabeth_Schumacher_0001.jpg")
    hog_only = FaceEngine(EngineConfig(fallback_cnn=False))
    assert hog_only.detect(photo) == []
    boxes = FaceEngine().detect(photo)
    assert len(boxes) == 1 and 60 < boxes[0].cx < 190 and 60 < boxes[0].cy < 190  # the centred face of a 250² crop


def test_cnn_detector_option(portraits: Path) -> None:
    chip = load_path(next((portraits / "dlib" / "John_Simm").glob("*.jpg")))
    cnn = FaceEngine(EngineConfig(detector="cnn"))
    assert len(cnn.detect(chip)) == 1


def test_reference_averages_the_chip_and_its_mirror_image_and_is_repeatable(
    gate_engine: FaceEngine, obama_jpg: Path
) -> None:
    from biometric import compare

    sample = gate_engine.analyse(load_path(obama_jpg))
    try:
        chip_before = sample.chip.copy()
        plain = gate_engine.descriptor(sample)
        mirror = gate_engine.descriptor(sample, mirrored=True)
        assert np.array_equal(sample.chip, chip_before)  # the mirror image is a temporary copy
        chip_before.fill(0)
        assert 0.0 < float(np.linalg.norm(plain / np.linalg.norm(plain) - mirror / np.linalg.norm(mirror))) < 0.3
        expected = plain / np.linalg.norm(plain) + mirror / np.linalg.norm(mirror)
        expected /= np.linalg.norm(expected)
        ref = gate_engine.reference_template([sample])
        assert np.allclose(ref.vector, expected, atol=1e-6)
        # No random jitter by default: the same sample gives the same template, byte for byte.
        assert gate_engine.reference_template([sample]).to_bytes() == ref.to_bytes()
        # Without the mirror the reference is the plain probe template.
        no_mirror = FaceEngine(EngineConfig(enrol_mirror=False))
        assert compare(no_mirror.reference_template([sample]), gate_engine.probe_template(sample)) < 1e-6
    finally:
        sample.wipe()
