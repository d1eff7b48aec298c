"""Crash safety (writers killed with SIGKILL at random moments) and several processes appending at once."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from audit_writer import run

from audit.verify import verify_database

HERE = Path(__file__).resolve().parent
NODE = "gate-07"


def _entries(db: Path) -> dict[int, str]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT idx, body FROM entries").fetchall()
    finally:
        conn.close()
    out = {}
    for idx, body in rows:
        start = body.index(b'"card_id":"') + 11
        out[idx] = body[start : body.index(b'"', start)].decode()
    return out


def _forked_writer(db: Path, key: Path, tag: str, batch: int) -> tuple[int, int]:
    """Fork a real child process that appends until killed; return (pid, read end of its ack pipe)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no pytest machinery, no exceptions escaping, exit hard
        try:
            os.close(r)
            with os.fdopen(w, "w") as out:
                run(db, key, NODE, 10_000, tag, batch, out)
        finally:
            os._exit(0)
    os.close(w)
    return pid, r


def _spawned_writer(db: Path, key: Path, tag: str, batch: int) -> tuple[int, int]:
    """The same writer as a fresh interpreter (when forking is unsafe); returns once its log is open."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "audit_writer.py"), str(db), str(key), NODE, "10000", tag, str(batch)],
        stdout=subprocess.PIPE, env=_ENV,
    )
    assert proc.stdout is not None
    fd = os.dup(proc.stdout.fileno())
    proc.stdout.close()
    ready = os.read(fd, 6)  # "ready\n": startup is not the moment under test
    assert ready == b"ready\n", ready
    proc.returncode = 0  # reaped below with os.waitpid; keep Popen's destructor from warning
    return proc.pid, fd


_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), str(HERE)])}


def test_sigkill_at_random_moments_loses_no_acknowledged_event(tmp_path: Path) -> None:
    db, key = tmp_path / "audit.sqlite3", tmp_path / "k.ed25519"
    rng = random.Random(9162)
    acked: dict[int, str] = {}
    kills = 0
    # fork() is fast (the whole test takes ~2 s) but only safe in a single-threaded process; when earlier
    # tests left threads behind, fresh interpreters are used instead (slower, same test).
    start_writer = _forked_writer if threading.active_count() == 1 else _spawned_writer
    for run_no in range(100):
        pid, r = start_writer(db, key, f"r{run_no}", rng.choice((1, 1, 3, 17)))
        time.sleep(rng.uniform(0.0, 0.03))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        kills += os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        with os.fdopen(r) as pipe:
            for line in pipe.read().splitlines():
                parts = line.split(" ")
                if len(parts) == 2 and line.endswith(tuple("0123456789")):  # a torn last line is no ack
                    acked[int(parts[0])] = parts[1]
    assert kills >= 95  # nearly every writer really died mid-flight
    stored = _entries(db)
    assert acked, "no writer ever acknowledged an append"
    lost = {i: t for i, t in acked.items() if stored.get(i) != t}
    assert not lost, f"acknowledged events lost or changed: {list(lost.items())[:5]}"
    assert sorted(stored) == list(range(len(stored)))  # one contiguous chain
    report = verify_database(db)
    assert report.ok, [f.line() for f in report.findings]


def test_concurrent_writers_produce_one_valid_chain(tmp_path: Path) -> None:
    db, key = tmp_path / "audit.sqlite3", tmp_path / "k.ed25519"
    env = _ENV
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "audit_writer.py"), str(db), str(key), NODE, "120", f"w{n}", str(batch)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n, batch in enumerate((1, 1, 5, 13))
    ]
    acked: dict[int, str] = {}
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        for line in out.splitlines()[1:]:  # after "ready"
            i, t = line.split(" ")
            assert int(i) not in acked, f"index {i} handed out twice"
            acked[int(i)] = t
    assert len(acked) == 480
    assert _entries(db) == acked
    report = verify_database(db)
    assert report.ok and report.entries == 480, [f.line() for f in report.findings]
    assert not report.findings or all(f.severity == "warning" for f in report.findings)


def test_verifying_while_a_writer_appends_sees_a_consistent_snapshot(tmp_path: Path) -> None:
    db, key = tmp_path / "audit.sqlite3", tmp_path / "k.ed25519"
    with open(os.devnull, "w") as sink:
        run(db, key, NODE, 5, "seed", 1, sink)  # create the log and its key first
    writer = subprocess.Popen(
        [sys.executable, str(HERE / "audit_writer.py"), str(db), str(key), NODE, "1500", "live", "3"],
        stdout=subprocess.DEVNULL, env=_ENV,
    )
    reports = []
    deadline = time.monotonic() + 120
    try:
        # Until the writer is done, or 200 verifications once the log has grown under them: a count alone could
        # be used up while the writer is still importing (seen on a loaded machine: 200 reports, all of 5 entries).
        while writer.poll() is None and time.monotonic() < deadline:
            reports.append(verify_database(db))
            if len(reports) >= 200 and reports[-1].entries > reports[0].entries:
                break
    finally:
        writer.wait(timeout=120)
    assert writer.returncode == 0 and len(reports) >= 3
    bad = [[f.line() for f in r.findings] for r in reports if not r.ok]
    assert not bad, bad[:2]
    assert reports[-1].entries > reports[0].entries  # it really was growing under the verifier
