#!/usr/bin/env bash
# Runs the README's test command on a *bare* Debian 12 (bookworm) system: a minimal debootstrap root with nothing
# of ours installed, the committed HEAD cloned into it and ../shared (the face photos) mounted read-only.
# Proves that scripts/setup.sh really installs everything (apt packages, venv, pinned deps) on a new machine, and
# reports the set-up time and the total. The suite runs in a private network namespace (loopback only).
#
#   sudo bash scripts/fresh-debian-check.sh [ROOT_DIR]      (default: /var/tmp/cardbound-bookworm; ~1 GB)
#
# Needs root (debootstrap, chroot, bind mounts) and network access to deb.debian.org and PyPI. Running it again
# reuses the root (already-installed packages stay: delete ROOT_DIR for a truly fresh run). If the host reaches
# PyPI through a TLS-inspecting proxy, PIP_CERT=/path/to/ca-bundle is passed into the root.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="$(cd "$repo/../shared" && pwd)"
root="${1:-/var/tmp/cardbound-bookworm}"

[ "$(id -u)" -eq 0 ] || { echo "fresh-debian-check: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null

if [ ! -x "$root/usr/bin/apt-get" ]; then
  echo "fresh-debian-check: debootstrap bookworm (minbase) into $root"
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
fi

mounts=()
cleanup() {
  for ((i=${#mounts[@]}-1; i>=0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
bind() {  # bind SRC DST [ro]
  mkdir -p "$2"
  mountpoint -q "$2" || { mount --bind "$1" "$2"; mounts+=("$2"); }
  [ "${3:-}" != ro ] || mount -o remount,bind,ro "$2"
}
bind /proc "$root/proc"; bind /sys "$root/sys"; bind /dev "$root/dev"; bind /dev/pts "$root/dev/pts"
mkdir -p "$root/dev/shm"; mountpoint -q "$root/dev/shm" || { mount -t tmpfs tmpfs "$root/dev/shm"; mounts+=("$root/dev/shm"); }
bind "$shared" "$root/work/shared" ro
cp /etc/resolv.conf "$root/etc/resolv.conf"

pip_cert=()
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
  mkdir -p "$root/etc/ssl"
  cp "$PIP_CERT" "$root/etc/ssl/host-ca.pem"
  pip_cert=(PIP_CERT=/etc/ssl/host-ca.pem)
fi

rm -rf "$root/work/main"
git clone -q "$repo" "$root/work/main"
echo "fresh-debian-check: running .ci/run in the bookworm root ($(git -C "$repo" rev-parse --short HEAD))"
in_root() {  # in_root COMMAND: run COMMAND in the root with a clean environment
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 CI=true "${pip_cert[@]}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/bash -c "cd /work/main && $1"
}
start=$(date +%s)
set +e
# 1. Set-up (apt packages, venv, dlib built from source, pinned deps) with the network: the new-machine cost.
in_root 'bash scripts/setup.sh'
rc=$?
setup_s=$(( $(date +%s) - start ))
echo "fresh-debian-check: set-up exit $rc after $setup_s s"
if [ $rc -eq 0 ]; then
  # 2. The README's test command (its set-up step is now a no-op), in a private network namespace with only a
  # loopback: the root's pcscd/vpcd ports, PostgreSQL and Chromium cannot meet the host's (other test runs may
  # use the same fixed vpcd ports on this machine), and nothing in the suite may need the network.
  export root
  unshare --net /bin/bash -c "ip link set lo up && $(declare -f in_root); $(declare -p pip_cert); in_root 'bash .ci/run'"
  rc=$?
fi
set -e
total_s=$(( $(date +%s) - start ))
echo "fresh-debian-check: exit $rc; set-up $setup_s s, total $total_s s"
exit $rc
