"""What the face engine runs on: dlib's version, whether it uses BLAS, the SIMD level of its compiled code and the
patches its source build carries.

Printed by the benchmarks so that a slow build is visible (the dlib-bin wheel has no BLAS: ~6× slower descriptors;
a source build with dlib's default `-mavx` only: ~2× slower HOG detection than one with AVX2 + FMA).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

#: Written by scripts/setup.sh next to the venv it installs the dlib wheel into: the build's flags and patches.
BUILD_RECORD = Path(sys.prefix) / "cardbound-dlib-build.txt"


@lru_cache(maxsize=1)
def build_info() -> dict[str, object]:
    """dlib version, DLIB_USE_BLAS, USE_AVX_INSTRUCTIONS, the SIMD level found in its machine code
    ("avx2+fma", "avx", "sse" or "unknown" without objdump), OPENBLAS_NUM_THREADS as the engine sets it, and the
    patches of the source build ("none recorded" for a dlib that scripts/setup.sh did not install)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as `biometric.engine` does before loading dlib
    import _dlib_pybind11
    import dlib

    return {
        "version": dlib.__version__,
        "DLIB_USE_BLAS": bool(dlib.DLIB_USE_BLAS),
        "USE_AVX_INSTRUCTIONS": bool(dlib.USE_AVX_INSTRUCTIONS),
        "simd": _simd_level(str(_dlib_pybind11.__file__)),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "patches": _patches(BUILD_RECORD),
    }


@dataclass(frozen=True)
class DlibBuild:
    """What scripts/setup.sh recorded about the dlib wheel it built: the upstream sdist's SHA-256 and the patches
    (file name, first 12 hex digits of its SHA-256) applied before the build."""

    sdist_sha256: str | None
    patches: tuple[tuple[str, str], ...]


def read_build_record(record: Path = BUILD_RECORD) -> DlibBuild | None:
    """Parse setup's build record (`key=value` lines, one `patch=NAME HASH` per patch); None if there is none."""
    try:
        lines = record.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    sdist = next((line.removeprefix("sdist_sha256=") for line in lines if line.startswith("sdist_sha256=")), None)
    patches = tuple(
        (fields[0], fields[1] if len(fields) > 1 else "")
        for line in lines
        if line.startswith("patch=") and (fields := line.removeprefix("patch=").split())
    )
    return DlibBuild(sdist or None, patches)


def _patches(record: Path) -> str:
    """The patch names of setup's build record, comma-separated; "none" when it lists none."""
    build = read_build_record(record)
    if build is None:
        return "none recorded"
    return ", ".join(name for name, _ in build.patches) or "none"


def _simd_level(library: str) -> str:
    """Scan the disassembly: FMA instructions mean the AVX2 + FMA build (they come together in our flags)."""
    objdump = shutil.which("objdump")
    if objdump is None:
        return "unknown"
    proc = subprocess.run([objdump, "-d", "--no-show-raw-insn", library], capture_output=True, text=True, check=False)
    text = proc.stdout
    if "vfmadd" in text:
        return "avx2+fma"
    if "%ymm" in text:
        return "avx"
    return "sse"
