"""Sandboxed biometric worker and gate lists: what isolation costs per request, and lookup times.

Run: `bash scripts/bench.sh benchmarks/test_bench_isolation.py`.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from biometric.capture import SampleSource
from biometric.isolation import FaceWorker, SandboxedWorker, WorkerTimeout
from verify.banlist import BanEntry, BanList, format_banlist, pseudonymise
from verify.config import GateConfig
from verify.revocation import RevocationList

KEY = bytes(range(32))
EXAMPLE = Path(__file__).resolve().parents[1] / "verify" / "gate.example.toml"


@pytest.fixture(scope="module")
def worker() -> Iterator[SandboxedWorker]:
    with SandboxedWorker(diagnostics=True) as w:
        yield w


@pytest.fixture(scope="module")
def face_worker() -> Iterator[FaceWorker]:
    with FaceWorker() as w:
        yield w


@pytest.fixture(scope="module")
def fr() -> Path:
    return Path(__file__).resolve().parents[2] / "shared" / "faces" / "portraits" / "face_recognition"


def test_bench_round_trip(benchmark: Any, worker: SandboxedWorker) -> None:
    """One request through the pipe: pickled request, JSON reply (no payload)."""
    benchmark(worker.call, "diag.echo", 1, timeout_s=10)


def test_bench_round_trip_512_bytes(benchmark: Any, worker: SandboxedWorker) -> None:
    buf = bytearray(512)
    benchmark(worker.call, "diag.echo", 1, timeout_s=10, payload=secrets.token_bytes(512), into=buf)


def test_bench_start_generic_worker(benchmark: Any) -> None:
    """Spawn + sandbox, no face models (what a restart costs before the models load)."""

    def start_stop() -> None:
        SandboxedWorker().start().close()

    benchmark.pedantic(start_stop, rounds=5, iterations=1)


def test_bench_start_face_worker(benchmark: Any) -> None:
    """Spawn + load dlib models + warm-up + sandbox: the restart time after a crash or hang."""

    def start_stop() -> None:
        FaceWorker().start().close()

    benchmark.pedantic(start_stop, rounds=3, iterations=1)


def test_bench_enrol_one_photo(benchmark: Any, face_worker: FaceWorker, fr: Path) -> None:
    src = SampleSource.photos(str(fr / "biden" / "biden2.jpg"))

    def enrol() -> None:
        face_worker.enrol_template(src, jitter=1).wipe()

    benchmark.pedantic(enrol, rounds=5, iterations=1)


def test_bench_probe_one_photo(benchmark: Any, face_worker: FaceWorker, fr: Path) -> None:
    """Gate probe on one live photo in the worker (decode + detect + describe + 1:1), compared with the same work
    done in-process would be the engine benchmark; the difference is the isolation overhead (~ round trip)."""
    ref = face_worker.enrol_template(SampleSource.photos(str(fr / "biden" / "biden2.jpg")), jitter=1)
    assert ref.template is not None
    src = SampleSource.photos(str(fr / "biden" / "biden.jpg"))
    try:
        benchmark.pedantic(lambda: face_worker.verify_probe(ref.template or bytearray(), src, threshold=0.42),
                           rounds=5, iterations=1)
    finally:
        ref.wipe()


def test_bench_restart_after_hang_until_next_answer(benchmark: Any) -> None:
    """Time from a timed-out request to the next successful answer (generic worker)."""
    w = SandboxedWorker(diagnostics=True).start()

    def hang_then_answer() -> None:
        t0 = time.monotonic()
        with contextlib.suppress(WorkerTimeout):
            w.call("diag.sleep", 10, timeout_s=0.05)
        w.call("diag.echo", 1, timeout_s=30)
        assert time.monotonic() - t0 < 30

    try:
        benchmark.pedantic(hang_then_answer, rounds=3, iterations=1)
    finally:
        w.close()


@pytest.fixture(scope="module")
def big_banlist() -> tuple[BanList, bytes]:
    refs = [secrets.token_bytes(32) for _ in range(10_000)]
    listed = pseudonymise("85.07.30-033.28", KEY)
    refs[5_000] = listed
    text = format_banlist([BanEntry(r, date(2030, 1, 1)) for r in refs], KEY)
    return BanList.parse(text, KEY), listed


def test_bench_banlist_lookup_10k(benchmark: Any, big_banlist: tuple[BanList, bytes]) -> None:
    bl, listed = big_banlist
    assert benchmark(bl.is_banned, listed, date(2026, 11, 24)) is not None


def test_bench_revoked_lookup_10k(benchmark: Any) -> None:
    guids = [secrets.token_bytes(16) for _ in range(10_000)]
    rl = RevocationList(guids)
    assert not benchmark(rl.is_revoked, secrets.token_bytes(16))


def test_bench_load_example_config(benchmark: Any) -> None:
    benchmark(GateConfig.load, EXAMPLE)


def test_bench_list_ages_per_decision(benchmark: Any, big_banlist: tuple[BanList, bytes]) -> None:
    """The age check every decision starts with: CRL, a 10,000-entry ban list and a revoked list at level 2."""
    from datetime import UTC, datetime, timedelta

    from verify.flow import list_health
    from verify.freshness import ListStamp
    from verify.station import BuiltinPolicy

    now = datetime.now(UTC)
    crl = ListStamp("crl", "of the gate bundle", now - timedelta(hours=1), now + timedelta(days=29))
    bl, _ = big_banlist
    revoked = RevocationList([secrets.token_bytes(16)], issued_at=now)
    health = benchmark(lambda: list_health(BuiltinPolicy(), [crl, bl.stamp, revoked.stamp], 2, datetime.now(UTC)))
    assert [h.stamp.name for h in health] == ["crl", "ban list", "revoked list"] and not any(h.stale for h in health)
