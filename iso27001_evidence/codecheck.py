"""Static check of the installed code for any 1:N comparison (art. 2.5.2.85 §3 2°: verification only checks the
live sample against *the* enrolled template).

Reads the source files of the installed packages (it imports nothing) and reports:
- a function or method whose name says identification/search (identify, search, 1:N, nearest, gallery, ...);
- a parameter annotated as a collection of templates (`list[Template]`, `Sequence[Template]`, ...);
- a call to face_recognition's many-at-once helpers (`compare_faces`, `face_distance`), which take a list;
- a comparison (`compare`, `distance`) called inside a loop over something named like templates/references.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

FORBIDDEN_NAMES = re.compile(r"identif|search|one_to_many|1[_:]?n\b|_1n_|best_match|nearest|knn|closest|gallery|"
                             r"compare_many|match_many|compare_faces|face_distance|^rank|_rank", re.I)
COLLECTION_OF_TEMPLATES = re.compile(r"(Sequence|Iterable|Collection|list|tuple|set|dict|Mapping)\[[^\]]*Template")
MANY_AT_ONCE = {"compare_faces", "face_distance"}
COMPARISONS = {"compare", "distance", "face_distance", "compare_faces", "match"}
PLURAL_TEMPLATES = re.compile(r"templates|references|gallery|enrolled|database|candidates", re.I)


@dataclass(frozen=True)
class CodeFinding:
    path: Path
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _call_name(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Attribute):
        return f.attr
    if isinstance(f, ast.Name):
        return f.id
    return ""


def check_source(source: str, path: Path) -> list[CodeFinding]:
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        return [CodeFinding(path, exc.lineno or 0, f"cannot parse: {exc.msg}")]
    out: list[CodeFinding] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if FORBIDDEN_NAMES.search(node.name):
                out.append(CodeFinding(path, node.lineno, f"function name suggests identification: {node.name}"))
            args = node.args
            for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if a is not None and a.annotation is not None:
                    ann = ast.unparse(a.annotation)
                    if COLLECTION_OF_TEMPLATES.search(ann):
                        out.append(CodeFinding(path, node.lineno,
                                               f"{node.name}() takes a collection of templates: {a.arg}: {ann}"))
        elif isinstance(node, ast.Call) and _call_name(node) in MANY_AT_ONCE:
            out.append(CodeFinding(path, node.lineno, f"call to a 1:N helper: {_call_name(node)}()"))
        elif isinstance(node, ast.For | ast.comprehension):
            iterated = ast.unparse(node.iter)
            if PLURAL_TEMPLATES.search(iterated):
                body = node.body if isinstance(node, ast.For) else [node]
                calls = {_call_name(c) for b in body for c in ast.walk(b) if isinstance(c, ast.Call)}
                if calls & COMPARISONS:
                    out.append(CodeFinding(path, getattr(node, "lineno", 0) or getattr(node.iter, "lineno", 0),
                                           f"comparison inside a loop over {iterated}"))
    return out


def python_files(roots: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        files.extend(p for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts)
    return files


def check(roots: Iterable[Path]) -> tuple[list[CodeFinding], int]:
    """Findings over every .py file under `roots`, and the number of files read."""
    files = python_files(roots)
    findings: list[CodeFinding] = []
    for f in files:
        findings.extend(check_source(f.read_text(encoding="utf-8", errors="replace"), f))
    return findings, len(files)
