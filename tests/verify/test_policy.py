"""Gate policy: decisions per ISPS level and category, and strict validation of the [policy] table."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from verify.policy import GatePolicy, ListAges, PolicyError, Requirement


def _base() -> dict[str, Any]:
    return {
        "level1": {
            "seafarer": {"biometric": True, "threshold": 0.42},
            "authority": {"biometric": False},
            "occasional": {"biometric": True, "threshold": 0.40},
        },
        "level2": {
            "seafarer": {"biometric": True, "threshold": 0.40},
            "authority": {"biometric": True, "threshold": 0.42},
            "occasional": {"biometric": True, "threshold": 0.38},
        },
        "level3": {
            "seafarer": {"biometric": True, "threshold": 0.38},
            "authority": {"biometric": True, "threshold": 0.40},
            "occasional": {"admitted": False},
        },
    }


def test_requirements_per_level_and_category() -> None:
    p = GatePolicy.from_mapping(_base())
    assert p.decide_requirements(1, "authority") == Requirement(True, False, 0.0, 1, "authority", "flag")
    assert p.decide_requirements(2, "authority") == Requirement(True, True, 0.42, 2, "authority")
    assert p.decide_requirements(1, "seafarer").threshold == 0.42
    assert p.decide_requirements(3, "seafarer").threshold == 0.38
    occ3 = p.decide_requirements(3, "occasional")
    assert not occ3.admitted
    assert p.requirement(2, "occasional") == p.decide_requirements(2, "occasional")
    assert p.categories == ("authority", "occasional", "seafarer")


def test_unknown_category_is_refused() -> None:
    r = GatePolicy.from_mapping(_base()).decide_requirements(1, "worker")
    assert not r.admitted and r.threshold == 0.0


@pytest.mark.parametrize("level", [0, 4, -1, True])
def test_bad_level_is_an_error(level: int) -> None:
    with pytest.raises(ValueError):
        GatePolicy.from_mapping(_base()).decide_requirements(level, "seafarer")


def _broken(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    d = copy.deepcopy(_base())
    node: Any = d
    for k in path[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return d


_DELETE = object()


@pytest.mark.parametrize(
    "path,value,key,words",
    [
        (("level2",), _DELETE, "policy.level2", "missing"),
        (("level4",), {}, "policy.level4", "unknown key"),
        (("level1", "seafarer", "threshold"), 1.2, "policy.level1.seafarer.threshold", "outside"),
        (("level1", "seafarer", "threshold"), 0, "policy.level1.seafarer.threshold", "outside"),
        (("level1", "seafarer", "threshold"), -0.1, "policy.level1.seafarer.threshold", "outside"),
        (("level1", "seafarer", "threshold"), float("nan"), "policy.level1.seafarer.threshold", "outside"),
        (("level1", "seafarer", "threshold"), "0.4", "policy.level1.seafarer.threshold", "number"),
        (("level1", "seafarer", "threshold"), True, "policy.level1.seafarer.threshold", "number"),
        (("level1", "seafarer", "biometric"), "yes", "policy.level1.seafarer.biometric", "true or false"),
        (("level1", "seafarer", "biometric"), _DELETE, "policy.level1.seafarer.biometric", "missing"),
        (("level1", "seafarer", "threshold"), _DELETE, "policy.level1.seafarer.threshold", "missing"),
        (("level1", "seafarer", "treshold"), 0.4, "policy.level1.seafarer.treshold", "unknown key"),
        (("level1", "authority", "threshold"), 0.4, "policy.level1.authority.threshold", "biometric = false"),
        (("level1", "seafarer"), 0.42, "policy.level1.seafarer", "table"),
        (("level1", "Sea-farer"), {"biometric": False}, "policy.level1.Sea-farer", "lower-case"),
        (("level2", "seafarer"), _DELETE, "policy.level2", "seafarer"),
        (("level3", "crew"), {"admitted": False}, "policy.level3", "crew"),
        (("level3", "occasional", "biometric"), True, "policy.level3.occasional", "not admitted"),
        (("level1", "occasional", "admitted"), "no", "policy.level1.occasional.admitted", "true or false"),
        (("level1",), {}, "policy.level1", "non-empty"),
    ],
)
def test_invalid_policy_names_key_and_problem(path: tuple[str, ...], value: Any, key: str, words: str) -> None:
    with pytest.raises(PolicyError) as err:
        GatePolicy.from_mapping(_broken(path, value))
    assert err.value.key == key
    assert words in err.value.problem


def _weaker(level: str, category: str, rule: dict[str, Any]) -> dict[str, Any]:
    d = _base()
    d[level][category] = rule
    return d


@pytest.mark.parametrize(
    "data,key,words",
    [
        # a higher level may never be weaker than the one below
        (_weaker("level2", "seafarer", {"biometric": True, "threshold": 0.45}), "policy.level2.seafarer.threshold",
         "looser"),
        (_weaker("level2", "seafarer", {"biometric": False}), "policy.level2.seafarer", "not required"),
        (_weaker("level3", "seafarer", {"biometric": False}), "policy.level3.seafarer", "not required"),
        (_weaker("level3", "occasional", {"biometric": True, "threshold": 0.3}) | {
            "level2": _base()["level2"] | {"occasional": {"admitted": False}}},
         "policy.level3.occasional", "refused at level 2"),
    ],
)
def test_higher_level_never_weaker(data: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(PolicyError) as err:
        GatePolicy.from_mapping(data)
    assert err.value.key == key
    assert words in err.value.problem


def test_equal_thresholds_across_levels_are_allowed() -> None:
    d = _base()
    d["level2"]["seafarer"]["threshold"] = 0.42
    d["level3"]["seafarer"]["threshold"] = 0.42
    assert GatePolicy.from_mapping(d).decide_requirements(3, "seafarer").threshold == 0.42


def test_max_validity_days_and_admitted_categories_for_the_desk() -> None:
    data = _base()
    assert GatePolicy.from_mapping(data).max_validity_days == 5 * 365
    data["max_validity_days"] = 730
    policy = GatePolicy.from_mapping(data)
    assert policy.max_validity_days == 730
    assert set(policy.admitted_categories) <= set(policy.categories)
    for bad in (0, 4000, 1.5, True, "730"):
        data["max_validity_days"] = bad
        with pytest.raises(PolicyError) as exc:
            GatePolicy.from_mapping(data)
        assert exc.value.key == "policy.max_validity_days"


def test_several_faces_defaults_and_monotonic() -> None:
    from verify.policy import GatePolicy, PolicyError

    rule = {"biometric": True, "threshold": 0.40}
    policy = GatePolicy.from_mapping({f"level{n}": {"crew": dict(rule)} for n in (1, 2, 3)})
    assert [policy.requirement(n, "crew").several_faces for n in (1, 2, 3)] == ["flag", "refuse", "refuse"]
    assert policy.requirement(1, "unknown").several_faces == "refuse"
    strict = GatePolicy.from_mapping({"level1": {"crew": {**rule, "several_faces": "refuse"}},
                                      "level2": {"crew": dict(rule)}, "level3": {"crew": dict(rule)}})
    assert strict.requirement(1, "crew").several_faces == "refuse"
    with pytest.raises(PolicyError, match="several_faces"):
        GatePolicy.from_mapping({"level1": {"crew": {**rule, "several_faces": "refuse"}},
                                 "level2": {"crew": {**rule, "several_faces": "flag"}}, "level3": {"crew": dict(rule)}})
    with pytest.raises(PolicyError, match="several_faces"):
        GatePolicy.from_mapping({f"level{n}": {"crew": {**rule, "several_faces": "maybe"}} for n in (1, 2, 3)})


def test_list_ages_default_to_twic_and_are_configurable_per_level() -> None:
    from datetime import timedelta

    default = GatePolicy.from_mapping(_base()).list_ages
    assert [default.max_age(n) for n in (1, 2, 3)] == [timedelta(days=7), timedelta(days=1), timedelta(days=1)]
    assert [default.warn_ahead(n) for n in (1, 2, 3)] == [timedelta(hours=48), timedelta(hours=12),
                                                          timedelta(hours=12)]
    data = _base()
    data["lists"] = {"level1": {"max_age_hours": 72}, "level2": {"max_age_hours": 12, "warn_ahead_hours": 3},
                     "level3": {"max_age_hours": 6, "warn_ahead_hours": 0}}
    ages = GatePolicy.from_mapping(data).list_ages
    assert ages.max_age_hours == {1: 72, 2: 12, 3: 6} and ages.warn_ahead_hours == {1: 48, 2: 3, 3: 0}
    small = ListAges.from_mapping({"level1": {"max_age_hours": 4}, "level2": {"max_age_hours": 4},
                                   "level3": {"max_age_hours": 2}})
    assert small.warn_ahead_hours == {1: 3, 2: 3, 3: 1}  # the default warning shrinks below a short maximum


@pytest.mark.parametrize(
    "lists,key,words",
    [
        ({"level1": {"max_age_hours": 0}}, "policy.lists.level1.max_age_hours", "1..744"),
        ({"level1": {"max_age_hours": 745}}, "policy.lists.level1.max_age_hours", "1..744"),
        ({"level2": {"max_age_hours": "24"}}, "policy.lists.level2.max_age_hours", "whole number"),
        ({"level2": {"max_age_hours": 24.5}}, "policy.lists.level2.max_age_hours", "whole number"),
        ({"level2": {"max_age_hours": True}}, "policy.lists.level2.max_age_hours", "whole number"),
        ({"level1": {"max_age_hours": 24}, "level2": {"max_age_hours": 48}}, "policy.lists.level2.max_age_hours",
         "longer than level 1"),
        ({"level1": {"max_age_hours": 24, "warn_ahead_hours": 24}}, "policy.lists.level1.warn_ahead_hours",
         "less than max_age_hours"),
        ({"level3": {"warn_ahead_hours": -1}}, "policy.lists.level3.warn_ahead_hours", "from 0"),
        ({"level3": {"max_age": 24}}, "policy.lists.level3.max_age", "unknown key"),
        ({"level4": {}}, "policy.lists.level4", "unknown key"),
        ({"level1": 24}, "policy.lists.level1", "must be a table"),
        ([24, 24, 24], "policy.lists", "must be a table"),
    ],
)
def test_bad_list_ages_are_config_errors(lists: Any, key: str, words: str) -> None:
    data = _base()
    data["lists"] = lists
    with pytest.raises(PolicyError) as err:
        GatePolicy.from_mapping(data)
    assert err.value.key == key and words in err.value.problem, str(err.value)
