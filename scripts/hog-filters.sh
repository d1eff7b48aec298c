#!/usr/bin/env bash
# dlib's HOG face detector on a 640x360 frame: all 5 filters (what the engine runs) against the frontal filter alone,
# built standalone from the pinned upstream sdist with the engine's flags (docs/biometric.md, "Speed"). The frame is
# synthetic (no face is needed to time the scan). Needs the set-up's compilers; ~2 min to build, in a temp dir.
#
#   bash scripts/hog-filters.sh [ROUNDS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
rounds="${1:-40}"
version="$(sed -n 's/^dlib==//p' requirements.lock)"
sha="$(sed -n 's/^DLIB_SDIST_SHA256=//p' scripts/setup.sh)"
flags=""
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then flags="-mavx -mavx2 -mfma"; fi
work="$(mktemp -d /tmp/cardbound-hog.XXXXXX)"
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m pip download -q --disable-pip-version-check --no-deps --no-binary dlib -d "$work" \
  "dlib==$version" >/dev/null 2>&1
[ "$(sha256sum < "$work/dlib-$version.tar.gz" | cut -d' ' -f1)" = "$sha" ] || { echo "sdist hash differs" >&2; exit 1; }
tar xzf "$work/dlib-$version.tar.gz" -C "$work"
cat > "$work/hog.cpp" <<'CPP'
#include <dlib/image_processing/frontal_face_detector.h>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <vector>
using namespace dlib;
static double median_ms(frontal_face_detector& det, const array2d<rgb_pixel>& img, int rounds) {
    det(img);
    std::vector<double> ts;
    for (int i = 0; i < rounds; ++i) {
        auto t0 = std::chrono::steady_clock::now(); det(img); auto t1 = std::chrono::steady_clock::now();
        ts.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(ts.begin(), ts.end());
    return ts[ts.size() / 2];
}
int main(int argc, char** argv) {
    const int rounds = std::atoi(argv[1]);
    array2d<rgb_pixel> img(360, 640);
    for (long r = 0; r < 360; ++r) for (long c = 0; c < 640; ++c) {
        unsigned char v = (unsigned char)((r * 3 + c * 5 + (r * c) % 31) & 255);
        img[r][c] = rgb_pixel(v, (unsigned char)(v / 2 + 40), (unsigned char)(255 - v));
    }
    frontal_face_detector all = get_frontal_face_detector();
    frontal_face_detector frontal(all.get_scanner(), all.get_overlap_tester(), all.get_w(0));
    std::cout << "HOG on 640x360, median of " << rounds << ": " << all.num_detectors() << " filters "
              << median_ms(all, img, rounds) << " ms, frontal filter alone " << median_ms(frontal, img, rounds)
              << " ms\n";
}
CPP
echo "hog-filters: building against dlib $version (CXXFLAGS='-O3 $flags'), ~2 min" >&2
g++ -O3 $flags -DNDEBUG -DDLIB_NO_GUI_SUPPORT -I "$work/dlib-$version" "$work/hog.cpp" \
  "$work/dlib-$version/dlib/all/source.cpp" -lpthread -o "$work/hog"
"$work/hog" "$rounds"
