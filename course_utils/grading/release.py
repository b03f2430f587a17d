"""``python -m course_utils release SRC_DIR OUT_DIR``: student notebooks and a grader key from masters.

For every master notebook ``SRC_DIR/*.ipynb`` it writes

* ``OUT_DIR/student/<name>.ipynb``: each solution replaced by ``# YOUR CODE HERE`` and
  ``raise NotImplementedError()`` (written answers by ``YOUR ANSWER HERE``), hidden tests
  removed, outputs cleared, exercise ids (the nbgrader metadata) kept;
* ``OUT_DIR/grader/``: the key ``grade`` reads (exercise list, points, hidden tests), see
  :mod:`course_utils.grading.key`. It stays with the teachers.

Nothing is written unless every master is valid: a master with unbalanced or nested
markers, a marker outside a code cell or duplicate exercise ids is refused, naming the
notebook and the cell. Then, unless ``--no-check``, each student notebook is executed up
to its first exercise (in fast mode) to prove that it runs.

``--grade-masters`` also grades every master with the new key before writing it, and
stores in the key which test parts the grader could decide outside the kernel with the
teacher's solution: for those, a student's notebook that the grader cannot check outside
its kernel gets no credit (see ``outside.py``).

``OUT_DIR/student`` and ``OUT_DIR/grader`` are replaced as a whole. A file in them that no
earlier release wrote, or that was edited since (``OUT_DIR/.release.json`` records what
each release wrote, with its SHA-256), is a teacher's own: the release is refused, naming
those files, unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import nbformat

from course_utils.files import write_atomic

from .execute import CellResult, ExecutionResult, execute_notebook, kernel_env, read_notebook
from .feedback import NotebookGrade
from .files import default_workers, parallel_map
from .key import save_key
from .markers import MarkerError, Master, leaks, parse_master, student_notebook


@dataclass
class Release:
    """What :func:`release` wrote."""

    masters: list[Master]
    student_dir: Path
    grader_dir: Path
    master_grades: list[NotebookGrade] = field(default_factory=list)  # with grade_masters=True


def find_masters(src_dir: Union[str, os.PathLike]) -> list[Path]:
    """The notebooks directly in ``src_dir``, sorted by name."""
    src = Path(src_dir)
    if not src.is_dir():
        raise ValueError(f"{src}: no such folder of master notebooks")
    paths = sorted(src.glob("*.ipynb"))
    if not paths:
        raise ValueError(f"{src}: no .ipynb notebooks in this folder")
    return paths


def build(paths: list[Path]) -> list[tuple[Master, object]]:
    """Parse and check every master, make its student version; raise MarkerError listing all problems."""
    problems: list[str] = []
    built = []
    for path in paths:
        try:
            nb = read_notebook(path)
            master = parse_master(nb, path.name)
        except MarkerError as err:
            problems += err.problems
            continue
        except ValueError as err:
            problems.append(str(err))
            continue
        student = student_notebook(nb)
        leaked = leaks(nb, student)
        if leaked:  # e.g. a solution copied into cell metadata or an attachment
            problems.append(f"{path.name}: the student version would still contain {leaked[0]!r} "
                            f"(and {len(leaked) - 1} more secret lines); remove it from metadata/attachments")
        built.append((master, student))
    if problems:
        raise MarkerError(problems)
    return built


MANIFEST = ".release.json"  # in OUT_DIR: {"student/01_x.ipynb": sha256, ...} of the last release
REPLACED = ("student", "grader")


def _hashes(folder: Path, base: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, keyed by its path relative to ``base``."""
    return {p.relative_to(base).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def own_files(out: Path) -> list[str]:
    """Files under ``OUT_DIR/student`` and ``/grader`` that a release would delete but did not write as they are."""
    try:
        written = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        written = {}
    found: dict[str, str] = {}
    for sub in REPLACED:
        if (out / sub).is_dir():
            found.update(_hashes(out / sub, out))
        elif (out / sub).exists():
            found[sub] = "not a folder"
    return [name for name, digest in found.items() if written.get(name) != digest]


def release(src_dir: Union[str, os.PathLike], out_dir: Union[str, os.PathLike], force: bool = False,
            grade_masters: bool = False, workers: int = 1, cell_timeout: float = 300.0,
            total_timeout: float = 900.0) -> Release:
    """Write ``OUT_DIR/student`` and ``OUT_DIR/grader`` (replacing earlier ones) from the masters.

    Refused (``ValueError``) when they hold files no release wrote, unless ``force``.
    ``grade_masters`` grades the masters with the new key first (``workers`` at a time) and
    records in the key which tests were decided outside the kernel (see :func:`expect_outside`).
    """
    paths = find_masters(src_dir)
    out = Path(out_dir)
    if out.resolve() == Path(src_dir).resolve():
        raise ValueError(f"{out}: the output folder must differ from the folder of masters")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: a file, not a folder")
    theirs = own_files(out) if not force else []
    if theirs:
        shown = ", ".join(theirs[:3]) + (f" and {len(theirs) - 3} more" if len(theirs) > 3 else "")
        raise ValueError(f"{out}: would replace {len(theirs)} file(s) that no release wrote or that were edited "
                         f"since ({shown}); move them away or pass --force")
    built = build(paths)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".release-"))
    try:  # build both folders aside, then swap them in: a failed release leaves the old one intact
        for master, student in built:
            write_atomic(tmp / "student" / master.name, nbformat.writes(student))
        save_key([m for m, _ in built], tmp / "grader")
        grades = []
        if grade_masters:
            grades = _grade_masters(paths, tmp / "grader", workers, cell_timeout, total_timeout)
            expect_outside([m for m, _ in built], grades)
            save_key([m for m, _ in built], tmp / "grader")
        written = _hashes(tmp, tmp)  # tmp holds student/ and grader/ only
        for sub in REPLACED:
            if (out / sub).is_dir() and not (out / sub).is_symlink():
                shutil.rmtree(out / sub)
            elif (out / sub).exists() or (out / sub).is_symlink():
                (out / sub).unlink()
            os.replace(tmp / sub, out / sub)
        write_atomic(out / MANIFEST, json.dumps(written, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Release([m for m, _ in built], out / "student", out / "grader", grades)


def _grade_masters(paths: list[Path], key_dir: Path, workers: int, cell_timeout: float,
                   total_timeout: float) -> list[NotebookGrade]:
    """Grade the masters as if a student named "master" had handed them in."""
    from .grade import grade  # the grader uses release's key module; imported here to keep release light

    with tempfile.TemporaryDirectory(prefix="masters-") as tmp:
        folder = Path(tmp) / "subs" / "master"
        folder.mkdir(parents=True)
        for path in paths:
            shutil.copy(path, folder / path.name)
        report = grade(folder.parent, key_dir, Path(tmp) / "out" / "grades.csv", workers=workers,
                       cell_timeout=cell_timeout, total_timeout=total_timeout)
    return report.notebooks


def expect_outside(masters: list[Master], grades: list[NotebookGrade]) -> None:
    """Mark each test part with whether the master was decided outside the kernel (``Part.outside``):
    True when it passed there, False when the grader could not replay it, None when the master failed it."""
    found = {(g.notebook, e.exercise, p.name): p for g in grades for e in g.exercises for p in e.parts}
    for master in masters:
        for ex in master.exercises:
            for part in ex.parts:
                result = found.get((master.name, ex.label, part.name))
                if result is None or result.status != "passed":
                    part.outside = None
                else:
                    part.outside = result.outside == "passed"


# --------------------------------------------------------------------------- the check
def _check_job(job: tuple[str, Optional[int], float, dict]) -> ExecutionResult:
    """Run a student notebook up to its first exercise."""
    path, first, cell_timeout, env = job
    return execute_notebook(path, env=env, cell_timeout=cell_timeout, stop_on_error=True, upto=first)


def check_student_versions(
    rel: Release, workers: int = 1, cell_timeout: float = 300.0, fast: bool = True
) -> list[ExecutionResult]:
    """Execute each student notebook up to its first exercise (all of it if it has none)."""
    env = kernel_env({"COURSE_FAST": "1"} if fast else {}, workers=workers)
    jobs = [(str(rel.student_dir / m.name), m.first_exercise, cell_timeout, env) for m in rel.masters]
    results = []
    for job, result in parallel_map(_check_job, jobs, workers, desc="check", label=lambda j: Path(j[0]).name):
        if isinstance(result, Exception):
            failed = CellResult(index=-1, status="error", message=f"the check could not run: {result}")
            result = ExecutionResult(name=Path(job[0]).name, cells=[failed])
        results.append(result)
    return sorted(results, key=lambda r: r.name)


# --------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC_DIR", help="folder of master notebooks, e.g. notebooks")
    parser.add_argument("out", metavar="OUT_DIR", help="writes OUT_DIR/student and OUT_DIR/grader (replaced)")
    parser.add_argument("--force", action="store_true",
                        help="replace OUT_DIR/student and OUT_DIR/grader even if they hold files no release wrote")
    parser.add_argument("--no-check", action="store_true",
                        help="do not execute the student notebooks up to their first exercise")
    parser.add_argument("--workers", type=int, default=default_workers(), help="notebooks checked at once")
    parser.add_argument("--cell-timeout", type=float, default=300.0, help="seconds per cell during the check")
    parser.add_argument("--full", action="store_true", help="check in full mode instead of fast mode")
    parser.add_argument("--grade-masters", action="store_true",
                        help="grade every master with the new key (they must get full marks) and record which tests "
                             "the grader decides outside the kernel, so that no student escapes that check")


def run(args: argparse.Namespace) -> int:
    try:
        rel = release(args.src, args.out, force=args.force, grade_masters=args.grade_masters, workers=args.workers,
                      cell_timeout=args.cell_timeout)
    except MarkerError as err:
        print(f"release refused: {len(err.problems)} problem(s), nothing written", file=sys.stderr)
        for line in err.problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    exercises = [e for m in rel.masters for e in m.exercises]
    print(f"released {len(rel.masters)} notebook(s), {len(exercises)} exercise(s), "
          f"{sum(e.points for e in exercises):g} points")
    print(f"  student versions: {rel.student_dir}")
    print(f"  grader key (keep it private): {rel.grader_dir}")
    failed = _report_masters(rel.master_grades)
    if args.no_check:
        return 1 if failed else 0
    for result in check_student_versions(rel, args.workers, args.cell_timeout, fast=not args.full):
        if result.ok:
            print(f"  ok   {result.name}: {len(result.cells)} cell(s) before the first exercise run "
                  f"({result.seconds:.1f} s)")
        else:
            failed += 1
            print(f"  FAIL {result.describe(limit=1)}")
    return 1 if failed else 0


def _report_masters(grades: list[NotebookGrade]) -> int:
    """One line per graded master; returns how many lost points."""
    failed = 0
    for g in sorted(grades, key=lambda g: g.notebook):
        rows = [e for e in g.exercises if e.points is not None]
        lost = [e for e in rows if e.status != "passed"]
        parts = [p for e in rows for p in e.parts]
        outside = sum(p.outside == "passed" for p in parts)
        if lost:
            failed += 1
            print(f"  FAIL master {g.notebook}: {lost[0].exercise}: {lost[0].message}")
        else:
            print(f"  ok   master {g.notebook}: full marks; {outside} of {len(parts)} tests decided outside the kernel")
    return failed
