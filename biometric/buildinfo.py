"""What the face engine runs on: dlib's version, whether it uses BLAS, and the SIMD level of its compiled code.

Printed by the benchmarks so that a slow build is visible (the dlib-bin wheel has no BLAS: ~6× slower descriptors;
a source build with dlib's default `-mavx` only: ~2× slower HOG detection than one with AVX2 + FMA).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache


@lru_cache(maxsize=1)
def build_info() -> dict[str, object]:
    """dlib version, DLIB_USE_BLAS, USE_AVX_INSTRUCTIONS, the SIMD level found in its machine code
    ("avx2+fma", "avx", "sse" or "unknown" without objdump) and OPENBLAS_NUM_THREADS as the engine sets it."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as `biometric.engine` does before loading dlib
    import _dlib_pybind11
    import dlib

    return {
        "version": dlib.__version__,
        "DLIB_USE_BLAS": bool(dlib.DLIB_USE_BLAS),
        "USE_AVX_INSTRUCTIONS": bool(dlib.USE_AVX_INSTRUCTIONS),
        "simd": _simd_level(str(_dlib_pybind11.__file__)),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


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
