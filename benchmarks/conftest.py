"""Benchmark configuration: the stations' secrets the benchmarks use, as the pass/fail suite sets them.

Private keys are encrypted at rest and a station without a passphrase fails closed (`card.keyfile`), so a benchmark
that builds a keystore needs one; the tokens the benchmarks create take this PIN."""

from __future__ import annotations

import os

os.environ.setdefault("CARDBOUND_KEY_PASSPHRASE", "bench-passphrase-not-secret")
os.environ.setdefault("CARDBOUND_TOKEN_PIN", "4711-bench-pin")
