"""Typed errors of the face engine. Messages never contain pixels, descriptors or file contents."""

from __future__ import annotations

from enum import Enum


class BiometricError(Exception):
    """Base class of every error raised by `biometric`."""


class ImageError(BiometricError):
    """An input image (or frame source) was rejected before any face processing."""


class ImageNotFoundError(ImageError):
    """The file or directory does not exist (or is not readable)."""


class EmptyImageError(ImageError):
    """Zero bytes, or an array with no pixels."""


class NotAnImageError(ImageError):
    """The data is not an image in a supported format (JPEG, PNG, BMP, WebP, PPM)."""


class CorruptImageError(ImageError):
    """The header was readable but decoding failed (truncated or damaged data)."""


class ImageTooSmallError(ImageError):
    """A side is below the minimum: no face of usable size can be in it."""


class ImageTooLargeError(ImageError):
    """Too many pixels (or too many bytes): refused from the header, before decoding (decompression bombs)."""


class CameraError(ImageError):
    """A camera or video source could not be opened, or stopped delivering frames."""


class TemplateError(BiometricError):
    """A template byte string or array is invalid (length, non-finite values, norm out of range)."""


class BiometricFailure(Enum):
    """Why a `cardbound biometric ...` command stopped (the command layer maps it to an exit code)."""

    USAGE = "usage"
    INPUT = "input"  # image, pairs file or image folder unusable
    NO_CAMERA = "no_camera"
    QUALITY = "quality"  # no face passed the quality gate
    TEMPLATE_INVALID = "template_invalid"
    WORKER = "worker"  # the sandboxed biometric worker could not start or failed
    MISSING_EXTRA = "missing_extra"  # `evaluate` without the optional extra (matplotlib, tqdm) installed


class BiometricCommandError(BiometricError):
    """A biometric command cannot complete; the message is one line, never biometric content."""

    def __init__(self, message: str, failure: BiometricFailure) -> None:
        super().__init__(message)
        self.failure = failure
