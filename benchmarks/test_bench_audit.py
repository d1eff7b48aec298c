"""Audit log benchmarks (pytest-benchmark; run with `bash scripts/bench.sh benchmarks/test_bench_audit.py`).

Targets from issue #5: >= 20,000 events/s batched on SQLite; full verification of 1,000,000 events <= 10 s;
inclusion proof generation + check in O(log n) at 10^3, 10^5, 10^6 entries.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from audit import AuditLog, GateDecision, merkle
from audit.verify import verify_database

NODE = "bench-gate"


def _event(i: int) -> GateDecision:
    return GateDecision(
        gate_id="gate-07", card_id=f"card-{i % 9973:05d}", decision="granted" if i % 7 else "refused",
        reason_code="match" if i % 7 else "no-match", security_level=1, total_ms=300 + i % 400,
        capture_ms=120, compare_ms=2,
    )


EVENTS = [_event(i) for i in range(10_000)]


def _build(path: Path, n: int) -> Path:
    with AuditLog.open(path / "audit.sqlite3", NODE, key_file=path / "k.ed25519") as log:
        for start in range(0, n, 10_000):
            log.append_many(EVENTS[: min(10_000, n - start)])
    return path / "audit.sqlite3"


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    return {n: _build(tmp_path_factory.mktemp(f"log{n}"), n) for n in (1_000, 100_000, 1_000_000)}


@pytest.fixture()
def fresh_log(tmp_path: Path) -> Iterator[AuditLog]:
    with AuditLog.open(tmp_path / "audit.sqlite3", NODE, key_file=tmp_path / "k.ed25519") as log:
        yield log


def test_append_single(benchmark: BenchmarkFixture, fresh_log: AuditLog) -> None:
    """One event per durable transaction (a gate logging one decision)."""
    it = itertools.cycle(EVENTS)
    benchmark.extra_info["unit"] = "one event per commit"
    benchmark(lambda: fresh_log.append(next(it)))


def test_append_batched_1000(benchmark: BenchmarkFixture, fresh_log: AuditLog) -> None:
    """1,000 events per durable transaction; events/s = 1000 / time."""
    batch = EVENTS[:1000]
    benchmark.extra_info["events_per_round"] = 1000
    benchmark.pedantic(lambda: fresh_log.append_many(batch), rounds=20, iterations=1)  # type: ignore[no-untyped-call]


def test_verify_1m(benchmark: BenchmarkFixture, logs: dict[int, Path]) -> None:
    """Full offline verification of 1,000,000 entries (content hashes, tree, 1,000 signed checkpoints)."""
    db = logs[1_000_000]

    def run() -> None:
        report = verify_database(db)
        assert report.ok and report.entries == 1_000_000

    benchmark.pedantic(run, rounds=3, iterations=1)  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("n", [1_000, 100_000, 1_000_000])
def test_inclusion_proof(benchmark: BenchmarkFixture, logs: dict[int, Path], n: int) -> None:
    """Generate an inclusion proof for a random entry from the stored tree levels and check it."""
    with AuditLog.open(logs[n], NODE, key_file=logs[n].parent / "k.ed25519") as log:
        root = log.root(n)
        rng = random.Random(n)

        def run() -> None:
            i = rng.randrange(n)
            merkle.verify_inclusion(i, n, log.entry(i).leaf, log.inclusion_proof(i, n), root)

        benchmark.pedantic(run, rounds=200, iterations=1)  # type: ignore[no-untyped-call]
