"""nbgrader-style markers in master notebooks: find them, check them, strip them.

A master notebook marks its exercises the nbgrader way (docs/architecture.md):

* a **solution cell** holds the answer between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION``; a code cell with nbgrader ``solution: true`` and no markers is
  an answer as a whole, and so is a markdown cell with ``solution: true``;
* a **grade cell** (nbgrader ``grade: true`` with ``grade_id`` and ``points``) holds the
  visible checks, then hidden tests between ``### BEGIN HIDDEN TESTS`` and
  ``### END HIDDEN TESTS``, one group per ``# test: <what it checks>`` line.

:func:`parse_master` checks the markers of a whole notebook and returns its exercises;
:func:`student_notebook` makes the version students get. The same notebooks can be fed
to nbgrader unchanged: the markers and metadata are nbgrader's own.
"""

from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import nbformat

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")  # nbgrader's stub, same words
MARKDOWN_STUB = "YOUR ANSWER HERE"
VISIBLE_PART = "checks shown in the notebook"

# nbgrader treats any line *containing* "BEGIN SOLUTION" as a marker, so we do too.
_MARKER_WORDS = re.compile(r"(BEGIN|END) (SOLUTION|HIDDEN TESTS)")
# A comment line that is a misspelt marker, which nbgrader would miss (its solution would leak):
# its letters, lower-cased, spell one of these.
_NEAR_MISSES = {f"{a}{b}{s}" for a in ("begin", "end") for b in ("solution", "hiddentest") for s in ("", "s")}
_TEST_LINE = re.compile(r"^\s*#\s*test:\s*(.*?)\s*$")
# "# forbidden: course_utils.basics.filters.conv2d, scipy.signal.correlate2d" in a grade cell
_FORBIDDEN_LINE = re.compile(r"^\s*#\s*forbidden:\s*(.*?)\s*$", re.MULTILINE)
_GRADE_ID = re.compile(r"^[A-Za-z0-9_\-]+$")  # nbgrader's rule for grade_id


class MarkerError(ValueError):
    """A master notebook whose markers or exercise metadata are wrong.

    ``problems`` lists one line per problem, each naming the notebook and the cell.
    """

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class Part:
    """One separately scored part of a grade cell: the visible checks or one ``# test:`` group."""

    name: str  # "checks shown in the notebook", or the text after "# test:"
    code: str
    hidden: bool
    outside: Optional[bool] = None  # the teacher's solution was decided outside the kernel (release --grade-masters)


@dataclass
class Exercise:
    """One graded item of a notebook, as the grader key stores it."""

    id: str  # grade_id of the grade cell, e.g. "02_conv2d_tests"
    label: str  # the name in the grade sheet, e.g. "02_conv2d"
    points: float
    kind: str  # "auto" (tests run by the grader) or "manual" (graded by hand)
    cell: int  # index of the grade cell in the master notebook
    solution_id: Optional[str] = None  # grade_id of the solution cell it checks
    names: list[str] = field(default_factory=list)  # what that solution cell defines
    parts: list[Part] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)  # dotted names the solution must not call

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Exercise:
        parts = [Part(**u) for u in data.get("parts", [])]
        return cls(**{**data, "parts": parts})


@dataclass
class Master:
    """What grading and release need to know about one master notebook."""

    name: str  # file name, e.g. "02_filtering.ipynb"
    exercises: list[Exercise]
    first_exercise: Optional[int]  # index of the first solution or grade cell, None if none


# --------------------------------------------------------------------------- cells
def nbgrader_meta(cell: Any) -> dict[str, Any]:
    """The cell's ``metadata.nbgrader`` dict ({} when absent or malformed)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def is_grade_cell(cell: Any) -> bool:
    return bool(nbgrader_meta(cell).get("grade"))


def is_solution_cell(cell: Any) -> bool:
    return bool(nbgrader_meta(cell).get("solution")) or BEGIN_SOLUTION in cell.get("source", "")


def cell_label(nb_name: str, index: int, cell: Any) -> str:
    """``02_filtering.ipynb, cell 15 (code: "def conv2d(image, kernel):")``: how errors name a cell.

    Cells are counted from 1, as a person counts them in Jupyter.
    """
    first = next((line.strip() for line in cell.get("source", "").splitlines() if line.strip()), "")
    first = first if len(first) <= 50 else first[:47] + "..."
    return f'{nb_name}, cell {index + 1} ({cell.get("cell_type", "?")}: "{first}")'


def _marker(line: str) -> Optional[str]:
    """Which marker a line is (``"### BEGIN SOLUTION"`` ...), or None."""
    m = _MARKER_WORDS.search(line)
    return f"### {m.group(0)}" if m else None


def check_cell(nb_name: str, index: int, cell: Any) -> list[str]:
    """Problems with the markers of one cell (empty list when it is fine)."""
    where = cell_label(nb_name, index, cell)
    problems: list[str] = []
    lines = cell.get("source", "").splitlines()
    is_code = cell.get("cell_type") == "code"
    open_block: Optional[tuple[str, int]] = None  # (marker, line number) of the open BEGIN
    for n, line in enumerate(lines, 1):
        marker = _marker(line)
        if marker is None:
            if line.lstrip().startswith("#") and re.sub(r"[^a-z]", "", line.lower()) in _NEAR_MISSES:
                problems.append(f"{where}, line {n}: {line.strip()!r} looks like a marker; "
                                f"write exactly one of {', '.join(MARKERS)}")
            continue
        if not is_code:
            problems.append(f"{where}, line {n}: {marker} outside a code cell; markers only work in code cells")
            continue
        if line.strip() != marker:
            problems.append(f"{where}, line {n}: write the marker alone on its line, exactly {marker!r}")
        if marker.startswith("### BEGIN"):
            if open_block:
                problems.append(f"{where}, line {n}: {marker} inside {open_block[0]} (line {open_block[1]}); "
                                "markers cannot be nested")
            open_block = (marker, n)
        else:
            want = marker.replace("END", "BEGIN")
            if not open_block or open_block[0] != want:
                problems.append(f"{where}, line {n}: {marker} without a matching {want} before it")
            open_block = None
    if open_block:
        problems.append(f"{where}, line {open_block[1]}: {open_block[0]} is never closed")
    source = cell.get("source", "")
    if is_code and BEGIN_HIDDEN in source and not is_grade_cell(cell):
        problems.append(f"{where}: hidden tests in a cell that is not a grade cell; add nbgrader metadata "
                        '{"grade": true, "grade_id": ..., "points": ...}')
    if is_code and BEGIN_SOLUTION in source and is_grade_cell(cell) and not nbgrader_meta(cell).get("solution"):
        problems.append(f"{where}: solution markers in a grade cell; put the solution in its own cell above")
    return problems


def _check_metadata(nb_name: str, index: int, cell: Any) -> list[str]:
    """grade_id and points are present and well formed where nbgrader needs them."""
    meta, where = nbgrader_meta(cell), cell_label(nb_name, index, cell)
    if not (meta.get("grade") or meta.get("solution")):
        return []
    problems = []
    gid = meta.get("grade_id")
    if not isinstance(gid, str) or not _GRADE_ID.match(gid):
        problems.append(f"{where}: nbgrader grade_id {gid!r} is missing or not made of letters, digits, _ and -")
    if meta.get("grade"):
        points = meta.get("points")
        if isinstance(points, bool) or not isinstance(points, (int, float)) or points < 0:
            problems.append(f"{where}: grade cell needs 'points', a number >= 0 (got {points!r})")
    return problems


# --------------------------------------------------------------------------- sources
def split_regions(source: str) -> list[tuple[Optional[str], list[str]]]:
    """Cut a checked cell source into ``(kind, lines)`` runs, kind None/"solution"/"hidden".

    Marker lines themselves are kept in the runs they open or close.
    """
    runs: list[tuple[Optional[str], list[str]]] = [(None, [])]
    for line in source.splitlines():
        marker = _marker(line)
        if marker in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            runs.append(("solution" if marker == BEGIN_SOLUTION else "hidden", [line]))
        elif marker in (END_SOLUTION, END_HIDDEN):
            runs[-1][1].append(line)
            runs.append((None, []))
        else:
            runs[-1][1].append(line)
    return [(kind, lines) for kind, lines in runs if lines]


def strip_solution(source: str) -> str:
    """Replace each solution region by the stub, at the indentation of its BEGIN marker."""
    out: list[str] = []
    for kind, lines in split_regions(source):
        if kind == "solution":
            indent = lines[0][: len(lines[0]) - len(lines[0].lstrip())]
            out += [indent + s for s in STUB]
        else:
            out += lines
    return "\n".join(out)


def strip_hidden(source: str) -> str:
    """Remove every hidden-test region, markers included, and trailing blank lines."""
    kept = [line for kind, lines in split_regions(source) if kind != "hidden" for line in lines]
    return "\n".join(kept).rstrip()


def split_tests(source: str) -> list[Part]:
    """The separately scored parts of a grade cell: visible part first, then each ``# test:`` group.

    Lines of a hidden region before its first ``# test:`` line are shared: they are put
    in front of every group of that region.
    """
    parts: list[Part] = []
    visible = strip_hidden(source)
    if _has_code(visible):
        parts.append(Part(VISIBLE_PART, visible, hidden=False))
    for kind, lines in split_regions(source):
        if kind != "hidden":
            continue
        body = [line for line in lines if _marker(line) is None]
        preamble: list[str] = []
        groups: list[tuple[str, list[str]]] = []
        for line in body:
            m = _TEST_LINE.match(line)
            if m:
                groups.append((m.group(1) or f"hidden test {len(groups) + 1}", list(preamble)))
            (groups[-1][1] if groups else preamble).append(line)
        if not groups and _has_code("\n".join(preamble)):
            groups = [("hidden tests", preamble)]
        parts += [Part(name, "\n".join(code).strip("\n"), hidden=True) for name, code in groups]
    return parts


def _has_code(source: str) -> bool:
    """True when some line is neither blank nor a comment."""
    return any(line.strip() and not line.strip().startswith("#") for line in source.splitlines())


def defined_names(source: str) -> list[str]:
    """Top-level functions, classes and variables a solution cell defines (for error messages)."""
    try:
        tree = ast.parse(_without_magics(source))
    except SyntaxError:
        return re.findall(r"^(?:def|class)\s+(\w+)", source, flags=re.M)
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return list(dict.fromkeys(names))


def _without_magics(source: str) -> str:
    """Blank out IPython lines (``%pip``, ``!ls``) so the rest parses as Python."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


# --------------------------------------------------------------------------- notebooks
def forbidden_names(source: str) -> list[str]:
    """The dotted names listed on ``# forbidden:`` lines of a grade cell (what the solution must not call)."""
    names = [n.strip() for line in _FORBIDDEN_LINE.findall(source) for n in line.split(",")]
    return [n for n in names if n]


def parse_master(nb: Any, nb_name: str) -> Master:
    """Check every marker of a master notebook and return its exercises.

    Raises :class:`MarkerError` listing every problem (unbalanced or nested markers,
    markers outside code cells, duplicate or missing ids, grade cells without points
    or tests), each naming the notebook and the cell.
    """
    problems: list[str] = []
    for i, cell in enumerate(nb.cells):
        problems += check_cell(nb_name, i, cell) + _check_metadata(nb_name, i, cell)
    problems += _duplicate_ids(nb, nb_name)
    if problems:
        raise MarkerError(problems)

    exercises: list[Exercise] = []
    first: Optional[int] = None
    pending: Optional[tuple[Optional[str], list[str]]] = None  # last solution cell not yet paired with tests
    for i, cell in enumerate(nb.cells):
        meta = nbgrader_meta(cell)
        if is_solution_cell(cell) or is_grade_cell(cell):
            first = i if first is None else first
        if is_solution_cell(cell) and not meta.get("grade"):
            names = defined_names(cell.source) if cell.cell_type == "code" else []
            pending = (meta.get("grade_id"), names)
        if not is_grade_cell(cell):
            continue
        manual = bool(meta.get("solution")) or cell.cell_type != "code"
        parts = [] if manual else split_tests(cell.source)
        if not manual and not parts:
            problems.append(f"{cell_label(nb_name, i, cell)}: grade cell without any test code")
        gid = meta["grade_id"]
        exercises.append(Exercise(
            id=gid, label=gid, points=float(meta["points"]), kind="manual" if manual else "auto", cell=i,
            solution_id=pending[0] if pending and not manual else None,
            names=pending[1] if pending and not manual else [], parts=parts,
            forbidden=forbidden_names(cell.source) if not manual else [],
        ))
        pending = None if not manual else pending
    if problems:
        raise MarkerError(problems)
    _set_labels(exercises)
    return Master(name=nb_name, exercises=exercises, first_exercise=first)


def _duplicate_ids(nb: Any, nb_name: str) -> list[str]:
    seen: dict[str, int] = {}
    problems = []
    for i, cell in enumerate(nb.cells):
        gid = nbgrader_meta(cell).get("grade_id")
        if not isinstance(gid, str) or not (is_grade_cell(cell) or is_solution_cell(cell)):
            continue
        if gid in seen:
            problems.append(f"{cell_label(nb_name, i, cell)}: duplicate exercise id {gid!r} "
                            f"(also cell {seen[gid] + 1})")
        else:
            seen[gid] = i
    return problems


def _set_labels(exercises: list[Exercise]) -> None:
    """Name in the grade sheet: ``02_conv2d_tests`` -> ``02_conv2d`` unless that would clash."""
    short = [e.id[: -len("_tests")] if e.id.endswith("_tests") else e.id for e in exercises]
    for e, s in zip(exercises, short):
        e.label = s if short.count(s) == 1 else e.id


def student_cell(cell: Any) -> Any:
    """The student's version of one (checked) cell: no solution, no hidden tests, no outputs."""
    new = nbformat.from_dict(dict(cell))
    new.metadata = nbformat.from_dict({k: v for k, v in cell.get("metadata", {}).items()
                                       if k not in ("execution", "collapsed", "scrolled")})
    meta = nbgrader_meta(cell)
    if cell.cell_type == "code":
        new.outputs, new.execution_count = [], None
        source = strip_hidden(cell.source) if BEGIN_HIDDEN in cell.source else cell.source
        if BEGIN_SOLUTION in source:
            source = strip_solution(source)
        elif meta.get("solution"):  # nbgrader: a solution cell without markers is all answer
            source = "\n".join(STUB)
        new.source = source
    elif meta.get("solution"):
        new.source = MARKDOWN_STUB
        new.pop("attachments", None)
    return new


def student_notebook(nb: Any) -> Any:
    """The notebook students get: every cell through :func:`student_cell`, widget state dropped."""
    out = nbformat.from_dict(dict(nb))
    out.cells = [student_cell(c) for c in nb.cells]
    out.metadata = nbformat.from_dict({k: v for k, v in nb.metadata.items() if k != "widgets"})
    return out


# --------------------------------------------------------------------------- leak check
def secret_lines(nb: Any, min_length: int = 12) -> list[str]:
    """Lines of solutions and hidden tests that appear nowhere else in the master's sources.

    Short or shared lines (``return out``, an import the visible checks make too) are left
    out: finding them in the student version proves nothing.
    """
    inside: set[str] = set()
    outside: set[str] = set()
    for cell in nb.cells:
        meta, source = nbgrader_meta(cell), cell.get("source", "")
        if cell.get("cell_type") == "code" and meta.get("solution") and BEGIN_SOLUTION not in source:
            inside.update(line.strip() for line in source.splitlines())
        elif cell.get("cell_type") == "code":
            for kind, lines in split_regions(source):
                (inside if kind else outside).update(line.strip() for line in lines if _marker(line) is None)
        else:
            (inside if meta.get("solution") else outside).update(line.strip() for line in source.splitlines())
    shown = "\n".join(outside)  # a secret line inside a longer shown line is no secret either
    return sorted(line for line in inside - outside if len(line) >= min_length and line not in shown)


def _strings(obj: Any) -> list[str]:
    """Every string inside a JSON-like structure (sources, outputs, metadata, attachments)."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in _strings(k) + _strings(v)]
    if isinstance(obj, (list, tuple)):
        return [s for v in obj for s in _strings(v)]
    return []


def leaks(master: Any, student: Any) -> list[str]:
    """Secret lines of ``master`` (see :func:`secret_lines`) found anywhere in ``student``,
    markers included."""
    text = _strings(student)
    found = [m for m in MARKERS if any(m in s for s in text)]
    return found + [line for line in secret_lines(master) if any(line in s for s in text)]
