"""Scan storage for anything that looks like biometric data at rest (§3 1°, 3° and 4° of art. 2.5.2.85).

Looks for: image files by signature (JPEG, PNG, GIF, BMP, WebP, TIFF, PNM/Y4M/raw video headers) anywhere inside
a file (so an image embedded in a database page or a log is found too), and descriptor-like vectors: 128
consecutive little-endian float32 (or float64) values that are all finite, small and of a plausible norm — what a
dlib/face_recognition descriptor or a cardbound template looks like in memory or on disk.

This is the probe behind the "no biometric data at rest" tests and the evidence pack. It reads files; it never
writes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIMENSIONS = 128
# Image signatures. Short ones (BMP "BM", PNM "P6") are checked only at offset 0, where they are meaningful.
_EMBEDDED_SIGNATURES: dict[str, bytes] = {
    "png": b"\x89PNG\r\n\x1a\n",
    "gif": b"GIF89a",
    "gif87": b"GIF87a",
    "webp": b"WEBPVP8",
    "y4m": b"YUV4MPEG2",
}
_HEAD_SIGNATURES: dict[str, bytes] = {
    "bmp": b"BM",
    "tiff-le": b"II*\x00",
    "tiff-be": b"MM\x00*",
    "pnm": b"P6\n",
    "pgm": b"P5\n",
}
# JPEG: SOI + a JFIF/Exif APP segment or a quantisation table with its usual length (a bare FF D8 FF occurs by
# chance in random data such as keys or ciphertext).
_JPEG = re.compile(rb"\xff\xd8\xff(?:\xe0..JFIF|\xe1..Exif|\xdb\x00[\x43\x84]|\xee..Adobe)", re.DOTALL)
MAX_FILE_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Finding:
    path: Path
    kind: str  # "image:<format>", "descriptor:float32", "descriptor:float64"
    offset: int

    def __str__(self) -> str:
        return f"{self.path}: {self.kind} at byte {self.offset}"


def _descriptor_offsets(data: bytes, dtype: str) -> Iterator[int]:
    """Offsets where DIMENSIONS consecutive values of `dtype` look like a face descriptor."""
    itemsize = np.dtype(dtype).itemsize
    span = DIMENSIONS * itemsize
    if len(data) < span:
        return
    for align in range(itemsize):  # a vector may sit at any byte offset (database records, packed structs)
        usable = (len(data) - align) // itemsize * itemsize
        if usable < span:
            continue
        with np.errstate(all="ignore"):
            values = np.frombuffer(data, dtype=dtype, count=usable // itemsize, offset=align).astype(np.float64)
            ok = np.isfinite(values) & (np.abs(values) < 1.0) & (np.abs(values) > 1e-6)
        # Windows of DIMENSIONS values that are all "ok": a cumulative sum finds them without a Python loop.
        csum = np.concatenate(([0], np.cumsum(ok, dtype=np.int64)))
        full = np.nonzero(csum[DIMENSIONS:] - csum[:-DIMENSIONS] == DIMENSIONS)[0]
        last = -span
        for start in full:
            offset = align + int(start) * itemsize
            if offset < last + span:
                continue  # overlapping window of the same run
            window = values[start : start + DIMENSIONS]
            norm = float(np.sqrt(np.dot(window, window)))
            # dlib descriptors have norms around 0.3-0.6; cardbound templates are L2-normalised (1.0).
            if 0.2 <= norm <= 1.5 and float(np.std(window)) > 1e-3:
                last = offset
                yield offset


def scan_bytes(data: bytes, path: Path) -> list[Finding]:
    findings: list[Finding] = []
    for name, sig in _HEAD_SIGNATURES.items():
        if data.startswith(sig):
            findings.append(Finding(path, f"image:{name}", 0))
    for name, sig in _EMBEDDED_SIGNATURES.items():
        pos = data.find(sig)
        if pos >= 0:
            findings.append(Finding(path, f"image:{name}", pos))
    jpeg = _JPEG.search(data)
    if jpeg:
        findings.append(Finding(path, "image:jpeg", jpeg.start()))
    for dtype, label in (("<f4", "float32"), ("<f8", "float64")):
        for offset in _descriptor_offsets(data, dtype):
            findings.append(Finding(path, f"descriptor:{label}", offset))
            break  # one per file and kind is enough to fail
    return findings


def iter_files(roots: Iterable[Path]) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = [d for d in dirnames if d not in {".git", ".venv", "__pycache__"}]
            for name in filenames:
                p = Path(dirpath, name)
                if p.is_file() and not p.is_symlink():
                    yield p


def scan(roots: Iterable[Path], *, exclude: Iterable[Path] = ()) -> list[Finding]:
    """Scan every regular file under `roots` (except under `exclude`) and return what looks biometric."""
    excluded = [e.resolve() for e in exclude]
    findings: list[Finding] = []
    for path in iter_files(roots):
        resolved = path.resolve()
        if any(resolved == e or e in resolved.parents for e in excluded):
            continue
        try:
            if resolved.stat().st_size > MAX_FILE_BYTES:
                continue
            data = resolved.read_bytes()
        except OSError:
            continue  # vanished or unreadable (sockets, races with a running system)
        findings.extend(scan_bytes(data, path))
    return findings
