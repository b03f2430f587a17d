"""The coursework is real work: how many exercises, how many substantive, every one with mutants.

An exercise is a solution cell (nbgrader ``solution: true``) followed by its grade cell. It is
*substantive* when the student writes at least ``SUBSTANTIVE_LINES`` lines of logic: the lines
between the solution markers, not counting blank lines, comments and docstrings. The counts are
the course design's floor (a demanding teacher's: CS231n-size assignments, not one-liners), and
``tests/test_mutants.py`` runs the wrong answers that this file only requires to exist.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import re
import textwrap
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MUTANTS = ROOT / "tests" / "mutants"
SOLUTION = re.compile(r"^[ \t]*### BEGIN SOLUTION[^\n]*\n(.*?)^[ \t]*### END SOLUTION", re.M | re.S)
MIN_EXERCISES = 55
MIN_SUBSTANTIVE = 20
SUBSTANTIVE_LINES = 10


def logic_lines(body: str) -> int:
    """Lines of ``body`` that hold code: blank lines, comments and docstrings do not count."""
    body = textwrap.dedent(body)
    docstrings: set[int] = set()
    try:
        for node in ast.walk(ast.parse(body)):
            if isinstance(node, ast.Expr) and isinstance(getattr(node.value, "value", None), str):
                docstrings.update(range(node.lineno, node.end_lineno + 1))
    except SyntaxError:  # a block that is not a whole statement list on its own: count its tokens' lines
        pass
    code: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(body).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                            tokenize.ENDMARKER):
            code.update(range(tok.start[0], tok.end[0] + 1))
    return len(code - docstrings)


def exercises() -> dict[str, tuple[str, int]]:
    """grade_id -> (notebook name, lines of logic in its solution blocks)."""
    found = {}
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell["cell_type"] == "code" and meta.get("solution") and "grade_id" in meta:
                source = "".join(cell["source"])
                found[meta["grade_id"]] = (path.name, sum(logic_lines(b) for b in SOLUTION.findall(source)))
    return found


def test_logic_lines_ignore_comments_docstrings_and_blank_lines():
    body = '    """Say what it does."""\n    # a comment\n\n    x = 1  # counted\n    y = [x,\n         2]\n'
    assert logic_lines(body) == 3


def test_the_course_has_enough_exercises_and_enough_real_ones():
    found = exercises()
    substantive = sorted(gid for gid, (_, lines) in found.items() if lines >= SUBSTANTIVE_LINES)
    table = "\n".join(f"{gid}: {lines} lines" for gid, (_, lines) in sorted(found.items()))
    assert len(found) >= MIN_EXERCISES, f"{len(found)} exercises, at least {MIN_EXERCISES} wanted:\n{table}"
    assert len(substantive) >= MIN_SUBSTANTIVE, (
        f"{len(substantive)} exercises with >= {SUBSTANTIVE_LINES} lines of logic, at least {MIN_SUBSTANTIVE} "
        f"wanted:\n{table}")


def test_every_notebook_with_exercises_has_its_mutants():
    by_notebook: dict[str, set[str]] = {}
    for gid, (notebook, _) in exercises().items():
        by_notebook.setdefault(notebook, set()).add(gid)
    listed = {}
    for path in sorted(MUTANTS.glob("nb*.py")):
        spec = importlib.util.spec_from_file_location(f"mutants_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        listed[module.NOTEBOOK] = set(module.MUTANTS)
    missing = {nb: sorted(gids - listed.get(nb, set())) for nb, gids in by_notebook.items()}
    missing = {nb: gids for nb, gids in missing.items() if gids}
    assert not missing, f"exercises without mutants (tests/mutants/nbNN.py): {missing}"
