#!/usr/bin/env bash
# The main job: installs what is missing, then tells the cardbound story (`cardbound demo`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
exec .venv/bin/cardbound demo "$@"
