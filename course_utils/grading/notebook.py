"""Grading one student's notebook: run it in a confined kernel, test it there, decide again outside.

1. the student's folder is copied to a scratch folder with a private copy of the kit, and a
   fresh kernel starts there (``sandbox.py``), with its own empty data folder;
2. every code cell runs in order, each with a time limit; a cell that crashes the kernel or
   ignores the time limit is skipped after a fresh kernel replays the cells that worked;
3. the kit's copy is restored, the interpreter is reset (``guard.py``), and each test part
   (the visible checks, each hidden ``# test:`` group) runs in the kernel, which records
   what the student's functions returned (``recorder.py``);
4. each part that passed in the kernel is run again in a grader-side process on those
   recorded results (``outside.py``, ``replay.py``): it passes only if it passes in both.

Each part is worth an equal share of its exercise's points. :func:`grade_notebook` never
raises: any failure becomes rows with a reason.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .execute import CellResult, Session, read_notebook
from .feedback import ExerciseGrade, NotebookGrade, PartResult, exercise_message, exercise_status, explain_run
from .guard import PREPARE_CODE, TOKEN_NAME, forbidden_calls, part_code, tampering, test_file, test_source
from .jobs import Job, Settings
from .kernel import KernelStartError
from .markers import Exercise, Part, nbgrader_meta
from .outside import Request, combine, replay_process
from .replay import free_names
from .sandbox import Confinement

KIT = Path(__file__).resolve().parent.parent  # the installed course_utils package


def _copy_kit(dest: Path) -> Path:
    """A private copy of the kit for one notebook (``dest/course_utils``); returns ``dest``.

    The kernel imports the kit from here (first on its PYTHONPATH), so a notebook that edits
    the kit's files edits only its own copy, which the grader copies afresh before the tests.
    """
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(KIT, dest / "course_utils", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _copy_folder(src: Path, dest: Path) -> None:
    """The student's folder without checkpoints, caches or symbolic links (which could point anywhere)."""
    def ignore(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if n in (".ipynb_checkpoints", "__pycache__") or os.path.islink(Path(folder) / n)]

    shutil.copytree(src, dest, ignore=ignore)


def unscored(job: Job, status: str, message: str) -> NotebookGrade:
    """A notebook that could not be run: every exercise gets 0 with the same reason."""
    rows = [ExerciseGrade(job.student, job.notebook, e.label, 0.0, e.points, status, message)
            for e in job.exercises]
    return NotebookGrade(job.student, job.notebook, status, message, rows)


def grade_notebook(job: Job) -> NotebookGrade:
    """Run one submission and its tests. Never raises: any failure becomes rows with a reason."""
    start = time.monotonic()
    try:
        result = _grade(job)
    except Exception as err:  # a bug or a broken machine costs this notebook, never the batch
        result = unscored(job, "error", f"the grader itself failed on this notebook "
                                        f"({type(err).__name__}: {err}); please tell your teacher")
    result.seconds = time.monotonic() - start
    return result


@dataclass
class PartRun:
    """One test part as it went in the kernel, and where the kernel recorded its results."""

    exercise: Exercise
    part: Part
    status: str
    message: str
    request: Optional[Request] = None  # for the replay; None when the part is not replayed


def _grade(job: Job) -> NotebookGrade:
    if job.path is None:
        return unscored(job, "missing", job.missing)
    try:
        nb = read_notebook(job.path)
    except ValueError as err:
        return unscored(job, "invalid", f"{err}. Check that the file opens in Jupyter; on Colab use "
                                        "File > Download > Download .ipynb")
    s = job.settings
    scratch = Path(tempfile.mkdtemp(prefix="grade-", dir=s.batch_dir))
    try:
        work = scratch / "work"
        if job.own_folder:
            _copy_folder(Path(job.path).parent, work)
        else:  # a flat folder holds everyone's notebooks: take this one only
            work.mkdir()
            shutil.copy(job.path, work)
        # Unless a data root is shared on purpose, each notebook gets its own, deleted afterwards:
        # no race between parallel kernels, and no student's files can change another's grade.
        kit = _copy_kit(scratch / "kit")
        for sub in ("data", "record"):
            (scratch / sub).mkdir()
        confine = Confinement(scratch, read_only=[kit], hide=s.hide, slot=job.slot,
                              writable=[Path(s.shared)] if s.shared else [])
        env = {"COURSE_DATA": str(scratch / "data"), **s.env, **confine.env()}
        env["PYTHONPATH"] = os.pathsep.join([str(kit)] + [p for p in [s.env.get("PYTHONPATH", "")] if p])
        with Session(work, env, s.cell_timeout, s.total_timeout, s.max_restarts, scratch,
                     confine) as session:
            cells = [session.run_cell(i, c.source) for i, c in enumerate(nb.cells)
                     if c.get("cell_type") == "code" and c.get("source", "").strip()]
            session.check_late_death()
            session.reset_clock()  # the tests get their own budget
            _copy_kit(kit)  # undo any edit of the kit's files by the notebook
            confine.prepare()
            session.after_replay = PREPARE_CODE
            session.run(PREPARE_CODE, record=False)
            runs = {e.id: _run_tests(session, job, e, str(kit), scratch / "record") for e in job.exercises}
            restarts = session.restarts
        verdicts = _decide_outside([r for rs in runs.values() for r in rs], s)
        rows = [_exercise_grade(job, e, runs[e.id], verdicts, nb, cells) for e in job.exercises]
    except KernelStartError as err:
        return unscored(job, "error", f"the grader could not start Python ({err}); please tell your teacher")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    notes = ([job.note] if job.note else []) + _notes(nb, cells, s)
    return NotebookGrade(job.student, job.notebook, "graded", "", rows, cells, notes, restarts)


def _run_tests(session: Session, job: Job, ex: Exercise, kit: str, record_dir: Path) -> list[PartRun]:
    """Run each part of one exercise in the kernel; parts that pass leave a recording for the replay."""
    if ex.kind == "manual":
        return []
    session.allow_restarts(job.settings.max_restarts)  # one crashing exercise does not use up the others'
    runs = []
    for part in ex.parts:
        token = secrets.token_hex(16)
        source = test_source(part.code)
        free = [n for n in free_names(source, test_file(part.name)) if not n.startswith("check_")]
        record = str(record_dir / f"{token}.npz") if job.settings.outside else ""
        code = part_code(part.code, part.name, kit, token, ex.forbidden, ex.names, record, free)
        r = session.run(code, record=False, expressions={"t": TOKEN_NAME})
        status, message = explain_run(r.status, r.ename, r.evalue, ex.names, session.cell_timeout)
        if status == "passed" and token not in r.expressions.get("t", ""):
            status, message = "failed", ("not tested: the test did not run to its end although the kernel said it "
                                         "did; does your notebook rewrite the code it runs (input transformer)?")
        if forbidden_calls(r.evalue):
            message = (f"no credit: your solution calls {forbidden_calls(r.evalue)}, which this exercise asks "
                       "you to write yourself")
        if tampering(r.evalue):
            message = (f"not tested: your notebook changed how Python runs code ({tampering(r.evalue)}); "
                       "remove that code to be graded")
        request = (Request(source, test_file(part.name), list(ex.names), free, record)
                   if status == "passed" and record else None)
        runs.append(PartRun(ex, part, status, message, request))
    return runs


def _decide_outside(runs: list[PartRun], s: Settings) -> dict[int, dict[str, str]]:
    """The replay's verdict on every part that passed in the kernel, by ``id`` of its run; the replay
    gets a time budget of its own, as large as the tests'."""
    todo = [r for r in runs if r.request is not None]
    if not todo:
        return {}
    replay = replay_process(s.env, s.cell_timeout)
    replay.deadline = time.monotonic() + s.total_timeout
    return {id(r): replay.decide(r.request) for r in todo}


def _exercise_grade(job: Job, ex: Exercise, runs: list[PartRun], verdicts: dict[int, dict[str, str]], nb: Any,
                    cells: list[CellResult]) -> ExerciseGrade:
    if ex.kind == "manual":
        return ExerciseGrade(job.student, job.notebook, ex.label, None, ex.points, "manual",
                             "graded by hand by your teacher")
    parts = []
    for run in runs:
        status, message, outside = combine(run.status, run.message, verdicts.get(id(run)), run.part.outside,
                                           ex.names)
        parts.append(PartResult(run.part.name, run.part.hidden, status, message, outside))
    passed = sum(p.status == "passed" for p in parts)
    points = round(ex.points * passed / len(parts), 4) if parts else 0.0
    note = _solution_note(nb, cells, ex) if passed < len(parts) else ""
    return ExerciseGrade(job.student, job.notebook, ex.label, points, ex.points, exercise_status(parts),
                         exercise_message(parts, note), parts)


def _solution_note(nb: Any, cells: list[CellResult], ex: Exercise) -> str:
    """What happened to the student's own cell of this exercise, if that explains the failure."""
    if not ex.solution_id:
        return ""
    mine = [i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade_id") == ex.solution_id]
    if not mine:
        return "(The cell of this exercise is no longer in your notebook; the grader looked for your code by name.)"
    ran = {c.index: c for c in cells}
    last = ran.get(mine[-1])
    if last is None or last.status == "ok" or "NotImplementedError" in last.message:
        return ""
    what = {"timeout": "ran out of time", "dead": "crashed the kernel", "skipped": "was not run"}.get(
        last.status, f"raised {last.message}")
    return f"(Your cell {last.index + 1} for this exercise {what}.)"


def _exercise_cells(nb: Any) -> set[int]:
    return {i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade") or nbgrader_meta(c).get("solution")}


def _notes(nb: Any, cells: list[CellResult], s: Settings, limit: int = 5) -> list[str]:
    """Problems of the run outside the exercise cells, in the student's words."""
    notes: list[str] = []
    exercise_cells = _exercise_cells(nb)
    for c in cells:
        n = c.index + 1
        if c.status == "dead":
            notes.append(f"cell {n} crashed the Python kernel ({c.message}); the grader started a new kernel, "
                         "re-ran the cells that had worked before it, and went on without it")
        elif c.status == "timeout":
            notes.append(f"cell {n} ran longer than {s.cell_timeout:g} s and was stopped (infinite loop?)")
        elif c.status == "skipped":
            notes.append(f"cell {n} and the following ones were not run: {c.message}")
            break
        elif c.status == "error" and c.index not in exercise_cells:
            if c.message.startswith("NotImplementedError"):
                notes.append(f"cell {n} needs an exercise that is not done yet (it raised NotImplementedError)")
            else:
                notes.append(f"cell {n} raised {c.message}")
    if len(notes) > limit:
        notes = notes[:limit] + [f"... and {len(notes) - limit} more problem(s)"]
    return notes
