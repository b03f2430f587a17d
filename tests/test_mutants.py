"""Every exercise rejects plausible wrong answers ("mutants"), and the master solution passes.

For each notebook with a file in tests/mutants/, the master notebook runs ONCE in a kernel
in fast mode (as tests/test_notebooks.py runs it). When execution reaches an exercise's
grade cell, each mutant of that exercise replaces the lines between the solution markers,
the solution cell is re-executed, and the grade cell's visible part and each hidden
``# test:`` group run separately: at least one must fail. A mutant marked ``common`` must
already fail the visible part, with a check's message (``CheckError``/``AssertionError``)
that contains its ``hint`` when one is given, so the student sees the mistake before
handing in. Then the correct solution is restored and must pass the visible part and
every hidden group before the notebook goes on.

Markers are parsed here with regular expressions, independently of course_utils.grading.
Visible parts and hidden groups run in a copy of the kernel's globals, so the variables
they define do not leak into the rest of the notebook.

A mutant file (tests/mutants/nbNN.py) defines ``NOTEBOOK`` (the file name) and
``MUTANTS = {grade_id: [dict(name=..., source=..., block=0, common=False, hint=None)]}``;
``source`` is written without indentation (re-indented to the marker's), ``block`` picks
the solution block when a cell has several.
"""

from __future__ import annotations

import importlib.util
import os
import re
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
MUTANT_FILES = sorted((Path(__file__).resolve().parent / "mutants").glob("nb*.py"))
SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n(.*?)^[ \t]*### END SOLUTION", re.M | re.S)
HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n(.*?)^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.M | re.S)
TEST_LINE = re.compile(r"^# test:.*$", re.M)
CHECK_ERRORS = ("CheckError", "AssertionError")
MUTANT_TIMEOUT = 120  # seconds per cell: a mutant may loop far longer than the solution
MIN_MUTANTS = 3


def load_mutants(path: Path):
    spec = importlib.util.spec_from_file_location(f"mutants_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.NOTEBOOK, module.MUTANTS


def exercises(nb) -> dict[str, tuple[int, int]]:
    """grade_id of each solution cell -> (index of the solution cell, index of its grade cell)."""
    found, solution_at = {}, {}
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and "grade_id" in meta:
            solution_at[meta["grade_id"]] = i
        elif meta.get("grade") and meta.get("grade_id", "").endswith("_tests"):
            gid = meta["grade_id"][: -len("_tests")]
            assert gid in solution_at, f"grade cell {meta['grade_id']} has no solution cell before it"
            found[gid] = (solution_at[gid], i)
    return found


def replace_block(source: str, block: int, body: str) -> str:
    """``source`` with the lines between the ``block``-th pair of solution markers replaced by ``body``."""
    matches = list(SOLUTION.finditer(source))
    assert block < len(matches), f"no solution block {block} (the cell has {len(matches)})"
    m = matches[block]
    indented = textwrap.indent(textwrap.dedent(body).strip("\n") + "\n", m.group(1))
    return source[: m.start(2)] + indented + source[m.end(2):]


def split_grade(source: str) -> tuple[str, list[tuple[str, str]]]:
    """Visible part and the hidden ``(title, code)`` groups of a grade cell."""
    m = HIDDEN.search(source)
    if not m:
        return source, []
    visible, hidden = source[: m.start()], m.group(1)
    starts = [t.start() for t in TEST_LINE.finditer(hidden)]
    groups = [hidden[a:b] for a, b in zip(starts, starts[1:] + [len(hidden)])]
    return visible, [(g.splitlines()[0][len("# test:"):].strip(), g) for g in groups]


def isolated(code: str) -> str:
    """Kernel code that runs ``code`` in a copy of the globals (nothing it defines leaks)."""
    return f"exec(compile({code!r}, '<check>', 'exec'), dict(globals()))"


class Kernel:
    """One kernel running one notebook; ``run`` returns None on success, else (ename, evalue).

    Cells run with ``stop_on_error=False`` (nbclient's ``allow_errors``) and the kernel's reply
    decides: after a failing cell, ipykernel 6 aborts the requests that reach it before it has
    recovered, and nbclient takes an aborted cell for a success, so the next mutant would silently
    not be defined and the checks would judge the previous one (seen with the oldest versions).
    """

    def __init__(self, client: NotebookClient):
        self.client = client
        self.reply: dict = {}
        client.allow_errors = True
        client.on_cell_executed = self._keep_reply

    def _keep_reply(self, cell, cell_index, execute_reply) -> None:
        self.reply = execute_reply or {}

    def run(self, code: str, timeout: int = MUTANT_TIMEOUT):
        cell = nbformat.v4.new_code_cell(code)
        cell.metadata["execution"] = {}
        self.client.timeout = timeout
        self.reply = {}
        try:
            self.client.execute_cell(cell, 0, store_history=False)
        except CellExecutionError as err:  # allow_errors makes nbclient return instead; kept for safety
            return err.ename, err.evalue
        content = self.reply.get("content", {})
        if content.get("status") == "error":
            return content.get("ename", "Error"), content.get("evalue", "")
        assert content.get("status") == "ok", f"the kernel answered {content.get('status')!r} to:\n{code[:300]}"
        return None


def check_exercise(kernel: Kernel, gid: str, solution: str, grade: str, mutants: list[dict]) -> list[str]:
    """Problems found for one exercise (empty when every mutant is rejected and the solution passes)."""
    problems = []
    visible, groups = split_grade(grade)
    for mutant in mutants:
        label = f"{gid} / mutant {mutant['name']!r}"
        failed = kernel.run(replace_block(solution, mutant.get("block", 0), mutant["source"]))
        if failed:
            problems.append(f"{label}: the mutant's solution cell itself fails ({failed[0]}: {failed[1][:200]})")
            continue
        seen = kernel.run(isolated(visible))
        if mutant.get("common"):
            if seen is None:
                problems.append(f"{label}: common mistake, but the visible check accepts it")
            elif seen[0] not in CHECK_ERRORS:
                problems.append(f"{label}: the visible check fails with {seen[0]} ({seen[1][:200]}), "
                                "not with a check's message")
            elif mutant.get("hint") and mutant["hint"].lower() not in seen[1].lower():
                problems.append(f"{label}: the visible check's message {seen[1][:300]!r} does not say "
                                f"{mutant['hint']!r}")
        if seen is None and all(kernel.run(isolated(code)) is None for _, code in groups):
            problems.append(f"{label}: accepted by the visible check and by every hidden test")
    restored = kernel.run(solution)
    if restored:  # say so: otherwise the master's checks below would report a mutant's answer
        return problems + [f"{gid}: re-running the master solution cell fails ({restored[0]}: {restored[1][:300]})"]
    for title, code in [("visible check", visible)] + groups:
        failed = kernel.run(isolated(code))
        if failed:
            problems.append(f"{gid}: the master solution fails {title!r} ({failed[0]}: {failed[1][:300]})")
    return problems


@pytest.mark.parametrize("path", MUTANT_FILES, ids=lambda p: p.stem)
def test_mutant_files_cover_every_exercise(path):
    notebook, mutants = load_mutants(path)
    nb = nbformat.read(NOTEBOOK_DIR / notebook, as_version=4)
    found = exercises(nb)
    assert sorted(mutants) == sorted(found), f"{notebook}: mutants for {sorted(mutants)}, exercises {sorted(found)}"
    for gid, listed in mutants.items():
        assert len(listed) >= MIN_MUTANTS, f"{gid}: {len(listed)} mutants, at least {MIN_MUTANTS} needed"
        names = [m["name"] for m in listed]
        assert len(set(names)) == len(names), f"{gid}: two mutants share a name"
        assert any(m.get("common") for m in listed), f"{gid}: mark the usual mistakes as common"
        source = nb.cells[found[gid][0]].source
        for m in listed:
            changed = replace_block(source, m.get("block", 0), m["source"])
            assert changed != source, f"{gid} / {m['name']}: the mutant is the solution itself"
            compile(changed, f"{gid}/{m['name']}", "exec")


@pytest.mark.notebook
@pytest.mark.once
@pytest.mark.parametrize("path", MUTANT_FILES, ids=lambda p: p.stem)
def test_mutants_are_rejected(path, tmp_path_factory, monkeypatch):
    notebook, mutants = load_mutants(path)
    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("COURSE_DATA", os.environ.get("COURSE_TEST_DATA") or str(tmp_path_factory.mktemp("data")))
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    nb = nbformat.read(NOTEBOOK_DIR / notebook, as_version=4)
    grade_cells = {grade: gid for gid, (_, grade) in exercises(nb).items()}
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    kernel, problems = Kernel(client), []
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if index in grade_cells:
                gid = grade_cells[index]
                solution = nb.cells[exercises(nb)[gid][0]].source
                problems += check_exercise(kernel, gid, solution, cell.source, mutants[gid])
            failed = kernel.run(cell.source, timeout=300)
            assert failed is None, f"{notebook}, cell {index} fails: {failed[0]}: {failed[1][:500]}"
    assert not problems, f"{notebook}:\n" + "\n".join(problems)
