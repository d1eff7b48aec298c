"""Accuracy report on LFW-style pairs files: our engine (as the gate uses it) next to stock `face_recognition`.

Protocol (docs/biometric.md):
- every image is loaded and analysed exactly as at the gate (`load_path` → `FaceEngine.analyse(allow_several=True)`
  with the GATE quality preset: the face nearest the centre); the first image of a pair plays the enrolment sample
  (`reference_template`: chip and mirror image), the second the live probe (`probe_template`);
- each image's descriptors are computed ONCE and kept in memory only (they are biometric data: no disk cache);
- a pair whose image gives no template (failure to acquire) counts as a non-match (conservative);
- the threshold is the default one, or the one with the best accuracy on `--tune-on` pairs (the lowest end of the
  best range); the report also gives the accuracy at `DEFAULT_THRESHOLD`, the one the gate runs;
- FNMR@FMR uses every same-identity (reference, probe) image combination of the test images as genuine attempts
  (FTA counts as a non-match) and every cross-identity combination as impostor attempts (FTA excluded);
- stock = `face_recognition.face_encodings(img)` with its defaults, first face, threshold 0.6 — reproduced call for
  call with the same dlib models (`stock_descriptor`) rather than imported: `import face_recognition` loads the
  68-point landmark model at import time, which no shipped path may do (a test checks the two agree).

Plots and progress bars come from the optional `evaluate` extra (matplotlib, tqdm): a gate or desk install does not
carry them, and this command says so clearly when they are missing (`MissingExtra`).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biometric.engine import EngineConfig, FaceEngine
from biometric.errors import BiometricError
from biometric.quality import GATE, QualityFailure
from biometric.sources import load_path
from biometric.template import DEFAULT_THRESHOLD

STOCK_THRESHOLD = 0.6
FMR_TARGETS = (0.01, 0.001, 0.0001)

ImageKey = tuple[str, int]
EXTRA_HINT = "pip install 'cardbound[evaluate]'"


class MissingExtra(RuntimeError):
    """The accuracy report needs the optional `evaluate` extra (matplotlib for the DET plot, tqdm for progress)."""


def _require_extra() -> None:
    import importlib.util

    missing = [m for m in ("matplotlib", "tqdm") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtra(
            f"the accuracy report needs {', '.join(missing)} (optional extra 'evaluate', not part of a gate or desk "
            f"install): {EXTRA_HINT}"
        )


@dataclass(frozen=True)
class PairsFile:
    genuine: list[tuple[ImageKey, ImageKey]]
    impostor: list[tuple[ImageKey, ImageKey]]

    @property
    def pairs(self) -> list[tuple[ImageKey, ImageKey, bool]]:
        return [(a, b, True) for a, b in self.genuine] + [(a, b, False) for a, b in self.impostor]


class PairsFormatError(ValueError):
    pass


def read_pairs(path: Path, limit: int | None = None) -> PairsFile:
    """Parse an LFW pairs file (first line N, then N `name i j` lines and N `name1 i name2 j` lines)."""
    lines = [ln.split() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines or len(lines[0]) not in (1, 2):
        raise PairsFormatError(f"{path}: first line must be the number of matched pairs")
    try:
        genuine: list[tuple[ImageKey, ImageKey]] = []
        impostor: list[tuple[ImageKey, ImageKey]] = []
        for parts in lines[1:]:
            if len(parts) == 3:
                genuine.append(((parts[0], int(parts[1])), (parts[0], int(parts[2]))))
            elif len(parts) == 4:
                impostor.append(((parts[0], int(parts[1])), (parts[2], int(parts[3]))))
            else:
                raise PairsFormatError(f"{path}: bad line {' '.join(parts)!r}")
    except ValueError as exc:
        raise PairsFormatError(f"{path}: {exc}") from exc
    if limit is not None:
        genuine, impostor = genuine[:limit], impostor[:limit]
    return PairsFile(genuine, impostor)


def image_path(images: Path, key: ImageKey) -> Path:
    name, idx = key
    return images / name / f"{name}_{idx:04d}.jpg"


# -- workers (one engine per process) ---------------------------------------------------------------------
_engine: FaceEngine | None = None


def _init_worker(config: EngineConfig) -> None:
    global _engine
    _engine = FaceEngine(config, GATE)
    _engine.warm_up()


@dataclass(frozen=True)
class _Job:
    key: ImageKey
    path: str
    ref: bool
    probe: bool
    stock: bool


@dataclass
class _Result:
    key: ImageKey
    ref: np.ndarray | None = None
    probe: np.ndarray | None = None
    stock: np.ndarray | None = None
    fta: str | None = None
    stock_fta: bool = False


def _work(job: _Job) -> _Result:
    assert _engine is not None
    res = _Result(job.key)
    if job.ref or job.probe:
        frame = None
        try:
            frame = load_path(job.path)
            sample = _engine.analyse(frame, allow_several=True)
            frame.fill(0)
            if job.probe:
                res.probe = _engine.probe_template(sample).vector.copy()
            if job.ref:
                res.ref = _engine.reference_template([sample]).vector.copy()
            sample.wipe()
        except QualityFailure as exc:
            res.fta = str(exc.reason)
        except BiometricError as exc:
            res.fta = type(exc).__name__
        finally:
            if frame is not None:
                frame.fill(0)
    if job.stock:
        res.stock = stock_descriptor(_engine, job.path)
        res.stock_fta = res.stock is None
    return res


def stock_descriptor(engine: FaceEngine, path: str | Path) -> np.ndarray | None:
    """`face_recognition.face_encodings(face_recognition.load_image_file(path))[0]` (face_recognition 1.3.0 defaults:
    Pillow RGB decode, HOG with one upsample on the full image, the first box, 5-point landmarks, one un-jittered
    descriptor), with the engine's dlib models and without importing face_recognition; None when no face."""
    from PIL import Image

    with Image.open(path) as im:
        img = np.array(im.convert("RGB"))
    try:
        m = engine._m
        rects = m.hog(img, 1)
        if not len(rects):
            return None
        shape = m.shape(img, rects[0])
        return np.array(m.resnet.compute_face_descriptor(img, shape, 1), dtype=np.float64)
    finally:
        img.fill(0)


def _jobs(images: Path, test: PairsFile, tune: PairsFile | None) -> list[_Job]:
    need: dict[ImageKey, list[bool]] = {}  # key -> [ref, probe, stock]
    for pf, is_test in ((test, True), (tune, False)):
        if pf is None:
            continue
        for a, b, _ in pf.pairs:
            for key, role in ((a, 0), (b, 1)):
                flags = need.setdefault(key, [False, False, False])
                flags[role] = True
                flags[0] = flags[1] = True  # the multi-frame protocol enrols and probes with every image
                if is_test:
                    flags[1] = True  # every test image is a probe in the impostor matrix
                    flags[2] = True
    return [_Job(k, str(image_path(images, k)), f[0], f[1], f[2]) for k, f in sorted(need.items())]


def _describe_all(jobs: list[_Job], config: EngineConfig, workers: int) -> Iterator[_Result]:
    from tqdm import tqdm

    missing = [j.path for j in jobs if not Path(j.path).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} images missing, e.g. {missing[0]}")
    ctx = mp.get_context("fork")
    # Heaviest jobs (references: two descriptors or more) first, so the two workers finish together.
    order = sorted(jobs, key=lambda j: (not j.ref, not j.stock))
    with ctx.Pool(workers, initializer=_init_worker, initargs=(config,)) as pool:
        yield from tqdm(
            pool.imap_unordered(_work, order, chunksize=4),
            total=len(order),
            desc="describing",
            unit="img",
            file=sys.stderr,
        )


# -- metrics ----------------------------------------------------------------------------------------------
def pair_distances(
    pf: PairsFile, refs: dict[ImageKey, np.ndarray], probes: dict[ImageKey, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(distances, is_genuine) for the pairs; inf where a template is missing (FTA → non-match)."""
    d, g = [], []
    for a, b, same in pf.pairs:
        ra, pb = refs.get(a), probes.get(b)
        d.append(float(np.linalg.norm(ra - pb)) if ra is not None and pb is not None else np.inf)
        g.append(same)
    return np.asarray(d), np.asarray(g, dtype=bool)


def _finite_mean(distances: np.ndarray) -> float | None:
    """Mean of the acquired (finite) distances; None when there is none (a small pairs file, every face missed),
    rather than NaN, which is not JSON, and numpy's warning."""
    finite = distances[np.isfinite(distances)]
    return float(finite.mean()) if finite.size else None


def accuracy(dist: np.ndarray, genuine: np.ndarray, threshold: float) -> float:
    match = dist <= threshold
    return float(np.mean(match == genuine))


def best_interval(dist: np.ndarray, genuine: np.ndarray) -> tuple[float, float, float]:
    """(accuracy, lo, hi): the best accuracy and the range of thresholds [lo, hi) that reach it (first such range)."""
    finite = np.sort(np.unique(dist[np.isfinite(dist)]))
    if finite.size == 0:
        return 0.0, DEFAULT_THRESHOLD, DEFAULT_THRESHOLD
    # Candidate thresholds: each distinct distance (a pair at exactly t matches) and one below the smallest.
    cands = np.concatenate(([np.nextafter(finite[0], -np.inf)], finite))
    gs, is_ = np.sort(dist[genuine]), np.sort(dist[~genuine])
    tp = np.searchsorted(gs, cands, side="right")
    tn = is_.size - np.searchsorted(is_, cands, side="right")
    acc = (tp + tn) / dist.size
    i = int(np.argmax(acc))
    hi = float(finite[i]) if i < finite.size else float(finite[-1]) + 1e-6  # the next distance already changes it
    return float(acc[i]), float(cands[i]), hi


def best_threshold(dist: np.ndarray, genuine: np.ndarray) -> float:
    """The lowest threshold with the best accuracy on the tuning pairs.

    Any threshold in the best interval classifies the tuning pairs equally well; an access-control system prefers
    the end with fewer false matches, so we take its lower bound (the largest genuine distance that still matches),
    not the midpoint."""
    return best_interval(dist, genuine)[1]


def comparison_sets(
    ref_keys: list[ImageKey],
    probe_keys: list[ImageKey],
    refs: dict[ImageKey, np.ndarray],
    probes: dict[ImageKey, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor distances over all (reference, probe) combinations of distinct images.

    Genuine attempts where either side failed to acquire count as non-matches (distance inf); impostor attempts
    with a missing side are left out (there is nothing to compare)."""
    all_keys = sorted(set(ref_keys) | set(probe_keys))
    index = {k: i for i, k in enumerate(all_keys)}
    ids = {k[0] for k in all_keys}
    id_index = {n: i for i, n in enumerate(sorted(ids))}
    r_img = np.array([index[k] for k in ref_keys])
    p_img = np.array([index[k] for k in probe_keys])
    r_id = np.array([id_index[k[0]] for k in ref_keys])
    p_id = np.array([id_index[k[0]] for k in probe_keys])
    r_ok = np.array([k in refs for k in ref_keys])
    p_ok = np.array([k in probes for k in probe_keys])
    r = np.stack([refs.get(k, np.zeros(128)) for k in ref_keys]).astype(np.float64)
    p = np.stack([probes.get(k, np.zeros(128)) for k in probe_keys]).astype(np.float64)
    d2 = (r * r).sum(1)[:, None] + (p * p).sum(1)[None, :] - 2.0 * r @ p.T
    dist = np.sqrt(np.clip(d2, 0.0, None))
    both = r_ok[:, None] & p_ok[None, :]
    dist[~both] = np.inf
    same_id = r_id[:, None] == p_id[None, :]
    same_img = r_img[:, None] == p_img[None, :]
    genuine = dist[same_id & ~same_img].copy()
    impostor = dist[~same_id & both].copy()
    for a in (dist, d2, r, p):
        a.fill(0.0)
    return genuine, impostor


def fnmr_at_fmr(genuine: np.ndarray, impostor: np.ndarray, targets: tuple[float, ...] = FMR_TARGETS) -> dict[str, Any]:
    imp = np.sort(impostor)
    out: dict[str, Any] = {}
    for f in targets:
        k = int(np.floor(f * imp.size))
        if imp.size == 0 or k < 1:
            out[str(f)] = None  # not resolvable with this many impostor attempts
            continue
        # Largest threshold with at most k impostors at distance <= t.
        t = float(np.nextafter(imp[k], -np.inf))
        out[str(f)] = {"fnmr": float(np.mean(genuine > t)) if genuine.size else None, "threshold": t}
    return out


def det_points(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FMR, FNMR) over thresholds at every genuine distance and at log-spaced impostor quantiles, so that the low
    FMR end is resolved as far as the impostor count allows."""
    imp = np.sort(impostor)
    gen = np.sort(genuine)
    q = np.logspace(-7, 0, 300)
    ts = np.unique(np.concatenate((gen[np.isfinite(gen)], np.quantile(imp, q) if imp.size else [])))
    fmr = np.searchsorted(imp, ts, side="right") / max(1, imp.size)
    fnmr = 1.0 - np.searchsorted(gen, ts, side="right") / max(1, gen.size)
    return fmr, fnmr


def write_det(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    floor = 1e-6  # a zero FNMR is drawn on the floor of the log axis; zero-FMR points are not drawn
    for label, (fmr, fnmr) in curves.items():
        ok = fmr > 0
        ax.plot(fmr[ok], np.maximum(fnmr[ok], floor), label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(1e-3, 1.0)
    ax.set_xlabel("FMR (false match rate)")
    ax.set_ylabel("FNMR (false non-match rate, FTA included)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- several frames per decision (LFW people with several images) ---------------------------------------
FUSION_RULES = ("mean_descriptor", "min_distance", "mean_distance")
FUSE_K = (2, 3)


def _fused(rule: str, ref: np.ndarray, probes: np.ndarray) -> float:
    """Distance of a reference (unit) to a set of probe frames (unit rows) under a fusion rule."""
    if rule == "mean_descriptor":  # what the gate does (`capture.probe_distance(fuse=K)`)
        m = probes.mean(axis=0)
        return float(np.linalg.norm(ref - m / np.linalg.norm(m)))
    d = np.linalg.norm(probes - ref, axis=1)
    return float(d.min() if rule == "min_distance" else d.mean())


def multiframe_sets(
    keys: list[ImageKey], refs: dict[ImageKey, np.ndarray], probes: dict[ImageKey, np.ndarray], k: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Genuine and impostor distances when each probe is a set of `k` images (LFW stands in for live frames).

    People with at least k + 1 acquired images take part. Each of their images is once the enrolment reference;
    its genuine probe set is the next k of the person's other images (cyclic order), and it meets one impostor set
    per other participant (that person's first k images). "single" is the one-frame baseline on the same people:
    every (reference, other image) pair of a person, and every reference against every image of every other
    participant. Failures to acquire are left out (the gate would take another frame; an enrolment would be
    redone), so these figures are not comparable with the pairs protocol's, only with each other."""
    by_id: dict[str, list[ImageKey]] = {}
    for key in sorted(keys):
        if key in refs and key in probes:
            by_id.setdefault(key[0], []).append(key)
    people = {n: ks for n, ks in by_id.items() if len(ks) >= k + 1}
    out: dict[str, tuple[list[float], list[float]]] = {r: ([], []) for r in (*FUSION_RULES, "single")}
    sets = {n: np.stack([probes[x] for x in ks[:k]]) for n, ks in people.items()}
    for name, ks in people.items():
        for j, r_key in enumerate(ks):
            ref = refs[r_key]
            others = [ks[(j + i) % len(ks)] for i in range(1, len(ks))]
            genuine_set = np.stack([probes[x] for x in others[:k]])
            for rule in FUSION_RULES:
                out[rule][0].append(_fused(rule, ref, genuine_set))
            out["single"][0].extend(float(np.linalg.norm(ref - probes[x])) for x in others)
            for other, imp_set in sets.items():
                if other == name:
                    continue
                for rule in FUSION_RULES:
                    out[rule][1].append(_fused(rule, ref, imp_set))
                out["single"][1].extend(float(np.linalg.norm(ref - probes[x])) for x in people[other])
    return {r: (np.asarray(g), np.asarray(i)) for r, (g, i) in out.items()}


def _rates(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> dict[str, float | None]:
    """FNMR and FMR at `threshold`; None for a rate with no attempt (a small pairs file has no multi-frame people)."""
    return {"fnmr": float(np.mean(genuine > threshold)) if genuine.size else None,
            "fmr": float(np.mean(impostor <= threshold)) if impostor.size else None}


def multiframe_report(
    tune: tuple[list[ImageKey], dict[ImageKey, np.ndarray], dict[ImageKey, np.ndarray]] | None,
    test: tuple[list[ImageKey], dict[ImageKey, np.ndarray], dict[ImageKey, np.ndarray]],
    threshold: float,
) -> dict[str, Any]:
    """The multi-frame protocol on the tuning side (choice of the rule and of its threshold) and the test side.

    Rule: the lowest FNMR at FMR 0.1 % on the tuning images, at the largest k. Its threshold: the one at which its
    FMR on the tuning images equals the single-frame FMR at `threshold` there (same false-accept risk as one
    frame; the gain goes to genuine users)."""
    report: dict[str, Any] = {"k": list(FUSE_K), "single_frame_threshold": threshold}
    chosen, fused_t = "mean_descriptor", threshold
    if tune is not None:
        side: dict[str, Any] = {}
        for k in FUSE_K:
            sets = multiframe_sets(*tune, k)
            side[str(k)] = {r: {"fnmr_at_fmr": fnmr_at_fmr(g, i, (0.01, 0.001)), "genuine": int(g.size),
                                "impostor": int(i.size)} for r, (g, i) in sets.items()}
        kmax = str(max(FUSE_K))

        def at_001(rule: str) -> float:
            v = side[kmax][rule]["fnmr_at_fmr"]["0.001"]
            return 1.0 if v is None else float(v["fnmr"])

        chosen = min(FUSION_RULES, key=lambda r: (at_001(r), FUSION_RULES.index(r)))
        sets = multiframe_sets(*tune, max(FUSE_K))
        target_fmr = _rates(*sets["single"], threshold)["fmr"]
        imp = np.sort(sets[chosen][1])
        n_ok = int(np.floor(target_fmr * imp.size)) if target_fmr is not None else imp.size
        fused_t = float(np.nextafter(imp[n_ok], -np.inf)) if n_ok < imp.size else threshold
        report["tune"] = side
        report["tune_single_fmr_at_threshold"] = target_fmr
    report["rule"] = chosen
    report["fused_threshold"] = fused_t
    test_side: dict[str, Any] = {}
    for k in FUSE_K:
        sets = multiframe_sets(*test, k)
        g, i = sets[chosen]
        sg, si = sets["single"]
        test_side[str(k)] = {
            "fused": {"fnmr_at_fmr": fnmr_at_fmr(g, i, (0.01, 0.001)), "at_fused_threshold": _rates(g, i, fused_t),
                      "genuine": int(g.size), "impostor": int(i.size)},
            "single": {"fnmr_at_fmr": fnmr_at_fmr(sg, si, (0.01, 0.001)), "at_threshold": _rates(sg, si, threshold),
                       "genuine": int(sg.size), "impostor": int(si.size)},
            "people": len({x[0] for x in test[0] if x in test[1] and x in test[2]} & _people_with(test, k + 1)),
        }
    report["test"] = test_side
    return report


def _people_with(side: tuple[list[ImageKey], dict[ImageKey, np.ndarray], dict[ImageKey, np.ndarray]],
                 n: int) -> set[str]:
    keys, refs, probes = side
    count: dict[str, int] = {}
    for key in keys:
        if key in refs and key in probes:
            count[key[0]] = count.get(key[0], 0) + 1
    return {name for name, c in count.items() if c >= n}


# -- the run ----------------------------------------------------------------------------------------------
def evaluate(
    pairs: Path,
    images: Path,
    *,
    tune_on: Path | None = None,
    out: Path | None = None,
    config: EngineConfig | None = None,
    workers: int | None = None,
    limit: int | None = None,
    stock: bool = True,
) -> dict[str, Any]:
    _require_extra()
    config = config or EngineConfig()
    workers = workers or min(2, os.cpu_count() or 1)
    t0 = time.perf_counter()
    test = read_pairs(pairs, limit)
    tune = read_pairs(tune_on, limit) if tune_on else None
    jobs = _jobs(images, test, tune)
    if not stock:
        jobs = [_Job(j.key, j.path, j.ref, j.probe, False) for j in jobs]
    refs: dict[ImageKey, np.ndarray] = {}
    probes: dict[ImageKey, np.ndarray] = {}
    stocks: dict[ImageKey, np.ndarray] = {}
    fta: dict[ImageKey, str] = {}
    stock_fta: set[ImageKey] = set()
    for res in _describe_all(jobs, config, workers):
        if res.ref is not None:
            refs[res.key] = res.ref
        if res.probe is not None:
            probes[res.key] = res.probe
        if res.stock is not None:
            stocks[res.key] = res.stock
        if res.fta:
            fta[res.key] = res.fta
        if res.stock_fta:
            stock_fta.add(res.key)
    describe_s = time.perf_counter() - t0

    tune_interval: list[float] | None = None
    tune_acc_default: float | None = None
    if tune is not None:
        td, tg = pair_distances(tune, refs, probes)
        _, lo, hi = best_interval(td, tg)
        threshold, source = lo, f"tuned on {tune_on.name if tune_on else ''} (lowest of the best-accuracy range)"
        tune_acc: float | None = accuracy(td, tg, threshold)
        tune_acc_default = accuracy(td, tg, DEFAULT_THRESHOLD)
        tune_interval = [lo, hi]
    else:
        threshold, source, tune_acc = DEFAULT_THRESHOLD, "default", None

    test_keys = sorted({k for a, b, _ in test.pairs for k in (a, b)})
    test_refs = sorted({a for a, _, _ in test.pairs})
    d, g = pair_distances(test, refs, probes)
    gen, imp = comparison_sets(test_refs, test_keys, refs, probes)
    ours: dict[str, Any] = {
        "pipeline": "cardbound biometric: gate preset (central face), HOG + fallbacks (CNN on small images), "
        "5 landmarks, reference = chip + mirror image, unit templates",
        "pairs": int(d.size),
        "images": len(test_keys),
        "fta": sum(1 for k in test_keys if k in fta) / len(test_keys),
        "fta_reasons": _count(fta[k] for k in test_keys if k in fta),
        "threshold": threshold,
        "threshold_source": source,
        "tune_accuracy": tune_acc,
        "tune_best_interval": tune_interval,
        "accuracy": accuracy(d, g, threshold),
        # The gate runs at the configured DEFAULT_THRESHOLD: the same figures there, for the tuning and test pairs.
        "default_threshold": DEFAULT_THRESHOLD,
        "tune_accuracy_at_default": tune_acc_default,
        "accuracy_at_default": accuracy(d, g, DEFAULT_THRESHOLD),
        "accuracy_acquired_pairs": accuracy(d[np.isfinite(d)], g[np.isfinite(d)], threshold),
        "genuine_mean_distance": _finite_mean(d[g]),
        "impostor_mean_distance": _finite_mean(d[~g]),
        "fnmr_at_fmr": fnmr_at_fmr(gen, imp),
        "genuine_comparisons": int(gen.size),
        "impostor_comparisons": int(imp.size),
        "enrol_jitters": config.enrol_jitters,
        "enrol_mirror": config.enrol_mirror,
        "config": asdict(config),
        "seconds": round(describe_s, 1),
    }
    tune_keys = sorted({k for a, b, _ in tune.pairs for k in (a, b)}) if tune is not None else []
    ours["multi_frame"] = multiframe_report(
        (tune_keys, refs, probes) if tune is not None else None, (test_keys, refs, probes), threshold
    )
    curves = {f"cardbound (t={threshold:.3f})": det_points(gen, imp)}
    report: dict[str, Any] = dict(ours)
    if stock:
        sd, sg = pair_distances(test, stocks, stocks)
        sgen, simp = comparison_sets(test_keys, test_keys, stocks, stocks)
        report["stock"] = {
            "pipeline": "face_recognition.face_encodings(img) defaults (same dlib calls, not imported), first face",
            "pairs": int(sd.size),
            "fta": len(stock_fta & set(test_keys)) / len(test_keys),
            "threshold": STOCK_THRESHOLD,
            "accuracy": accuracy(sd, sg, STOCK_THRESHOLD),
            "genuine_mean_distance": _finite_mean(sd[sg]),
            "impostor_mean_distance": _finite_mean(sd[~sg]),
            "fnmr_at_fmr": fnmr_at_fmr(sgen, simp),
            "genuine_comparisons": int(sgen.size),
            "impostor_comparisons": int(simp.size),
        }
        curves["face_recognition stock"] = det_points(sgen, simp)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    report["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report["machine"] = f"{platform.node()} {platform.machine()} {os.cpu_count()} CPU, workers={workers}"
    report["pairs_file"] = str(pairs)
    report["tune_file"] = str(tune_on) if tune_on else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        stem = pairs.stem
        write_det(out / f"det_{stem}.png", curves, f"DET on {pairs.name}")
        (out / f"report_{stem}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        report["det_png"] = str(out / f"det_{stem}.png")
    for store in (refs, probes, stocks):
        for v in store.values():
            v.fill(0)
    return report


def _count(items: Iterator[str] | Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for it in items:
        out[it] = out.get(it, 0) + 1
    return out
