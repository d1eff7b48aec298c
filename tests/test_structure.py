"""The dependency rules of docs/architecture.md, checked on the source: library packages never import the
composition root `cardbound`, and nothing imports `enrol` or `verify` except themselves and `cardbound`."""

from __future__ import annotations

import ast
from enum import Enum
from pathlib import Path

import pytest

from cardbound import exits
from cardbound.errors import CliError, ExitCode
from verify.decision import Reason
from verify.errors import GateCommandError, GateFailure

REPO = Path(__file__).resolve().parents[1]
LIBRARIES = ("biometric", "card", "audit", "enrol", "verify", "iso27001_evidence")


def _imports(package: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted((REPO / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(REPO)), a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((str(path.relative_to(REPO)), node.module))
    return found


@pytest.mark.parametrize("package", [p for p in LIBRARIES if (REPO / p).is_dir()])
def test_library_packages_do_not_import_the_composition_root(package: str) -> None:
    bad = [(f, m) for f, m in _imports(package) if m == "cardbound" or m.startswith("cardbound.")]
    assert bad == []


@pytest.mark.parametrize("package", [p for p in LIBRARIES if (REPO / p).is_dir()])
def test_nothing_imports_enrol_or_verify(package: str) -> None:
    forbidden = {"enrol", "verify"} - {package}
    bad = [(f, m) for f, m in _imports(package) if m.split(".")[0] in forbidden]
    assert bad == []


def test_every_outcome_enum_member_has_its_own_exit_code() -> None:
    for enum_type, table in exits._TABLES.items():
        missing = [m for m in enum_type if m not in table]
        assert missing == [], enum_type
    assert exits.exit_code(Reason.ACCEPTED) == ExitCode.OK
    assert exits.exit_code(Reason.FACE_MISMATCH) == ExitCode.FACE_MISMATCH
    assert exits.exit_code(None) == ExitCode.OK and exits.exit_code(7) == 7


def test_unknown_outcomes_never_mean_success() -> None:
    class Other(Enum):
        X = "x"

    assert exits.exit_code(Other.X) == ExitCode.FAILURE
    assert exits.exit_code("accepted") == ExitCode.FAILURE


def test_typed_errors_map_to_codes_and_other_errors_are_bugs() -> None:
    assert exits.error_exit_code(GateCommandError("x", GateFailure.CONFIG)) == ExitCode.CONFIG
    assert exits.error_exit_code(CliError("x", ExitCode.INPUT)) == ExitCode.INPUT
    assert exits.error_exit_code(RuntimeError("bug")) is None
