"""Art. 2.5.2.85 §3: verification is 1:1. The package offers no way to search one probe among many templates."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from types import ModuleType

import pytest

import biometric

FORBIDDEN_NAMES = re.compile(r"identif|search|one_to_many|1[_:]?n|best_match|nearest|knn|closest|rank|gallery|"
                             r"compare_many|match_many|compare_faces|face_distance", re.I)
COLLECTION_OF_TEMPLATES = re.compile(r"(Sequence|Iterable|Collection|list|tuple|set|dict|Mapping)\[[^\]]*Template")


def _modules() -> list[ModuleType]:
    mods = [biometric]
    for info in pkgutil.walk_packages(biometric.__path__, "biometric."):
        if info.name.endswith(".cli"):
            continue  # the CLI adapter imports cardbound; it is checked through the same callables anyway
        mods.append(importlib.import_module(info.name))
    return mods


def _public_callables() -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for mod in _modules():
        for name, obj in vars(mod).items():
            if name.startswith("_"):
                continue
            if inspect.isfunction(obj) and obj.__module__.startswith("biometric"):
                out.append((f"{mod.__name__}.{name}", obj))
            elif inspect.isclass(obj) and obj.__module__.startswith("biometric"):
                for mname, meth in vars(obj).items():
                    fn = meth.__func__ if isinstance(meth, classmethod | staticmethod) else meth
                    if not mname.startswith("_") and inspect.isfunction(fn):
                        out.append((f"{mod.__name__}.{name}.{mname}", fn))
    return out


def test_the_scan_sees_the_api() -> None:
    names = {n.rsplit(".", 1)[-1] for n, _ in _public_callables()}
    assert {"compare", "decide", "probe_template", "reference_template", "from_bytes", "analyse"} <= names


def test_no_public_name_suggests_identification() -> None:
    offenders = [n for n, _ in _public_callables() if FORBIDDEN_NAMES.search(n.rsplit(".", 1)[-1])]
    offenders += [
        n
        for m in _modules()
        for n, obj in vars(m).items()
        if not n.startswith("_")
        and FORBIDDEN_NAMES.search(n)
        and getattr(obj, "__module__", m.__name__).startswith("biometric")
    ]
    assert offenders == []


def test_no_callable_accepts_a_collection_of_templates() -> None:
    offenders = []
    for name, fn in _public_callables():
        for p in inspect.signature(fn).parameters.values():  # type: ignore[arg-type]
            ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
            if COLLECTION_OF_TEMPLATES.search(str(ann)):
                offenders.append(f"{name}({p.name}: {ann})")
    assert offenders == []


def test_compare_signature_is_one_reference_one_probe() -> None:
    params = list(inspect.signature(biometric.compare).parameters.values())
    assert [p.name for p in params] == ["reference", "probe"]
    assert all(p.annotation == "Template" for p in params)
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)


def test_the_checks_would_catch_an_identification_function() -> None:
    def identify(probe: "biometric.Template", gallery: "list[biometric.Template]") -> int:  # noqa: UP037
        return 0

    assert FORBIDDEN_NAMES.search("identify")
    ann = inspect.signature(identify).parameters["gallery"].annotation
    assert COLLECTION_OF_TEMPLATES.search(ann)


def test_face_recognition_helpers_are_not_re_exported() -> None:
    with pytest.raises(AttributeError):
        biometric.compare_faces  # type: ignore[attr-defined]  # noqa: B018
