"""The grade sheet on disk: CSV cells safe for spreadsheets, and results kept per notebook so a batch resumes.

Each notebook's result is written (atomically) to ``.<sheet>.partial/`` next to the sheet as
soon as it is graded. A batch that is killed or interrupted leaves that folder behind, and
the next run with the same key takes the results of unchanged submissions from it instead of
grading them again. At the start of a batch an existing sheet is renamed ``*.previous.csv``,
so a run that fails never leaves an older sheet looking current; the folder is removed once
the new sheet is written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

from course_utils.files import write_atomic

from .execute import CellResult
from .feedback import ExerciseGrade, NotebookGrade, PartResult

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets read as a formula (OWASP's list)


def escape(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text: ``=1+1`` becomes ``'=1+1`` (formula injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_text(rows: list[dict[str, Any]], fields: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows({k: escape(row.get(k, "")) for k in fields} for row in rows)
    return buf.getvalue()


def file_hash(path: Optional[str | Path]) -> str:
    """sha256 of a submission ("" when there is none): a changed file is graded again on resume."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path and Path(path).is_file() else ""


class PartialResults:
    """The per-notebook results of one batch, in ``<sheet folder>/.<sheet stem>.partial/``."""

    def __init__(self, sheet: Path, fingerprint: str):
        self.folder = sheet.parent / f".{sheet.stem}.partial"
        self.fingerprint = fingerprint  # the key and the settings: results of another key are not reused
        stamp = self.folder / "batch.json"
        try:
            same = json.loads(stamp.read_text(encoding="utf-8")).get("fingerprint") == fingerprint
        except (OSError, ValueError, AttributeError):
            same = False
        if not same:
            shutil.rmtree(self.folder, ignore_errors=True)
            write_atomic(stamp, json.dumps({"fingerprint": fingerprint}))

    def _path(self, student: str, notebook: str) -> Path:
        name = hashlib.sha256(json.dumps([student, notebook]).encode("utf-8")).hexdigest()[:32]
        return self.folder / f"{name}.json"

    def save(self, grade: NotebookGrade, submission_hash: str) -> None:
        data = {"submission": submission_hash, "grade": asdict(grade)}
        write_atomic(self._path(grade.student, grade.notebook), json.dumps(data, ensure_ascii=False))

    def load(self, student: str, notebook: str, submission_hash: str) -> Optional[NotebookGrade]:
        """The saved result of this submission, if it was graded before and has not changed since."""
        try:
            data = json.loads(self._path(student, notebook).read_text(encoding="utf-8"))
            if data["submission"] != submission_hash or data["grade"]["status"] == "error":
                return None
            return _notebook_grade(data["grade"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _notebook_grade(d: dict[str, Any]) -> NotebookGrade:
    exercises = [ExerciseGrade(**{**e, "parts": [PartResult(**p) for p in e["parts"]]}) for e in d["exercises"]]
    return NotebookGrade(**{**d, "exercises": exercises, "cells": [CellResult(**c) for c in d["cells"]]})


def set_aside(*paths: Path) -> None:
    """Rename existing result files to ``*.previous.csv``: until the new ones are written, none looks current."""
    for path in paths:
        if path.is_file():
            path.replace(path.with_name(f"{path.stem}.previous{path.suffix}"))
