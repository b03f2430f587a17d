"""What the grader tells people: errors in a student's words, feedback files, the per-exercise summary.

The graders students complain about say ``AssertionError`` or ``NameError`` and stop.
Here every failed test says what went wrong in terms of the student's notebook:
"not done yet", "``conv2d`` is not defined: the cell that defines it was deleted...",
"wrong answer: conv2d, case 2 of 3 ...: value at (0, 1) is 2, expected 3", "took longer
than 60 s", "crashed the Python kernel".
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

from .execute import CellResult

MAX_MESSAGE = 400  # characters of an error message kept in the grade sheet


@dataclass
class PartResult:
    """One scored part of an exercise: the visible checks or one hidden ``# test:`` group."""

    name: str
    hidden: bool
    status: str  # "passed", "failed", "timeout", "crashed" or "skipped"
    message: str = ""  # for the student; "" when passed
    outside: str = ""  # "passed"/"failed": decided outside the kernel too; "undecided: <why>"; "": not replayed

    @property
    def title(self) -> str:
        return f'hidden test "{self.name}"' if self.hidden else self.name


@dataclass
class ExerciseGrade:
    """One row of the grade sheet, with the parts that make it up."""

    student: str
    notebook: str
    exercise: str
    points: Optional[float]  # None for an exercise graded by hand
    max_points: float
    status: str  # passed, partial, failed, timeout, crashed, skipped, missing, invalid, error, manual
    message: str = ""
    parts: list[PartResult] = field(default_factory=list)

    @property
    def decided_outside(self) -> str:
        """``"2/3"``: how many of its tests the grader decided outside the student's kernel too."""
        if not self.parts:
            return ""
        return f"{sum(p.outside in ('passed', 'failed') for p in self.parts)}/{len(self.parts)}"

    def row(self) -> dict[str, str]:
        points = "" if self.points is None else f"{self.points:.4g}"
        return {"student_id": self.student, "notebook": self.notebook, "exercise": self.exercise,
                "points": points, "max_points": f"{self.max_points:.4g}", "status": self.status,
                "message": self.message, "outside": self.decided_outside}


@dataclass
class NotebookGrade:
    """Everything the grader found out about one student's notebook."""

    student: str
    notebook: str
    status: str  # "graded", "missing", "invalid" or "error" (the grader's own problem)
    message: str = ""
    exercises: list[ExerciseGrade] = field(default_factory=list)
    cells: list[CellResult] = field(default_factory=list)  # how each code cell ran
    notes: list[str] = field(default_factory=list)  # problems outside the exercises, for the student
    restarts: int = 0
    seconds: float = 0.0


# --------------------------------------------------------------------------- words
def shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def explain_error(ename: str, evalue: str, names: list[str]) -> str:
    """An exception raised while testing, in words a student understands."""
    if ename == "NotImplementedError":
        return ("not done yet: the code still raises NotImplementedError (replace `# YOUR CODE HERE` "
                "and `raise NotImplementedError()` with your solution)")
    if ename in ("NameError", "UnboundLocalError"):
        m = re.search(r"'(\w+)'", evalue)
        name = m.group(1) if m else evalue
        if name in names:
            return (f"`{name}` is not defined: the cell that defines it was deleted, renamed, or failed "
                    f"to run (the grader runs your whole notebook, then looks `{name}` up by name)")
        return (f"`{name}` is not defined: the test uses it from your notebook, so a cell defining it was "
                "deleted or failed to run")
    if ename in ("CheckError", "AssertionError"):
        return f"wrong answer: {shorten(evalue)}" if evalue.strip() else "wrong answer (a check failed)"
    if ename in ("ModuleNotFoundError", "ImportError"):
        return f"{ename}: {shorten(evalue)} (the grader has only the packages of the course)"
    return f"your code raised {ename}: {shorten(evalue)}" if evalue else f"your code raised {ename}"


def explain_run(status: str, ename: str, evalue: str, names: list[str], seconds: float) -> tuple[str, str]:
    """(part status, message) for the outcome of one test part (see kernel.RunResult)."""
    if status == "ok":
        return "passed", ""
    if status == "timeout":
        return "timeout", (f"took longer than {seconds:.0f} s and was stopped: an infinite loop, "
                           "or a solution much slower than needed?")
    if status == "dead":
        return "crashed", f"crashed the Python kernel while testing ({shorten(evalue, 200)})"
    if status == "skipped":
        return "skipped", f"not tested: {evalue}"
    return "failed", explain_error(ename, evalue, names)


def exercise_status(parts: list[PartResult]) -> str:
    """passed / partial, or the one reason every part failed for (failed, timeout, crashed, skipped)."""
    passed = sum(p.status == "passed" for p in parts)
    if parts and passed == len(parts):
        return "passed"
    if passed:
        return "partial"
    kinds = {p.status for p in parts}
    return kinds.pop() if len(kinds) == 1 else "failed"


def exercise_message(parts: list[PartResult], solution_note: str = "") -> str:
    """One line for the grade sheet: how many parts passed and why the others did not."""
    passed = sum(p.status == "passed" for p in parts)
    if passed == len(parts):
        return f"all {len(parts)} test(s) passed"
    by_reason: dict[str, list[str]] = {}
    for p in parts:
        if p.status != "passed":
            by_reason.setdefault(p.message, []).append(p.title)
    reasons = []
    for message, titles in by_reason.items():
        who = "all tests" if len(titles) == len(parts) > 1 else ", ".join(titles)
        reasons.append(f"{who}: {message}")
    head = f"{passed} of {len(parts)} test(s) passed. "
    return shorten(head + (solution_note + " " if solution_note else "") + " | ".join(reasons), 2 * MAX_MESSAGE)


# --------------------------------------------------------------------------- files
def _points(x: Optional[float]) -> str:
    return "graded by hand" if x is None else f"{x:.4g}"


def student_feedback(student: str, grades: list[NotebookGrade]) -> str:
    """The markdown feedback file of one student: totals, then every exercise and what failed."""
    rows = [e for g in grades for e in g.exercises]
    got = sum(e.points or 0 for e in rows)
    total = sum(e.max_points for e in rows if e.points is not None)
    lines = [f"# Feedback for {student}", "", f"**Total: {got:.4g} / {total:.4g} points**"]
    manual = [e for e in rows if e.points is None]
    if manual:
        lines.append(f"(plus {sum(e.max_points for e in manual):.4g} point(s) graded by hand)")
    for g in sorted(grades, key=lambda g: g.notebook):
        auto = [e for e in g.exercises if e.points is not None]
        lines += ["", f"## {g.notebook}: {sum(e.points or 0 for e in auto):.4g} / "
                      f"{sum(e.max_points for e in auto):.4g}"]
        if g.status != "graded":
            lines += ["", f"**{g.status}**: {g.message}"]
        for e in g.exercises:
            lines += ["", f"### {e.exercise}: {_points(e.points)} / {e.max_points:.4g} ({e.status})"]
            reasons = {p.message for p in e.parts}
            if len(e.parts) > 1 and len(reasons) == 1 and e.parts[0].status != "passed":
                lines.append(f"- ✗ all {len(e.parts)} tests: {e.parts[0].message}")
            else:
                for p in e.parts:
                    mark = "✓" if p.status == "passed" else "✗"
                    lines.append(f"- {mark} {p.title}" + (f": {p.message}" if p.message else ""))
            if not e.parts and e.message:
                lines.append(f"- {e.message}")
            if any(p.outside for p in e.parts):  # the grader tried to decide some test outside the kernel
                lines.append(_outside_line(e))
        if g.notes:
            lines += ["", "Notes on your notebook:"] + [f"- {n}" for n in g.notes]
    return "\n".join(lines) + "\n"


def _outside_line(e: ExerciseGrade) -> str:
    """Which tests the grader also decided in its own process, and why not the others."""
    done, total = e.decided_outside.split("/")
    kernel_only = [p for p in e.parts if p.outside.startswith("undecided")]
    line = f"- checked outside your notebook's kernel too: {done} of {total} test(s)"
    if kernel_only:
        why = kernel_only[0].outside.split(": ", 1)[-1]
        line += f"; checked in your kernel only: {', '.join(p.title for p in kernel_only)} ({shorten(why, 160)})"
    return line


def _decided_outside(parts: list[PartResult]) -> str:
    """Of the tests that passed in the students' kernels, how many the grader decided in its own process too."""
    passed = [p for p in parts if p.outside == "passed" or p.outside.startswith("undecided")]
    return f"{sum(p.outside == 'passed' for p in passed)}/{len(passed)}"


SUMMARY_FIELDS = ["notebook", "exercise", "max_points", "students", "mean_points", "full_marks", "zero_points",
                  "most_common_problem", "decided_outside"]


def exercise_summary(rows: list[ExerciseGrade]) -> list[dict[str, str]]:
    """One line per exercise: how the class did and the most frequent reason for lost points."""
    groups: dict[tuple[str, str], list[ExerciseGrade]] = {}
    for r in rows:
        groups.setdefault((r.notebook, r.exercise), []).append(r)
    out = []
    for (notebook, exercise), rs in groups.items():
        scored = [r for r in rs if r.points is not None]
        problems = Counter(p.message for r in rs for p in r.parts if p.status != "passed")
        problems.update(r.message for r in rs if not r.parts and r.status not in ("passed", "manual"))
        by_hand = any(r.status == "manual" for r in rs)
        mean = sum(r.points for r in scored) / len(scored) if scored and not by_hand else None
        out.append({
            "notebook": notebook, "exercise": exercise, "max_points": f"{rs[0].max_points:.4g}",
            "students": str(len(rs)), "mean_points": "" if mean is None else f"{mean:.3g}",
            "full_marks": "" if by_hand else str(sum(r.points == r.max_points for r in scored)),
            "zero_points": "" if by_hand else str(sum(r.points == 0 for r in scored)),
            "most_common_problem": shorten(problems.most_common(1)[0][0], 200) if problems else "",
            "decided_outside": _decided_outside([p for r in rs for p in r.parts]),
        })
    return out
