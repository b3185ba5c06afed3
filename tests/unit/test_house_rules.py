"""The house's size rules (DESIGN.md): no module over 400 lines, no function over 60, C included.

Anything that must break them for a while is listed in KNOWN_OVERSIZE, with its size: the list
may only shrink. A new oversize module or function fails here, and so does a listed one that was fixed
but left on the list (so the list stays the truth).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tracer", "collector", "ui", "demo_apps", "tests", "bench")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# Debt allowed for a while, if ever: path or path:function -> its size when listed (none today).
KNOWN_OVERSIZE: dict[str, int] = {}
_C_FUNCTION = re.compile(r"^(?:static\s+)?[A-Za-z_][\w\s\*]*\b(\w+)\s*\([^;]*\)\s*\{\s*$")


def sources() -> list[Path]:
    found: list[Path] = []
    for package in PACKAGES:
        found += sorted((ROOT / package).rglob("*.py"))
    found += sorted((ROOT / "collector").rglob("*.c")) + sorted((ROOT / "collector").rglob("*.h"))
    return [p for p in found if "fuzz/corpus" not in p.as_posix()]


def python_functions(path: Path) -> dict[str, int]:
    tree = ast.parse(path.read_text())
    return {
        node.name: node.end_lineno - node.lineno + 1  # type: ignore[operator]
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


def c_functions(path: Path) -> dict[str, int]:
    """Top-level C function definitions: from the line that opens one to its closing brace."""
    lengths: dict[str, int] = {}
    lines = path.read_text().splitlines()
    start, name, depth = 0, "", 0
    for number, line in enumerate(lines):
        if depth == 0 and (match := _C_FUNCTION.match(line)):
            start, name = number, match.group(1)
        depth += line.count("{") - line.count("}")
        if depth == 0 and name:
            lengths[name] = number - start + 1
            name = ""
    return lengths


def oversize() -> dict[str, int]:
    found: dict[str, int] = {}
    for path in sources():
        relative = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            found[relative] = lines
        functions = c_functions(path) if path.suffix in (".c", ".h") else python_functions(path)
        for name, length in functions.items():
            if length > MAX_FUNCTION_LINES:
                found[f"{relative}:{name}"] = length
    return found


def test_no_module_or_function_grows_past_the_house_sizes() -> None:
    new = {where: size for where, size in oversize().items() if where not in KNOWN_OVERSIZE}
    grown = {where: size for where, size in oversize().items() if size > KNOWN_OVERSIZE.get(where, MAX_FUNCTION_LINES)}
    assert not new, f"over the house sizes (modules {MAX_MODULE_LINES} lines, functions {MAX_FUNCTION_LINES}): {new}"
    assert not grown, f"known oversize code grew: {grown}"


def test_the_known_oversize_list_holds_only_what_is_still_oversize() -> None:
    fixed = sorted(set(KNOWN_OVERSIZE) - set(oversize()))
    assert not fixed, f"fixed, take them off KNOWN_OVERSIZE: {fixed}"


def test_the_c_reader_finds_functions() -> None:
    found = c_functions(ROOT / "collector/normalize/otlpfast/span.h")
    assert "walk_span" in found and found["walk_span"] > 10
