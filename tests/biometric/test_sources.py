"""Image sources: strict validation at the boundary, typed errors, never a crash or a hang."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from biometric import (
    CameraError,
    CorruptImageError,
    EmptyImageError,
    ImageError,
    ImageNotFoundError,
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
    directory_frames,
    from_array,
    load_bytes,
    load_path,
    video_frames,
)


def _synthetic(w: int = 320, h: int = 240, fmt: str = "JPEG") -> bytes:
    """A gradient picture: realistic encoded data without any biometric content."""
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
    arr = np.concatenate([np.broadcast_to(x, (h, w, 1)), np.broadcast_to(y, (h, w, 1)),
                          np.full((h, w, 1), 128.0)], axis=2).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width×height RGB pixels but carries a tiny IDAT (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _jpeg_header(width: int, height: int) -> bytes:
    """SOI + a baseline SOF0 frame header declaring width×height, then EOI."""
    sof = struct.pack(">BBHBHHB", 0xFF, 0xC0, 17, 8, height, width, 3)
    sof += b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + sof + b"\xff\xd9"


def test_real_portrait_loads_as_rgb_uint8(obama_jpg: Path) -> None:
    frame = load_path(obama_jpg)
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.flags.writeable and frame.flags.c_contiguous
    again = load_bytes(obama_jpg.read_bytes())
    assert np.array_equal(frame, again)


def test_rgba_png_becomes_rgb(portraits: Path) -> None:
    frame = load_path(portraits / "face_recognition" / "_derived_duplicates" / "obama" / "32bit.png")
    assert frame.shape[2] == 3


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(EmptyImageError):
        load_path(p)
    with pytest.raises(EmptyImageError):
        load_bytes(b"")


def test_corrupt_jpeg(tmp_path: Path) -> None:
    data = _synthetic()
    p = tmp_path / "truncated.jpg"
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptImageError):
        load_path(p)


def test_corrupt_png_body() -> None:
    data = bytearray(_synthetic(fmt="PNG"))
    data[60:120] = b"\xff" * 60  # damage the compressed stream, keep the header
    with pytest.raises(CorruptImageError):
        load_bytes(bytes(data))


def test_one_pixel_image() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (10, 20, 30)).save(buf, format="PNG")
    with pytest.raises(ImageTooSmallError):
        load_bytes(buf.getvalue())


@pytest.mark.parametrize("header", [_png_header, _jpeg_header], ids=["png", "jpeg"])
def test_decompression_bomb_refused_from_header(header, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = header(20000, 20000)
    assert len(data) < 1000  # declares 1.2 GB of pixels in a few bytes
    p = tmp_path / "bomb.img"
    p.write_bytes(data)
    with pytest.raises(ImageTooLargeError):
        load_path(p)


def test_forty_megapixel_limit_is_a_header_check() -> None:
    with pytest.raises(ImageTooLargeError):
        load_bytes(_png_header(8000, 6000))  # 48 MP


def test_non_image(tmp_path: Path) -> None:
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a picture\n" * 20)
    with pytest.raises(NotAnImageError):
        load_path(p)


def test_unsupported_format_is_not_an_image() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, format="GIF")
    with pytest.raises(NotAnImageError):
        load_bytes(buf.getvalue())


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFoundError):
        load_path(tmp_path / "nope.jpg")
    with pytest.raises(ImageNotFoundError):
        load_path(tmp_path)  # a directory is not an image file
    with pytest.raises(ImageNotFoundError):
        list(directory_frames(tmp_path / "nope"))


def test_errors_share_one_family() -> None:
    for exc in (EmptyImageError, CorruptImageError, ImageTooSmallError, ImageTooLargeError, NotAnImageError,
                ImageNotFoundError, CameraError):
        assert issubclass(exc, ImageError)


def test_from_array_validates_and_copies() -> None:
    gray = np.full((64, 48), 100, dtype=np.uint8)
    rgb = from_array(gray)
    assert rgb.shape == (64, 48, 3)
    bgr = np.zeros((40, 40, 3), dtype=np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV order
    assert from_array(bgr, bgr=True)[0, 0].tolist() == [0, 0, 255]
    src = np.zeros((40, 40, 4), dtype=np.uint8)
    out = from_array(src)
    out[0, 0] = 7
    assert src[0, 0, 0] == 0  # a copy: wiping ours never touches the caller's buffer and vice versa
    with pytest.raises(NotAnImageError):
        from_array(np.zeros((40, 40, 3), dtype=np.float32))
    with pytest.raises(NotAnImageError):
        from_array(np.zeros((40, 40, 2), dtype=np.uint8))
    with pytest.raises(EmptyImageError):
        from_array(np.zeros((0, 40, 3), dtype=np.uint8))
    with pytest.raises(ImageTooSmallError):
        from_array(np.zeros((1, 1, 3), dtype=np.uint8))


def test_directory_frames_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b.png").write_bytes(_synthetic(100, 80, "PNG"))
    (tmp_path / "a.jpg").write_bytes(_synthetic(120, 90))
    (tmp_path / "readme.txt").write_text("ignored")
    frames = list(directory_frames(tmp_path))
    assert [f.shape for f in frames] == [(90, 120, 3), (80, 100, 3)]


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFoundError):
        list(directory_frames(tmp_path))


def test_missing_camera_is_a_clear_error() -> None:
    with pytest.raises(CameraError):
        next(video_frames("/dev/video99"))
    with pytest.raises(CameraError):
        next(video_frames(97))


def test_video_file_frames(tmp_path: Path) -> None:
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    assert writer.isOpened()
    for i in range(5):
        bgr = np.zeros((120, 160, 3), dtype=np.uint8)
        bgr[..., 2] = 200  # red in OpenCV's BGR order
        bgr[:, : 20 + i] = 0
        writer.write(bgr)
    writer.release()
    frames = list(video_frames(path))
    assert len(frames) == 5
    assert frames[0].shape == (120, 160, 3)
    assert frames[0][60, 100, 0] > 150 and frames[0][60, 100, 2] < 60  # converted to RGB
    assert len(list(video_frames(path, max_frames=2))) == 2


def test_missing_or_bad_video_file(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFoundError):
        next(video_frames(tmp_path / "none.avi"))
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00AVI garbage" * 10)
    with pytest.raises((CameraError, CorruptImageError)):
        next(video_frames(bad))


def test_truncated_image_refused_even_after_face_recognition_import(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`import face_recognition` flips Pillow's LOAD_TRUNCATED_IMAGES to True; the loader must not inherit that."""
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # what that import does
    data = _synthetic()
    p = tmp_path / "truncated.jpg"
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptImageError):
        load_path(p)
