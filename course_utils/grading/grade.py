"""``python -m course_utils grade SUBMISSIONS_DIR --key OUT_DIR/grader --out grades.csv``

Submissions are laid out as nbgrader does: ``SUBMISSIONS_DIR/<student_id>/<notebook>.ipynb``
(a zip of that folder works too, e.g. uploaded to Colab); :mod:`.jobs` finds them. Each
notebook is graded by :func:`.notebook.grade_notebook`: run in a confined kernel
(``sandbox.py``: bubblewrap where it runs, else limits only, and the sheet says which), its
tests run there one part at a time, then each part that passed is decided again in a
process of the grader's own on the results the kernel recorded (``outside.py``).

Notebooks are graded in parallel (``--workers``, default: the CPU cores), with a progress
bar. Each notebook's result is saved as it finishes (``sheet.py``), so a killed batch
resumes; the grade sheet is written (atomically) at the end: ``grades.csv`` (one row per
student, notebook and exercise), ``feedback/<student>.md`` and ``grades_summary.csv`` (one
row per exercise).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from course_utils.files import write_atomic

from .execute import kernel_env
from .feedback import SUMMARY_FIELDS, ExerciseGrade, NotebookGrade, exercise_summary, student_feedback
from .files import default_workers, extract_zip, parallel_map
from .jobs import Job, Settings, find_jobs, match_notebooks, normalise
from .key import KEY_FILE, load_key
from .notebook import grade_notebook, unscored
from .outside import close_all
from .sandbox import grader_secrets, isolation
from .sheet import PartialResults, csv_text, file_hash, set_aside

__all__ = ["grade", "GradeReport", "Job", "Settings", "find_jobs", "match_notebooks", "normalise", "grade_notebook",
           "add_arguments", "run"]

FIELDS = ["student_id", "notebook", "exercise", "points", "max_points", "status", "message", "outside", "isolation"]


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
    outside: bool = True,
) -> GradeReport:
    """Grade every submission; write the grade sheet, the feedback files and the summary.

    ``fast=True`` runs the notebooks in fast mode (``COURSE_FAST=1``): the hidden tests
    build their own inputs, so sizes do not change grades, only the time it takes.
    ``outside=False`` decides every test in the student's kernel only (faster, easier to fool).
    """
    exercises = load_key(key)
    workers = workers or default_workers()
    # one hash seed for kernels and replays: a test that iterates over a set builds the same inputs in both
    extra = {"COURSE_FAST": "1" if fast else "0", "PYTHONHASHSEED": "0"}
    env = kernel_env(extra, workers)
    env.pop("COURSE_DATA", None)  # shared only when asked for: see _grade
    if data_root:
        env["COURSE_DATA"] = str(Path(data_root).resolve())
    out = Path(out)
    feedback_dir = Path(feedback_dir) if feedback_dir else out.parent / "feedback"
    summary = out.with_name(out.stem + "_summary.csv")
    partial = PartialResults(out, _fingerprint(key, fast, cell_timeout, total_timeout, data_root, outside))
    set_aside(out, summary)  # until the new sheet is written, no older one looks current
    batch_dir = Path(tempfile.mkdtemp(prefix="grading-"))
    os.chmod(batch_dir, 0o711)  # kernels with their own user id reach their folder, list no other
    settings = Settings(env, cell_timeout, total_timeout, batch_dir=batch_dir, shared=data_root, outside=outside)
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
        try:
            for job, result in parallel_map(grade_notebook, [j for j, _ in todo], workers, desc="grading",
                                            label=lambda j: f"{j.student}/{j.notebook}"):
                if isinstance(result, Exception):  # the worker process itself died
                    result = unscored(job, "error", f"the grading process died ({type(result).__name__}: {result})")
                partial.save(result, hashes[id(job)])
                results.append(result)
        finally:
            close_all()  # the replay processes of the grading threads
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
    parser.add_argument("--kernel-only", action="store_true",
                        help="decide tests in the student's kernel only, not again in a process of the grader's "
                             "(faster; a notebook that patches numpy or the checks can then fool the grader)")


def run(args: argparse.Namespace) -> int:
    try:
        report = grade(args.submissions, args.key, args.out, args.feedback, args.workers, args.cell_timeout,
                       args.timeout, fast=not args.full, data_root=args.data_root, notebooks=args.notebook,
                       outside=not args.kernel_only)
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
