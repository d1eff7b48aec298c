#!/usr/bin/env bash
# The test command: installs what is missing, then runs the pass/fail suite (benchmarks excluded).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
# No path given: pyproject's testpaths (tests/). A path given (e.g. tests/flows/test_keeps_nothing.py): just that.
exec .venv/bin/python -m pytest "$@"
