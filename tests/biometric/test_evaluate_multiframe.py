"""The multi-frame protocol of the accuracy report, on synthetic unit descriptors (fast; the LFW run is the evidence).

Each synthetic person is a random direction; each image is that direction plus independent noise, as live frames
of one person are. Averaging frames then averages the noise away: the fused genuine distances must be smaller
than the single-frame ones, the impostor distances must not collapse, and the counts follow the protocol.
"""

from __future__ import annotations

import numpy as np

from biometric.evaluate import FUSION_RULES, _fused, multiframe_report, multiframe_sets


def _people(rng: np.random.Generator, n_people: int, n_images: int, noise: float, prefix: str = "p"):  # type: ignore[no-untyped-def]
    keys, vecs = [], {}
    for p in range(n_people):
        centre = rng.normal(size=128)
        centre /= np.linalg.norm(centre)
        for i in range(1, n_images + 1):
            v = centre + rng.normal(scale=noise / np.sqrt(128), size=128)
            key = (f"{prefix}{p:03d}", i)
            keys.append(key)
            vecs[key] = v / np.linalg.norm(v)
    return keys, vecs


def test_counts_follow_the_protocol() -> None:
    rng = np.random.default_rng(1)
    keys, vecs = _people(rng, 5, 4, 0.6)
    few, few_vecs = _people(rng, 3, 2, 0.6, prefix="q")  # two images each: too few for k = 2
    keys += few
    vecs.update(few_vecs)
    sets = multiframe_sets(keys, vecs, vecs, 2)
    for rule in FUSION_RULES:
        g, i = sets[rule]
        assert g.size == 5 * 4  # every image of the 5 eligible people once as the reference
        assert i.size == 5 * 4 * 4  # ... against one set of each of the 4 other eligible people
    sg, si = sets["single"]
    assert sg.size == 5 * 4 * 3 and si.size == 5 * 4 * 4 * 4


def test_fusion_lowers_genuine_distances_not_impostor_ones() -> None:
    rng = np.random.default_rng(2)
    keys, vecs = _people(rng, 30, 5, 0.9)
    sets = multiframe_sets(keys, vecs, vecs, 3)
    g1, i1 = sets["single"]
    gm, im = sets["mean_descriptor"]
    assert np.median(gm) < np.median(g1) - 0.05
    assert np.median(im) > np.median(gm) + 0.5 and abs(np.median(im) - np.median(i1)) < 0.1


def test_mean_descriptor_rule_is_the_distance_to_the_renormalised_mean() -> None:
    ref = np.zeros(128)
    ref[0] = 1.0
    probes = np.zeros((2, 128))
    probes[0, 0] = probes[1, 0] = 1.0
    probes[0, 1], probes[1, 1] = 1.0, -1.0
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    assert abs(_fused("mean_descriptor", ref, probes)) < 1e-12  # the two tilts cancel
    assert abs(_fused("min_distance", ref, probes) - _fused("mean_distance", ref, probes)) < 1e-12


def test_report_picks_a_rule_and_a_threshold_on_the_tuning_side() -> None:
    rng = np.random.default_rng(3)
    tune = _people(rng, 40, 5, 0.9, prefix="t")
    test = _people(rng, 40, 5, 0.9, prefix="s")
    rep = multiframe_report((tune[0], tune[1], tune[1]), (test[0], test[1], test[1]), 0.9)
    assert rep["rule"] in FUSION_RULES and 0.0 < rep["fused_threshold"] < 2.0
    for k in ("2", "3"):
        fused, single = rep["test"][k]["fused"], rep["test"][k]["single"]
        assert fused["fnmr_at_fmr"]["0.01"]["fnmr"] <= single["fnmr_at_fmr"]["0.01"]["fnmr"]
        assert rep["test"][k]["people"] == 40
