"""Run a command under strace and list every file it (or any child) opened for writing, created, renamed,
linked, truncated or removed. The write monitor of the §3 probes: it watches the installed program from outside,
so a write the program does not report is still seen.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TRACED = "openat,open,creat,rename,renameat,renameat2,link,linkat,truncate,ftruncate,unlink,unlinkat"
_WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")
# `-y` prints descriptors with their path: `openat(AT_FDCWD</cwd>, "rel", O_WRONLY|O_CREAT, 0600) = 3</abs>`.
_OPEN = re.compile(r'^(?P<pid>\d+)\s+(?:open|openat|creat)\((?:[^,]*,\s*)?"(?P<path>[^"]*)"(?P<rest>.*)\)'
                   r'\s+=\s+\d+<(?P<abs>[^>]*)>')
_TWO_PATHS = re.compile(r'^(?P<pid>\d+)\s+(?:rename|renameat2?|link|linkat)\('
                        r'(?:[^,"]*<(?P<d1>[^>]*)>,\s*)?"(?P<src>[^"]*)",'
                        r'\s*(?:[^,"]*<(?P<d2>[^>]*)>,\s*)?"(?P<dst>[^"]*)"')
_FD_TRUNC = re.compile(r'^(?P<pid>\d+)\s+ftruncate\(\d+<(?P<abs>[^>]*)>')
_PATH_CALL = re.compile(r'^(?P<pid>\d+)\s+(?P<call>truncate|unlink|unlinkat)\('
                        r'(?:[^,"]*<(?P<d>[^>]*)>,\s*)?"(?P<path>[^"]*)"')


class WatchUnavailable(RuntimeError):
    """strace is missing or cannot trace here (e.g. ptrace forbidden in a container)."""


@dataclass
class Watched:
    returncode: int
    stdout: str
    stderr: str
    written: set[Path] = field(default_factory=set)  # opened for writing, created, renamed/linked to, truncated
    removed: set[Path] = field(default_factory=set)
    pids: set[int] = field(default_factory=set)


def _abs(path: str, base: str | None) -> Path:
    p = Path(path)
    if not p.is_absolute() and base:
        p = Path(base) / p
    return p


def parse(trace: str) -> tuple[set[Path], set[Path], set[int]]:
    written: set[Path] = set()
    removed: set[Path] = set()
    pids: set[int] = set()
    for line in trace.splitlines():
        m = _OPEN.match(line)
        if m:
            pids.add(int(m["pid"]))
            if line.split("(", 1)[0].endswith("creat") or any(f in m["rest"] for f in _WRITE_FLAGS):
                written.add(Path(m["abs"]))
            continue
        m = _TWO_PATHS.match(line)
        if m:
            pids.add(int(m["pid"]))
            written.add(_abs(m["dst"], m["d2"]))
            continue
        m = _FD_TRUNC.match(line)
        if m:
            written.add(Path(m["abs"]))
            continue
        m = _PATH_CALL.match(line)
        if m:
            target = _abs(m["path"], m["d"])
            (written if m["call"] == "truncate" else removed).add(target)
    return written, removed, pids


def run(cmd: Sequence[str], *, trace_file: Path, env: Mapping[str, str], cwd: Path, timeout: float,
        stdin: str | None = None) -> Watched:
    strace = shutil.which("strace")
    if strace is None:
        raise WatchUnavailable("strace is not installed (Debian package strace)")
    full = [strace, "-f", "-qq", "-y", "-e", f"trace={TRACED}", "-e", "status=successful", "-o", str(trace_file),
            *cmd]
    try:
        proc = subprocess.run(full, env=dict(env), cwd=cwd, input=stdin, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise WatchUnavailable(f"traced command did not finish within {timeout:.0f} s") from exc
    if not trace_file.exists() or "ptrace" in proc.stderr and "Operation not permitted" in proc.stderr:
        raise WatchUnavailable(f"strace could not trace: {proc.stderr.strip()[-300:]}")
    written, removed, pids = parse(trace_file.read_text(errors="replace"))
    return Watched(proc.returncode, proc.stdout, proc.stderr, written, removed, pids)
