#!/usr/bin/env bash
# Benchmarks (pytest-benchmark), kept apart from the pass/fail suite. Pass a path to run one area,
# e.g. `bash scripts/bench.sh benchmarks/test_bench_card.py`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
if [ $# -eq 0 ]; then set -- benchmarks; fi
# --benchmark-enable overrides the --benchmark-disable that pyproject addopts sets for the pass/fail suite.
exec .venv/bin/python -m pytest -p no:cacheprovider --benchmark-enable --benchmark-only --benchmark-columns=min,median,max,mean,rounds "$@"
