"""Error rates of the desk's one-person-per-template rule on LFW View 1 (issue 9, point 1).

The rule (`biometric.capture._sample_agreement`): two samples of one enrolment are accepted together only when the
distance between their descriptors (one view each, no jitter: what the desk computes for the check) is at most
`SAMPLE_AGREEMENT_THRESHOLD`. LFW's 250x250 faces are too small for the desk's quality preset, so the images are
described with the gate's preset (as `cardbound biometric evaluate` does, reusing its machinery) and the rule is
applied to the descriptors directly. Each pair of a pairs file is one two-photo enrolment:
- impostor pair let through = two different people accepted on one card (the failure the rule exists to stop);
- genuine pair refused = the same person asked to retake.
Pairs with an image that fails to give a descriptor are left out (the desk would refuse that photo on quality).
Descriptors live in memory only.

    .venv/bin/python scripts/measure-consistency.py ../shared/faces/lfw-view1 [--pairs pairsDevTest.txt ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from biometric.capture import SAMPLE_AGREEMENT_THRESHOLD
from biometric.engine import EngineConfig
from biometric.evaluate import _describe_all, _Job, image_path, read_pairs
from biometric.template import DEFAULT_THRESHOLD


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", type=Path, help="the lfw-view1 folder")
    ap.add_argument("--pairs", action="append", help="pairs file(s) in that folder (default: DevTrain and DevTest)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    names = args.pairs or ["pairsDevTrain.txt", "pairsDevTest.txt"]
    files = {n: read_pairs(args.images / n) for n in names}
    keys = sorted({k for pf in files.values() for a, b, _ in pf.pairs for k in (a, b)})
    t0 = time.perf_counter()
    probes: dict[tuple[str, int], np.ndarray] = {}
    jobs = [_Job(k, str(image_path(args.images, k)), False, True, False) for k in keys]
    for res in _describe_all(jobs, EngineConfig(), args.workers):
        if res.probe is not None:
            probes[res.key] = res.probe
    report: dict[str, object] = {
        "rule": "every two samples of one enrolment within SAMPLE_AGREEMENT_THRESHOLD (one descriptor each)",
        "threshold": SAMPLE_AGREEMENT_THRESHOLD,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "describe_s": round(time.perf_counter() - t0, 1),
        "images": len(keys),
        "images_without_descriptor": len(keys) - len(probes),
    }
    for name, pf in files.items():
        row: dict[str, object] = {}
        for kind, pairs in (("genuine", pf.genuine), ("impostor", pf.impostor)):
            d = np.array([float(np.linalg.norm(probes[a] - probes[b])) for a, b in pairs
                          if a in probes and b in probes])
            row[f"{kind}_pairs"] = int(d.size)
            for t in (SAMPLE_AGREEMENT_THRESHOLD, DEFAULT_THRESHOLD):
                share = float(np.mean(d > t)) if kind == "genuine" else float(np.mean(d <= t))
                label = "refused" if kind == "genuine" else "let_through"
                row[f"{kind}_{label}_at_{t:.2f}"] = round(share, 4)
            d.fill(0.0)
        report[name] = row
    for v in probes.values():
        v.fill(0.0)
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
