"""Fast mode changes sizes only: never a schedule, a metric or a code path.

Every notebook chooses its sizes with ``ENV.pick(full=..., fast=...)``. This test reads
each call (with the name it is bound to) from the notebooks' code and fails when a
fast setting is not a smaller size of the same thing: a learning-rate schedule
(``step_size``), a metric switched off (``METEOR``), a boolean, or an ``if ENV.fast:``
branch that runs different code.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
# Names that are never sizes, whatever their values: schedules, optimiser settings, metric switches.
NOT_A_SIZE = re.compile(r"step(_size)?$|^step$|lr|gamma|patience|meteor|alpha|dropout|decay|momentum|threshold|"
                        r"freq|temperature|seed|weight", re.IGNORECASE)  # fmt: skip
A_SIZE = re.compile(r"epochs|images|batch|size|dim|steps|^n(_|$)|per_class|qualities|amounts|beams|captions|points|"
                    r"hidden|max_", re.IGNORECASE)  # fmt: skip


def code_cells(path: Path) -> list[tuple[int, str]]:
    cells = json.loads(path.read_text())["cells"]
    out = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        # IPython magics and shell lines are not Python: a `pass` at the same indentation keeps the cell parsable
        lines = "".join(cell["source"]).splitlines()
        src = "\n".join(line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!"))
                        else line for line in lines)  # fmt: skip
        out.append((i, src))
    return out


def picks(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    """``(bound name, call)`` for every ``ENV.pick(...)`` call: ``X = ENV.pick(...)`` or ``f(x=ENV.pick(...))``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and is_pick(node.value):
            name = node.targets[0].id if isinstance(node.targets[0], ast.Name) else ast.unparse(node.targets[0])
            found.append((name, node.value))
        elif isinstance(node, ast.Call):
            found += [(kw.arg or "", kw.value) for kw in node.keywords if is_pick(kw.value)]
    return found


def is_pick(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and ast.unparse(node.func) == "ENV.pick"


def numbers(node: ast.AST):
    """The value as a number or list of numbers, ``None`` kept; anything else -> ``Ellipsis``."""
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return ...  # a name or an expression (e.g. fast=SYNTH_IMAGES): judged by its name only
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return list(value)
    return "not a size"


def problems_of(name: str, call: ast.Call) -> list[str]:
    args = {kw.arg: kw.value for kw in call.keywords}
    if set(args) != {"full", "fast"}:
        return [f"ENV.pick must name both full= and fast= ({ast.unparse(call)})"]
    full, fast = numbers(args["full"]), numbers(args["fast"])
    out = []
    if NOT_A_SIZE.search(name) or not A_SIZE.search(name):
        out.append(f"{name} = {ast.unparse(call)}: '{name}' is not a size (fast mode may change sizes only)")
    if "not a size" in (full, fast):
        out.append(f"{name} = {ast.unparse(call)}: a fast value that is not a number or a list of numbers")
    elif isinstance(full, list) and isinstance(fast, list) and not set(fast) <= set(full):
        out.append(f"{name} = {ast.unparse(call)}: fast mode must try fewer of the same values, not others")
    elif isinstance(full, (int, float)) and isinstance(fast, (int, float)) and fast > full:
        out.append(f"{name} = {ast.unparse(call)}: fast mode must be smaller, not larger")
    return out


def branches_on_fast(tree: ast.AST) -> list[str]:
    """``if ENV.fast:`` and ``x if ENV.fast else y``: a different code path in fast mode."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.If, ast.IfExp, ast.While)) and "ENV.fast" in ast.unparse(node.test):
            out.append(f"branches on ENV.fast: {ast.unparse(node.test)}")
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_fast_mode_changes_sizes_only(path):
    problems = []
    for index, src in code_cells(path):
        tree = ast.parse(src)
        for name, call in picks(tree):
            problems += [f"cell {index}: {p}" for p in problems_of(name, call)]
        problems += [f"cell {index}: {p}" for p in branches_on_fast(tree)]
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("name, source, bad", [
    ("EPOCHS", "ENV.pick(full=10, fast=2)", False),
    ("QUALITIES", "ENV.pick(full=[95, 75, 10], fast=[75, 10])", False),
    ("MAX_IMAGES", "ENV.pick(full=None, fast=SYNTH_IMAGES)", False),
    ("STEP", "ENV.pick(full=5, fast=1)", True),  # a learning-rate schedule
    ("step_size", "ENV.pick(full=5, fast=1)", True),
    ("METEOR", "ENV.pick(full=None, fast=False)", True),  # a metric switched off
    ("EPOCHS", "ENV.pick(full=2, fast=10)", True),  # larger in fast mode
    ("QUALITIES", "ENV.pick(full=[95, 75], fast=[50])", True),  # other values
    ("lr", "ENV.pick(full=1e-3, fast=1e-2)", True),
])
def test_the_rule_itself(name, source, bad):
    call = ast.parse(source, mode="eval").body
    assert bool(problems_of(name, call)) is bad


def test_a_fast_branch_is_caught():
    assert branches_on_fast(ast.parse("if ENV.fast:\n    x = 1\ny = 2 if ENV.fast else 3"))
