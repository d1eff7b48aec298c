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


def _patches(record: Path) -> str:
    """The `patch=NAME HASH` lines of setup's build record, comma-separated; "none" when it lists none."""
    try:
        lines = record.read_text(encoding="utf-8").splitlines()
    except OSError:
        return "none recorded"
    names = [line.removeprefix("patch=").split()[0] for line in lines if line.startswith("patch=") and line[6:]]
    return ", ".join(names) if names else "none"


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
