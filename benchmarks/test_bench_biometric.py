"""Face engine speed next to stock face_recognition on the same in-memory frames.

Frames: a real portrait (shared/faces, read in place) scaled to 70 % of the frame height and pasted on a grey
640×480 or 1280×720 canvas, built in memory. Pairs of benchmarks per group: `cardbound` (this engine) and `stock`
(`face_recognition` 1.3.0 defaults: HOG with one upsample on the full frame, 5-point landmarks).
`extra_info` records the distance between the two pipelines' templates of the same frame, to show that the speed-up
costs no accuracy on this input (the LFW report in docs/biometric.md is the real accuracy evidence).

Run: `bash scripts/bench.sh benchmarks/test_bench_biometric.py -s` (with -s, a summary of the frame → template
medians and the dlib build — BLAS, SIMD level — is printed at the end).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biometric import FaceEngine, Template, compare, load_path

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
PORTRAIT = FACES / "portraits" / "face_recognition" / "obama" / "obama.jpg"
SIZES = {"640x480": (640, 480), "1280x720": (1280, 720)}
MEDIANS: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module", autouse=True)
def _summary():  # type: ignore[no-untyped-def]
    yield
    from biometric.buildinfo import build_info

    print("\n\nframe -> template, median ms (same in-memory frame for both pipelines)")
    for size in SIZES:
        ours, stock = MEDIANS.get(("cardbound", size)), MEDIANS.get(("stock", size))
        if ours is not None and stock is not None:
            print(f"  {size:>9}: cardbound {ours:7.1f}   stock face_recognition {stock:7.1f}   ({stock / ours:.1f}x)")
    print("  dlib: " + ", ".join(f"{k}={v}" for k, v in build_info().items()))


def _canvas(size: tuple[int, int]) -> np.ndarray:
    import cv2

    w, h = size
    portrait = load_path(PORTRAIT)
    ph = int(h * 0.7)
    pw = int(portrait.shape[1] * ph / portrait.shape[0])
    small = cv2.resize(portrait, (pw, ph), interpolation=cv2.INTER_AREA)
    frame = np.full((h, w, 3), 110, dtype=np.uint8)
    top, left = (h - ph) // 2, (w - pw) // 2
    frame[top : top + ph, left : left + pw] = small
    portrait.fill(0)
    return frame


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    e = FaceEngine()
    e.warm_up()
    return e


@pytest.fixture(scope="module")
def fr():  # type: ignore[no-untyped-def]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition

    return face_recognition


@pytest.fixture(scope="module", params=list(SIZES))
def frame(request: pytest.FixtureRequest) -> np.ndarray:
    return _canvas(SIZES[request.param])


def _rounds(frame: np.ndarray) -> int:
    return 8 if frame.shape[1] > 1000 else 15


def test_detect_cardbound(benchmark, engine: FaceEngine, frame: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = f"detect {frame.shape[1]}x{frame.shape[0]}"
    boxes = benchmark.pedantic(engine.detect, args=(frame,), rounds=_rounds(frame), warmup_rounds=1)
    assert len(boxes) == 1


def test_detect_stock(benchmark, fr, frame: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = f"detect {frame.shape[1]}x{frame.shape[0]}"
    locs = benchmark.pedantic(fr.face_locations, args=(frame,), rounds=_rounds(frame), warmup_rounds=1)
    assert len(locs) == 1


def test_template_cardbound(benchmark, engine: FaceEngine, frame: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """Descriptor of an analysed sample (ours) vs landmarks + descriptor at a known location (stock)."""
    benchmark.group = f"template (face known) {frame.shape[1]}x{frame.shape[0]}"
    sample = engine.analyse(frame)
    t = benchmark.pedantic(engine.probe_template, args=(sample,), rounds=_rounds(frame), warmup_rounds=1)
    assert isinstance(t, Template)


def test_template_stock(benchmark, fr, frame: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = f"template (face known) {frame.shape[1]}x{frame.shape[0]}"
    locs = fr.face_locations(frame)
    encs = benchmark.pedantic(fr.face_encodings, args=(frame, locs), rounds=_rounds(frame), warmup_rounds=1)
    assert len(encs) == 1


def test_frame_to_template_cardbound(benchmark, engine: FaceEngine, fr, frame: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """The whole gate path: detect (with fallbacks) → landmarks → quality gate → descriptor → Template."""
    benchmark.group = f"frame -> template {frame.shape[1]}x{frame.shape[0]}"

    def run() -> Template:
        return engine.probe_template(engine.analyse(frame))

    t = benchmark.pedantic(run, rounds=_rounds(frame), warmup_rounds=1)
    stock = Template.from_descriptor(np.asarray(fr.face_encodings(frame)[0]))
    benchmark.extra_info["distance_to_stock_template"] = round(compare(t, stock), 4)
    MEDIANS[("cardbound", f"{frame.shape[1]}x{frame.shape[0]}")] = benchmark.stats.stats.median * 1000


def test_frame_to_template_stock(benchmark, fr, frame: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = f"frame -> template {frame.shape[1]}x{frame.shape[0]}"
    encs = benchmark.pedantic(fr.face_encodings, args=(frame,), rounds=_rounds(frame), warmup_rounds=1)
    assert len(encs) == 1
    MEDIANS[("stock", f"{frame.shape[1]}x{frame.shape[0]}")] = benchmark.stats.stats.median * 1000


def test_compare_cardbound(benchmark, engine: FaceEngine) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "compare 1:1"
    rng = np.random.default_rng(0)
    a, b = (Template.from_descriptor(rng.normal(scale=0.12, size=128)) for _ in range(2))
    benchmark(compare, a, b)


def test_compare_stock(benchmark, fr) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "compare 1:1"
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=128), rng.normal(size=128)
    benchmark(fr.face_distance, [a], b)
