"""``python -m course_utils grade SUBMISSIONS_DIR --key OUT_DIR/grader --out grades.csv``

Submissions are laid out as nbgrader does: ``SUBMISSIONS_DIR/<student_id>/<notebook>.ipynb``
(a zip of that folder works too, e.g. uploaded to Colab). For each student and notebook:

1. the student's folder is copied to a scratch folder, and a fresh kernel starts there,
   with its own empty data folder (``COURSE_DATA``) unless ``--data-root`` shares one;
2. every code cell runs in order, each with a time limit (``--cell-timeout``) and all of
   them within ``--timeout``; errors do not stop the run, a cell that crashes the kernel
   or ignores the time limit is skipped after a fresh kernel replays the cells that worked;
3. only then are the tests sent to that kernel, one part at a time: the visible checks
   and each hidden ``# test:`` group of every exercise. They reach the student's functions
   by name, so moved, duplicated or deleted cells do not matter. Each part is worth an
   equal share of the exercise's points.

Each kernel is confined (``sandbox.py``: bubblewrap where it runs, else limits only, and
the sheet says which); the interpreter is checked and reset before the tests
(``guard.py``); results come back as the kernel's replies to our requests. Each notebook's
result is saved as it finishes (``sheet.py``), so a killed batch resumes; the grade sheet
is written (atomically) at the end. Notebooks are graded in parallel (``--workers``,
default: the CPU cores), with a progress bar.

Writes ``grades.csv`` (one row per student, notebook and exercise), ``feedback/<student>.md``
and ``grades_summary.csv`` (one row per exercise).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

from course_utils.files import write_atomic

from .execute import CellResult, Session, kernel_env, read_notebook
from .feedback import (
    SUMMARY_FIELDS,
    ExerciseGrade,
    NotebookGrade,
    PartResult,
    exercise_message,
    exercise_status,
    exercise_summary,
    explain_run,
    student_feedback,
)
from .files import default_workers, extract_zip, parallel_map
from .guard import PREPARE_CODE, TOKEN_NAME, forbidden_calls, part_code, tampering
from .kernel import KernelStartError
from .key import KEY_FILE, load_key
from .markers import Exercise, nbgrader_meta
from .sandbox import Confinement, grader_secrets, isolation
from .sheet import PartialResults, csv_text, file_hash, set_aside

FIELDS = ["student_id", "notebook", "exercise", "points", "max_points", "status", "message", "isolation"]


@dataclass
class Settings:
    """How each notebook is run; the same for every job of a batch."""

    env: dict[str, str]  # the kernel's environment (fast mode, data root, threads)
    cell_timeout: float = 60.0  # seconds per cell and per test part
    total_timeout: float = 600.0  # seconds for all the cells of a notebook, and again for its tests
    max_restarts: int = 3  # fresh kernels after crashes, per notebook and again per exercise's tests
    batch_dir: Optional[Path] = None  # every job's scratch folder lives here
    hide: list[Path] = field(default_factory=list)  # what kernels must not see (key, submissions, results)
    shared: Optional[Union[str, os.PathLike]] = None  # --data-root: a data folder every kernel may write


@dataclass
class Job:
    """One student's notebook to grade (``path`` None: not submitted)."""

    student: str
    notebook: str
    path: Optional[str]
    exercises: list[Exercise]
    settings: Settings
    missing: str = ""  # why ``path`` is None, for the student
    own_folder: bool = True  # copy the notebook's folder; False: the file alone (flat layout)
    slot: int = 0  # the job's number in the batch (its kernel's user id when the grader is root)
    note: str = ""  # told to the student whatever happens (e.g. other copies of the notebook in the folder)


@dataclass
class GradeReport:
    """What :func:`grade` produced."""

    notebooks: list[NotebookGrade]
    rows: list[ExerciseGrade]
    grades_csv: Path
    summary_csv: Path
    feedback_dir: Path
    skipped_notebooks: list[str] = field(default_factory=list)  # in the key, submitted by nobody
    isolation: str = ""  # how the kernels were confined (sandbox.isolation), in every row of the sheet


# --------------------------------------------------------------------------- finding submissions
def normalise(name: str) -> str:
    """``"Copy of 02_Filtering (1).ipynb"`` -> ``"02_filtering"``: names as Colab and browsers mangle them."""
    stem = Path(name).stem.lower() if name.lower().endswith(".ipynb") else name.lower()
    stem = re.sub(r"^(copy of|copie de)\s+", "", stem)
    stem = re.sub(r"\s*\(\d+\)$", "", stem)
    stem = re.sub(r"-checkpoint$", "", stem)
    return re.sub(r"[^a-z0-9]+", "_", stem).strip("_")


def _grade_ids(path: Path) -> set[str]:
    """grade_ids in a notebook file's cell metadata (empty when it is not readable JSON)."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        return {c["metadata"]["nbgrader"]["grade_id"] for c in cells
                if isinstance(c, dict) and isinstance(c.get("metadata", {}).get("nbgrader"), dict)
                and "grade_id" in c["metadata"]["nbgrader"]}
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        return set()


def match_notebooks(files: list[Path], key: dict[str, list[Exercise]]) -> dict[str, Path]:
    """Which file is which notebook of the key: same name, then same name once mangling is
    undone ("Copy of ...", " (1)"), then the most exercise ids in common, then the same
    number prefix ("02_..."). Each file is used once."""
    found: dict[str, Path] = {}
    left = sorted(files)

    def take(rule: Callable[[Path, str], bool]) -> None:
        for name in key:
            hits = [f for f in left if name not in found and rule(f, name)]
            if hits:
                found[name] = hits[0]
                left.remove(hits[0])

    ids = {n: {e.id for e in exs} | {e.solution_id for e in exs if e.solution_id} for n, exs in key.items()}
    file_ids = {f: _grade_ids(f) for f in left}

    def same_ids(f: Path, name: str) -> bool:
        common = {n: len(file_ids[f] & ids[n]) for n in key}
        return common[name] > 0 and common[name] == max(common.values())

    prefixes = [normalise(n).split("_")[0] for n in key]

    def same_prefix(f: Path, name: str) -> bool:
        p = normalise(name).split("_")[0]
        return p.isdigit() and prefixes.count(p) == 1 and normalise(f.name).startswith(p + "_")

    take(lambda f, n: f.name == n)
    take(lambda f, n: normalise(f.name) == normalise(n))
    take(same_ids)
    take(same_prefix)
    return found


def _notebook_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.ipynb")
                  if not any(part.startswith(".") or part == "__MACOSX" for part in p.relative_to(folder).parts))


TOOL_FOLDERS = ("__MACOSX", ".ipynb_checkpoints", ".git", ".Trash", ".DS_Store")


def _other_copies(path: Optional[Path], name: str, files: list[Path]) -> str:
    """A note when the student's folder holds other copies of the graded notebook (the untouched one and
    a finished one, say): the grader grades the file named as expected, and says which."""
    if path is None:
        return ""
    copies = [f for f in files if f != path and normalise(f.name) == normalise(name)]
    if not copies:
        return ""
    return (f"your folder holds {len(copies) + 1} copies of {name}: the grader graded {path.name} (the file "
            f"named as expected comes first) and not {', '.join(f.name for f in copies)}; hand in one copy only")


def find_jobs(
    root: Path, key: dict[str, list[Exercise]], settings: Settings, notebooks: Optional[list[str]] = None
) -> tuple[list[Job], list[str]]:
    """One job per student and notebook, and the notebooks of the key nobody submitted.

    Without ``notebooks``, a notebook of the key is graded when at least one student
    handed it in (a weekly assignment does not make the other notebooks "missing").
    """
    if notebooks:
        unknown = [n for n in notebooks if n not in key]
        if unknown:
            raise ValueError(f"--notebook {unknown[0]!r} is not in the key (it has: {', '.join(key)})")
    # Folder names are taken as given ("...", "=1+1"); only tools' own folders are not students.
    students = {d.name: _notebook_files(d) for d in sorted(root.iterdir())
                if d.is_dir() and d.name not in TOOL_FOLDERS and not d.name.endswith(".partial")}
    loose = sorted(root.glob("*.ipynb"))
    if loose and not students:
        wanted = notebooks or list(key)
        if len(wanted) != 1:
            raise ValueError(f"{root}: notebooks lie directly in this folder; with several notebooks in the key, "
                             f"lay them out as {root}/<student_id>/<notebook>.ipynb or pass one --notebook")
        students = {p.stem: [p] for p in loose}
        matched = {s: {wanted[0]: files[0]} for s, files in students.items()}
    else:
        matched = {s: match_notebooks(files, key) for s, files in students.items()}
    if not students:
        raise ValueError(f"{root}: no student folders (expected {root}/<student_id>/<notebook>.ipynb)")
    graded = notebooks or [n for n in key if key[n] and any(n in m for m in matched.values())]
    jobs = []
    for student, files in students.items():
        for name in graded:
            path = matched[student].get(name)
            others = ", ".join(f.name for f in files if f not in matched[student].values())
            why = f"no notebook {name} in {student}/ " + (f"(other notebooks there: {others})" if others
                                                           else "(no notebook at all in the folder)")
            jobs.append(Job(student, name, str(path) if path else None, key[name], settings, why,
                            own_folder=bool(path) and path.parent != root, note=_other_copies(path, name, files)))
    return jobs, [n for n in key if n not in graded]


# --------------------------------------------------------------------------- grading one notebook
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


def _unscored(job: Job, status: str, message: str) -> NotebookGrade:
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
        result = _unscored(job, "error", f"the grader itself failed on this notebook "
                                         f"({type(err).__name__}: {err}); please tell your teacher")
    result.seconds = time.monotonic() - start
    return result


def _grade(job: Job) -> NotebookGrade:
    if job.path is None:
        return _unscored(job, "missing", job.missing)
    try:
        nb = read_notebook(job.path)
    except ValueError as err:
        return _unscored(job, "invalid", f"{err}. Check that the file opens in Jupyter; on Colab use "
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
        (scratch / "data").mkdir()
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
            rows = [_grade_exercise(session, job, e, nb, cells, str(kit)) for e in job.exercises]
            restarts = session.restarts
    except KernelStartError as err:
        return _unscored(job, "error", f"the grader could not start Python ({err}); please tell your teacher")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    notes = ([job.note] if job.note else []) + _notes(nb, cells, s)
    return NotebookGrade(job.student, job.notebook, "graded", "", rows, cells, notes, restarts)


def _grade_exercise(session: Session, job: Job, ex: Exercise, nb: Any, cells: list[CellResult],
                    kit: str) -> ExerciseGrade:
    if ex.kind == "manual":
        return ExerciseGrade(job.student, job.notebook, ex.label, None, ex.points, "manual",
                             "graded by hand by your teacher")
    session.allow_restarts(job.settings.max_restarts)  # one crashing exercise does not use up the others'
    parts = []
    for part in ex.parts:
        token = secrets.token_hex(16)
        code = part_code(part.code, part.name, kit, token, ex.forbidden, ex.names)
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
        parts.append(PartResult(part.name, part.hidden, status, message))
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


# --------------------------------------------------------------------------- the batch
def grade(
    submissions: Union[str, os.PathLike],
    key: Union[str, os.PathLike],
    out: Union[str, os.PathLike] = "grades.csv",
    feedback_dir: Optional[Union[str, os.PathLike]] = None,
    workers: Optional[int] = None,
    cell_timeout: float = 60.0,
    total_timeout: float = 600.0,
    fast: bool = True,
    data_root: Optional[Union[str, os.PathLike]] = None,
    notebooks: Optional[list[str]] = None,
) -> GradeReport:
    """Grade every submission; write the grade sheet, the feedback files and the summary.

    ``fast=True`` runs the notebooks in fast mode (``COURSE_FAST=1``): the hidden tests
    build their own inputs, so sizes do not change grades, only the time it takes.
    """
    exercises = load_key(key)
    workers = workers or default_workers()
    extra = {"COURSE_FAST": "1"} if fast else {"COURSE_FAST": "0"}
    env = kernel_env(extra, workers)
    env.pop("COURSE_DATA", None)  # shared only when asked for: see _grade
    if data_root:
        env["COURSE_DATA"] = str(Path(data_root).resolve())
    out = Path(out)
    feedback_dir = Path(feedback_dir) if feedback_dir else out.parent / "feedback"
    summary = out.with_name(out.stem + "_summary.csv")
    partial = PartialResults(out, _fingerprint(key, fast, cell_timeout, total_timeout, data_root))
    set_aside(out, summary)  # until the new sheet is written, no older one looks current
    batch_dir = Path(tempfile.mkdtemp(prefix="grading-"))
    os.chmod(batch_dir, 0o711)  # kernels with their own user id reach their folder, list no other
    settings = Settings(env, cell_timeout, total_timeout, batch_dir=batch_dir, shared=data_root)
    with _opened(Path(submissions)) as root, _removed(batch_dir):
        settings.hide = grader_secrets(root, Path(submissions), key, out, summary, feedback_dir, batch_dir,
                                       partial.folder)
        jobs, skipped = find_jobs(root, exercises, settings, notebooks)
        results, todo = [], []
        for slot, job in enumerate(jobs):
            job.slot, hashed = slot, file_hash(job.path)
            done = partial.load(job.student, job.notebook, hashed)  # graded by an interrupted run
            results.append(done) if done else todo.append((job, hashed))
        hashes = {id(job): h for job, h in todo}
        for job, result in parallel_map(grade_notebook, [j for j, _ in todo], workers, desc="grading",
                                        label=lambda j: f"{j.student}/{j.notebook}"):
            if isinstance(result, Exception):  # the worker process itself died
                result = _unscored(job, "error", f"the grading process died ({type(result).__name__}: {result})")
            partial.save(result, hashes[id(job)])
            results.append(result)
    results.sort(key=lambda g: (g.student, g.notebook))
    rows = [e for g in results for e in g.exercises]
    report = GradeReport(results, rows, out, summary, feedback_dir, skipped, isolation())
    _write(report)
    partial.remove()
    return report


def _fingerprint(key: Union[str, os.PathLike], *settings: Any) -> str:
    """The key's contents and the settings: a resumed batch reuses results only when both are the same."""
    path = Path(key) / KEY_FILE if Path(key).is_dir() else Path(key)
    return hashlib.sha256(path.read_bytes() + json.dumps([str(x) for x in settings]).encode()).hexdigest()


@contextlib.contextmanager
def _removed(folder: Path) -> Iterator[Path]:
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Path]:
    """The submissions folder, or a zip of it extracted to a temporary folder (removed afterwards)."""
    if path.is_dir():
        yield path
        return
    if not (path.is_file() and path.suffix.lower() == ".zip"):
        raise ValueError(f"{path}: no such folder of submissions (or .zip of it)")
    tmp = tempfile.mkdtemp(prefix="submissions-")
    try:
        root = extract_zip(path, tmp)
        entries = [p for p in root.iterdir() if p.name != "__MACOSX"]
        # a zip of the folder itself holds one top folder whose entries are all student folders
        if len(entries) == 1 and entries[0].is_dir() and all(p.is_dir() for p in entries[0].iterdir()):
            root = entries[0]
        yield root
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write(report: GradeReport) -> None:
    """Grade sheet, summary and feedback files, each written atomically."""
    where = {"isolation": report.isolation}
    write_atomic(report.grades_csv, csv_text([r.row() | where for r in report.rows], FIELDS))
    write_atomic(report.summary_csv, csv_text([r | where for r in exercise_summary(report.rows)],
                                              SUMMARY_FIELDS + ["isolation"]))
    by_student: dict[str, list[NotebookGrade]] = {}
    for g in report.notebooks:
        by_student.setdefault(g.student, []).append(g)
    for student, grades in by_student.items():
        write_atomic(report.feedback_dir / f"{student}.md", student_feedback(student, grades))


# --------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submissions", metavar="SUBMISSIONS_DIR",
                        help="folder of <student_id>/<notebook>.ipynb, or a .zip of it")
    parser.add_argument("--key", required=True, help="the grader folder written by 'release' (or its key.json)")
    parser.add_argument("--out", default="grades.csv", help="grade sheet to write (default: grades.csv)")
    parser.add_argument("--feedback", default=None, help="folder of per-student feedback (default: next to --out)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="notebooks graded at once")
    parser.add_argument("--cell-timeout", type=float, default=60.0, help="seconds per cell and per test")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds for all the cells of one notebook (its tests get as much again)")
    parser.add_argument("--full", action="store_true", help="run notebooks in full mode instead of fast mode")
    parser.add_argument("--data-root", default=None,
                        help="a data folder (COURSE_DATA) shared by all notebooks; default: a fresh one per notebook")
    parser.add_argument("--notebook", action="append", default=None,
                        help="grade only this notebook of the key (repeatable); default: those handed in")


def run(args: argparse.Namespace) -> int:
    try:
        report = grade(args.submissions, args.key, args.out, args.feedback, args.workers, args.cell_timeout,
                       args.timeout, fast=not args.full, data_root=args.data_root, notebooks=args.notebook)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    students = sorted({g.student for g in report.notebooks})
    print(f"graded {len(report.notebooks)} notebook(s) of {len(students)} student(s); kernels: {report.isolation}")
    for line in exercise_summary(report.rows):
        print(f"  {line['notebook']} {line['exercise']}: mean {line['mean_points'] or '-'} / {line['max_points']}, "
              f"full marks {line['full_marks']}/{line['students']}"
              + (f"; most common problem: {line['most_common_problem'][:100]}" if line["most_common_problem"] else ""))
    if report.skipped_notebooks:
        print(f"  not graded (nobody handed them in): {', '.join(report.skipped_notebooks)}")
    print(f"grade sheet: {report.grades_csv}\nsummary: {report.summary_csv}\nfeedback: {report.feedback_dir}/")
    errors = [g for g in report.notebooks if g.status == "error"]
    for g in errors:
        print(f"GRADER ERROR {g.student}/{g.notebook}: {g.message}", file=sys.stderr)
    return 1 if errors else 0
