#!/usr/bin/env bash
# Installs everything cardbound needs on a fresh Debian 12 machine; safe to run again (does nothing when done).
#   - Debian packages: pcscd + vsmartcard-vpcd (virtual reader), pyscard build deps, PostgreSQL, strace, SoftHSM2
#     (the PKCS#11 token of tests and the demo), openssl (tests read the encrypted key files with it).
#   - dlib built once from the upstream sdist (hash-checked, one patch: scripts/dlib-patches/) against OpenBLAS (the
#     descriptor is ~6x faster than the dlib-bin wheel's), kept as a wheel outside the repository and reused by
#     every later run and checkout;
#   - a virtualenv in .venv with the pinned dependencies of requirements.lock, and cardbound itself (editable).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

APT_PACKAGES=(pcscd libpcsclite-dev vsmartcard-vpcd swig gcc python3 python3-dev python3-venv
              postgresql strace procps chromium chromium-driver
              libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core poppler-utils openssl softhsm2
              g++ make cmake patch pkg-config libopenblas-dev liblapack-dev)  # (last line) dlib from source, BLAS

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

# dlib: the upstream sdist, built against OpenBLAS. dlib's own CMake only adds -mavx; its HOG detector then runs
# ~2x slower than the dlib-bin wheel's (measured: the same detector code vectorises far better with AVX2 + FMA).
# So on a CPU that has AVX2 and FMA (x86-64-v3: this project's machines, CI included) we add -mavx2 -mfma; on
# any other CPU dlib's own detection (AVX or SSE4, else plain) applies. The wheel is built on, and for, the machine
# that runs it; its folder name carries the flags, so a change of flags builds a new one.
DLIB_VERSION="$(sed -n 's/^dlib==//p' requirements.lock)"
DLIB_CXXFLAGS=""
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then DLIB_CXXFLAGS="-mavx2 -mfma"; fi
# The sdist's SHA-256 (PyPI's): the source we patch and build is exactly upstream's release.
DLIB_SDIST_SHA256=7cb2a09467de032332c743bc967007f016598c66c9c9ebc54a5b66d3d9e46d54
# Patches applied to that source before the build (scripts/dlib-patches/, docs/biometric.md): one, the CPU
# convolution's input unrolled as runs of pixels (the descriptor: ~12 instead of ~18 ms; same results bit for bit).
# CARDBOUND_DLIB_PATCHES=none builds the plain upstream source instead (its own wheel folder).
DLIB_PATCHES=()
case "${CARDBOUND_DLIB_PATCHES:-all}" in
  all) DLIB_PATCHES=(scripts/dlib-patches/*.patch) ;;
  none) ;;
  *) echo "setup: CARDBOUND_DLIB_PATCHES must be 'all' or 'none', not '${CARDBOUND_DLIB_PATCHES}'" >&2; exit 2 ;;
esac
wheel_root="${CARDBOUND_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/cardbound/wheels}"
# The folder name carries a hash of the flags and of the patches' content: a change of either builds a new wheel.
build_key="$( { printf '%s\n' "$DLIB_CXXFLAGS"; for p in "${DLIB_PATCHES[@]}"; do sha256sum < "$p"; done; } \
              | sha256sum | cut -c1-12)"
wheels="$wheel_root/dlib-$DLIB_VERSION-blas-$build_key"

want="$( (cat requirements.lock pyproject.toml; echo "$wheels") | sha256sum | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: building virtualenv .venv (pinned dependencies; pyscard compiles, ~1 min)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 'setuptools==81.0.0' wheel
  if ! ls "$wheels"/dlib-"$DLIB_VERSION"-*.whl >/dev/null 2>&1; then
    log="$(mktemp /tmp/cardbound-dlib-build.XXXXXX.log)"
    echo "setup: building dlib $DLIB_VERSION from source with OpenBLAS (CXXFLAGS='$DLIB_CXXFLAGS'), once:"
    echo "       ~10 min on 2 idle cores (27 min on a busy one); log: $log; wheel kept in $wheels"
    mkdir -p "$wheel_root"
    tmpw="$(mktemp -d "$wheel_root/.tmp.XXXXXX")"
    src="$tmpw/src"
    sdist="$src/dlib-$DLIB_VERSION.tar.gz"
    if ! .venv/bin/python -m pip download -q --disable-pip-version-check --no-cache-dir --no-deps \
         --no-binary dlib -d "$src" "dlib==$DLIB_VERSION" >"$log" 2>&1 || [ ! -f "$sdist" ]; then
      echo "setup: could not download the dlib $DLIB_VERSION sdist; see $log" >&2; rm -rf "$tmpw"; exit 1
    fi
    if [ "$(sha256sum < "$sdist" | cut -d' ' -f1)" != "$DLIB_SDIST_SHA256" ]; then
      echo "setup: the dlib $DLIB_VERSION sdist's SHA-256 is not upstream's ($DLIB_SDIST_SHA256)" >&2
      rm -rf "$tmpw"; exit 1
    fi
    tar xzf "$sdist" -C "$src"
    for p in "${DLIB_PATCHES[@]}"; do
      if ! patch -p1 --forward --quiet -d "$src/dlib-$DLIB_VERSION" < "$p" >>"$log" 2>&1; then
        echo "setup: $p does not apply to dlib $DLIB_VERSION; see $log" >&2; rm -rf "$tmpw"; exit 1
      fi
    done
    # --no-cache-dir: never reuse a wheel pip built earlier with other flags. CMake takes CXXFLAGS from the
    # environment; the DLIB_* variables are passed to CMake by dlib's setup.py.
    if ! CXXFLAGS="$DLIB_CXXFLAGS" DLIB_USE_CUDA=0 DLIB_NO_GUI_SUPPORT=1 .venv/bin/python -m pip wheel -v \
         --disable-pip-version-check --no-cache-dir --no-deps -w "$tmpw" "$src/dlib-$DLIB_VERSION" \
         >>"$log" 2>&1; then
      echo "setup: the dlib build failed; see $log" >&2; rm -rf "$tmpw"; exit 1
    fi
    rm -rf "$src"
    if ! grep -q "Found OpenBLAS" "$log"; then
      echo "setup: dlib was built without OpenBLAS (libopenblas-dev missing?); see $log" >&2; rm -rf "$tmpw"; exit 1
    fi
    grep -E "Found OpenBLAS|Enabling (AVX|SSE4)|CXX compiler identification" "$log" > "$tmpw/BUILD-INFO.txt" || true
    echo "CXXFLAGS=$DLIB_CXXFLAGS" >> "$tmpw/BUILD-INFO.txt"
    echo "sdist_sha256=$DLIB_SDIST_SHA256" >> "$tmpw/BUILD-INFO.txt"
    for p in "${DLIB_PATCHES[@]}"; do echo "patch=$(basename "$p") $(sha256sum < "$p" | cut -c1-12)"; done \
      >> "$tmpw/BUILD-INFO.txt"
    rm -rf "$wheels" && mv "$tmpw" "$wheels"
  fi
  # dlib-bin (the earlier wheel) installs the same `dlib` package: it must go before the source build goes in.
  .venv/bin/python -m pip uninstall -q -y dlib-bin 2>/dev/null || true
  # Our wheel first, by file: the pin in requirements.lock is then already satisfied and no index is asked.
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --force-reinstall \
    "$wheels"/dlib-"$DLIB_VERSION"-*.whl
  # What the installed dlib was built from, for `biometric.buildinfo` (the benchmarks print it).
  cp "$wheels/BUILD-INFO.txt" .venv/cardbound-dlib-build.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps face_recognition==1.3.0
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>/dev/null
  echo "$want" > "$stamp"
fi
