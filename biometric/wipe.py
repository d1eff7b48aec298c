"""Overwriting sensitive buffers before they are released.

What this can and cannot do (see docs/biometric.md): numpy arrays, bytearrays and memoryviews that we own are
overwritten in place. Copies made inside Pillow's decoder, OpenCV, dlib (its own matrix types and image pyramids) and
immutable Python `bytes` cannot be reached from Python and are freed without being overwritten; we keep their
lifetime short (decode once, convert once), never write them to disk, and rely on the process sandbox (no core
dumps, no file writes, memory locked where possible) for the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np


@runtime_checkable
class Wipeable(Protocol):
    """Anything that knows how to overwrite its own sensitive content."""

    def wipe(self) -> None: ...


T = TypeVar("T")


def wipe(*objs: Any) -> None:
    """Overwrite each object's content with zeros, in place. Unknown or immutable objects are skipped."""
    for obj in objs:
        if obj is None:
            continue
        if isinstance(obj, np.ndarray):
            _wipe_array(obj)
        elif isinstance(obj, bytearray):
            obj[:] = bytes(len(obj))
        elif isinstance(obj, memoryview):
            if not obj.readonly:
                obj.cast("B")[:] = bytes(obj.nbytes)
        elif isinstance(obj, Wipeable):
            obj.wipe()
        elif isinstance(obj, list | tuple):
            wipe(*obj)


def _wipe_array(arr: np.ndarray) -> None:
    if arr.size == 0:
        return
    if not arr.flags.writeable:
        # Arrays handed out read-only by a library over a buffer we may still own: make them writeable when the
        # underlying buffer allows it; otherwise there is nothing we can overwrite from here.
        try:
            arr.setflags(write=True)
        except ValueError:
            return
    arr.fill(0)


@contextmanager
def sensitive(obj: T) -> Iterator[T]:
    """`with sensitive(frame) as f: ...` — the object is wiped when the block ends, even on error."""
    try:
        yield obj
    finally:
        wipe(obj)
