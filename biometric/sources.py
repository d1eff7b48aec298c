"""Image sources: every one yields RGB uint8 frames of shape (H, W, 3), in memory only.

Validation happens at this boundary, from the header, before any pixel is decoded: a 20000×20000 PNG of a few
kilobytes is refused without allocating 1.2 GB. Limits:
- sides >= 32 px: a face below that cannot carry 30 px between the eyes, the gate preset's minimum;
- <= 40 megapixels: the largest phone/DSLR photos are ~50 MP but a desk or gate camera delivers <= 12 MP;
  40 MP RGB is 120 MB decoded, bounded memory per request on a small gate PC;
- each side <= 12000 px, and files <= 50 MB.
"""

from __future__ import annotations

import io
import os
import struct
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from biometric.errors import (
    CameraError,
    CorruptImageError,
    EmptyImageError,
    ImageError,
    ImageNotFoundError,
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
)

Frame = np.ndarray  # RGB, uint8, shape (H, W, 3), C-contiguous, writeable (so it can be wiped)

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "WEBP", "PPM"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pnm"})


@dataclass(frozen=True)
class ImageLimits:
    min_side: int = 32
    max_side: int = 12_000
    max_pixels: int = 40_000_000
    max_file_bytes: int = 50 * 1024 * 1024


DEFAULT_LIMITS = ImageLimits()


def check_dimensions(width: int, height: int, limits: ImageLimits = DEFAULT_LIMITS) -> None:
    """Raise unless width × height is an acceptable frame size."""
    if width <= 0 or height <= 0:
        raise EmptyImageError("image has no pixels")
    if width < limits.min_side or height < limits.min_side:
        raise ImageTooSmallError(f"image is {width}×{height} px; each side must be at least {limits.min_side} px")
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise ImageTooLargeError(
            f"image is {width}×{height} px; the limit is {limits.max_pixels // 1_000_000} MP "
            f"and {limits.max_side} px per side"
        )


def load_bytes(data: bytes | bytearray | memoryview, limits: ImageLimits = DEFAULT_LIMITS) -> Frame:
    """Decode an encoded image held in memory (JPEG, PNG, BMP, WebP, PPM) into an RGB frame."""
    if len(data) == 0:
        raise EmptyImageError("image data is empty (0 bytes)")
    if len(data) > limits.max_file_bytes:
        raise ImageTooLargeError(f"image data is {len(data)} bytes; the limit is {limits.max_file_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))  # lazy: reads the header only
            try:
                return _decode(img, limits)
            finally:
                img.close()
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise NotAnImageError("not a supported image (JPEG, PNG, BMP, WebP, PPM)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError("image too large (decompression bomb guard)") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error) as exc:
        raise CorruptImageError(f"image data is corrupt or truncated ({type(exc).__name__})") from exc


def _decode(img: Image.Image, limits: ImageLimits) -> Frame:
    if img.format not in SUPPORTED_FORMATS:
        raise NotAnImageError(f"unsupported image format {img.format or 'unknown'}")
    width, height = img.size
    check_dimensions(width, height, limits)  # from the header, before decoding
    # `import face_recognition` sets this process-wide flag to True (face_recognition/api.py), after which Pillow
    # silently pads truncated files with grey. A truncated sample must be refused, whatever was imported before.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    img.load()
    # Phones store portraits sideways with an EXIF orientation tag; detection needs them upright.
    upright = ImageOps.exif_transpose(img)
    rgb = upright if upright.mode == "RGB" else upright.convert("RGB")
    frame = np.array(rgb, dtype=np.uint8, copy=True)  # owned and writeable, so it can be wiped
    for tmp in {id(upright): upright, id(rgb): rgb}.values():
        if tmp is not img:
            tmp.close()
    check_dimensions(frame.shape[1], frame.shape[0], limits)
    return np.ascontiguousarray(frame)


def load_path(path: str | os.PathLike[str], limits: ImageLimits = DEFAULT_LIMITS) -> Frame:
    """Read an image file into memory and decode it. The file is only read, never modified."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise ImageNotFoundError(f"{p}: not a regular file")
    except FileNotFoundError as exc:
        raise ImageNotFoundError(f"{p}: no such file") from exc
    except PermissionError as exc:
        raise ImageNotFoundError(f"{p}: permission denied") from exc
    if size > limits.max_file_bytes:
        raise ImageTooLargeError(f"{p}: {size} bytes; the limit is {limits.max_file_bytes}")
    try:
        data = bytearray(p.read_bytes())
    except OSError as exc:
        raise ImageNotFoundError(f"{p}: cannot read ({exc.strerror})") from exc
    try:
        return load_bytes(data, limits)
    except ImageError as exc:
        raise type(exc)(f"{p}: {exc}") from exc
    finally:
        data[:] = bytes(len(data))  # the encoded photo is biometric data too


def from_array(array: np.ndarray, limits: ImageLimits = DEFAULT_LIMITS, *, bgr: bool = False) -> Frame:
    """Validate an in-memory frame (gray, RGB or RGBA uint8; BGR if `bgr`) and return an RGB copy."""
    if not isinstance(array, np.ndarray):
        raise NotAnImageError(f"expected a numpy array, got {type(array).__name__}")
    if array.size == 0:
        raise EmptyImageError("frame has no pixels")
    if array.dtype != np.uint8:
        raise NotAnImageError(f"frame dtype must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim != 3 or array.shape[2] not in (3, 4):
        raise NotAnImageError(f"frame shape must be (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    check_dimensions(array.shape[1], array.shape[0], limits)
    rgb = array[:, :, :3]
    if bgr:
        rgb = rgb[:, :, ::-1]
    return np.array(rgb, dtype=np.uint8, order="C", copy=True)


def directory_frames(directory: str | os.PathLike[str], limits: ImageLimits = DEFAULT_LIMITS) -> Iterator[Frame]:
    """Frames from the image files of a directory, in name order (other files are ignored)."""
    d = Path(directory)
    if not d.is_dir():
        raise ImageNotFoundError(f"{d}: no such directory")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ImageNotFoundError(f"{d}: contains no image files")
    for p in files:
        yield load_path(p, limits)


def video_frames(
    source: int | str | os.PathLike[str],
    *,
    max_frames: int | None = None,
    read_timeout_s: float = 5.0,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> Iterator[Frame]:
    """Frames from a camera (device index or /dev/videoN) or a video file, through OpenCV.

    Raises `CameraError` when the source cannot be opened, or when a camera delivers nothing for `read_timeout_s`
    (a video file simply ends).
    """
    import cv2

    is_file = not isinstance(source, int) and not str(source).startswith("/dev/")
    if is_file and not isinstance(source, int) and not Path(source).is_file():
        raise ImageNotFoundError(f"{source}: no such video file")
    if not is_file and isinstance(source, str) and not Path(source).exists():
        raise CameraError(f"camera {source} not found")
    target: int | str = source if isinstance(source, int) else str(source)
    cap = cv2.VideoCapture(target)
    try:
        if not cap.isOpened():
            kind = "video file" if is_file else "camera"
            raise CameraError(f"cannot open {kind} {source}")
        count = 0
        last_ok = time.monotonic()
        while max_frames is None or count < max_frames:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                if is_file:
                    if count == 0:
                        raise CorruptImageError(f"{source}: no decodable frame")
                    return
                if time.monotonic() - last_ok > read_timeout_s:
                    raise CameraError(f"camera {source} delivered no frame for {read_timeout_s:.0f} s")
                time.sleep(0.01)
                continue
            last_ok = time.monotonic()
            try:
                frame = from_array(bgr, limits, bgr=True)
            finally:
                bgr.fill(0)
            count += 1
            yield frame
    finally:
        cap.release()
