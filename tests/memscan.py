"""Read another process's memory (/proc/PID/maps + /proc/PID/mem) and look for byte strings in it.

Used to show that a gate or desk *parent* process keeps no copy of a reference template after a decision. Reading
the memory of a non-dumpable process (the gate and the desk make themselves non-dumpable) needs CAP_SYS_PTRACE:
root has it here; `can_read_memory_of_non_dumpable()` says whether this test process has it.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

CHUNK = 1 << 24


def template_needles(template: bytes) -> dict[str, bytes]:
    """Byte strings a copy of a 512-byte float32 reference template would show: the stored vector itself, two
    32-byte windows of it (8 values each), and the float64 encodings of its first 8 values (what numpy or a
    Python float list would hold)."""
    assert len(template) == 512
    values = struct.unpack("<128f", template)
    return {
        "template (512 B, float32 as sealed)": template,
        "float32 values 0-7": template[:32],
        "float32 values 64-71": template[256:288],
        "float32 values 120-127": template[480:],
        "float64 values 0-7 (LE)": struct.pack("<8d", *values[:8]),
        "float64 values 0-7 (BE)": struct.pack(">8d", *values[:8]),
    }


def readable_regions(pid: int) -> list[tuple[int, int, str]]:
    regions = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        addr, perms = parts[0], parts[1]
        name = parts[5] if len(parts) > 5 else ""
        if "r" not in perms or name in ("[vvar]", "[vsyscall]"):
            continue
        lo, hi = (int(x, 16) for x in addr.split("-"))
        regions.append((lo, hi, name))
    return regions


def find_in_memory(pid: int, needles: Mapping[str, bytes]) -> dict[str, list[str]]:
    """Where each needle occurs in the readable memory of `pid`: name -> ["0xADDR (mapping)", ...]."""
    found: dict[str, list[str]] = {name: [] for name in needles}
    longest = max(len(n) for n in needles.values())
    read_any = False
    with open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for lo, hi, name in readable_regions(pid):
            pos = lo
            tail = b""
            while pos < hi:
                n = min(CHUNK, hi - pos)
                try:
                    mem.seek(pos)
                    data = mem.read(n)
                except OSError:
                    break  # a region that cannot be read (guard pages, device mappings)
                read_any = True
                window = tail + data
                base = pos - len(tail)
                for key, needle in needles.items():
                    at = window.find(needle)
                    while at >= 0:
                        found[key].append(f"{base + at:#x} ({name or 'anonymous'})")
                        at = window.find(needle, at + 1)
                tail = window[-(longest - 1):]
                pos += n
    if not read_any:
        raise PermissionError(f"nothing of process {pid}'s memory could be read")
    # a hit in the overlap is seen twice (once as the previous chunk's tail); keep each address once
    return {k: sorted(set(v)) for k, v in found.items()}


def can_read_memory_of_non_dumpable() -> bool:
    """Start a tiny non-dumpable process holding a marker and try to find it: True if this process may read it."""
    code = ("import ctypes, sys; m = bytearray(b'memscan-probe-marker-' * 3); "
            "ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); print('ready', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        try:
            hits = find_in_memory(proc.pid, {"marker": b"memscan-probe-marker-" * 3})
        except (PermissionError, OSError):
            return False
        return bool(hits["marker"])
    finally:
        proc.kill()
        proc.wait()


def dumpable_and_core(pid: int) -> tuple[bool, str]:
    """(non-dumpable?, soft/hard 'Max core file size' line of /proc/PID/limits). A non-dumpable process's
    /proc/PID files belong to root, which is how an outsider can see the flag without asking the process."""
    limits = next(ln for ln in Path(f"/proc/{pid}/limits").read_text().splitlines()
                  if ln.startswith("Max core file size"))
    return Path(f"/proc/{pid}/mem").stat().st_uid == 0, limits
