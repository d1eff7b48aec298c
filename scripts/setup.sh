#!/usr/bin/env bash
# Installs everything cardbound needs on a fresh Debian 12 machine; safe to run again (does nothing when done).
#   - Debian packages: pcscd + vsmartcard-vpcd (virtual reader), pyscard build deps, PostgreSQL, strace, SoftHSM2
#     (the PKCS#11 token of tests and the demo), openssl (tests read the encrypted key files with it).
#   - a virtualenv in .venv with the pinned dependencies of requirements.lock, and cardbound itself (editable).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

APT_PACKAGES=(pcscd libpcsclite-dev vsmartcard-vpcd swig gcc python3 python3-dev python3-venv
              postgresql strace procps chromium chromium-driver
              libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core poppler-utils openssl softhsm2)

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's python3 (3.11 on bookworm), not whatever python is first on PATH: the venv must be reproducible.
PY=/usr/bin/python3
stamp=.venv/.cardbound-installed
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: building virtualenv .venv (pinned dependencies; pyscard compiles, ~1 min)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 'setuptools==81.0.0' wheel
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps face_recognition==1.3.0
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>/dev/null
  echo "$want" > "$stamp"
fi
