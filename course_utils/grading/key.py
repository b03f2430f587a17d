"""The grader key: the exercise list, the points and the hidden tests, never shipped to students.

``release`` writes it to ``OUT_DIR/grader/``:

* ``key.json``, read by ``grade``: for each notebook, its exercises with their points,
  the names the solution defines and the test parts (visible checks and each hidden
  ``# test:`` group, as code);
* ``exercises.csv``: the same list for people (notebook, exercise, points, tests);
* ``README.txt``: a reminder that this folder stays with the teachers.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Union

from course_utils.files import write_atomic

from .markers import Exercise, Master

KEY_FILE = "key.json"
FORMAT = "course-kit grader key"
VERSION = 1

_README = """This folder is the grader key made by `python -m course_utils release`.
It holds the hidden tests: keep it with the teachers, never give it to students.
Grade a folder of submissions with:

    python -m course_utils grade SUBMISSIONS_DIR --key {path} --out grades.csv
"""


def save_key(masters: list[Master], grader_dir: Union[str, os.PathLike]) -> Path:
    """Write key.json, exercises.csv and README.txt into ``grader_dir``; return key.json's path."""
    grader_dir = Path(grader_dir)
    data = {
        "format": FORMAT,
        "version": VERSION,
        "notebooks": {m.name: [e.to_dict() for e in m.exercises] for m in masters},
    }
    path = grader_dir / KEY_FILE
    write_atomic(path, json.dumps(data, indent=1, ensure_ascii=False))
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["notebook", "exercise", "points", "kind", "tests"])
    for m in masters:
        for e in m.exercises:
            writer.writerow([m.name, e.label, f"{e.points:g}", e.kind, " | ".join(p.name for p in e.parts)])
    write_atomic(grader_dir / "exercises.csv", table.getvalue())
    write_atomic(grader_dir / "README.txt", _README.format(path=grader_dir))
    return path


def load_key(path: Union[str, os.PathLike]) -> dict[str, list[Exercise]]:
    """Notebook name -> its exercises, from key.json or the folder holding it.

    Raises ``ValueError`` naming the file and what is wrong with it.
    """
    path = Path(path)
    if path.is_dir():
        path = path / KEY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no grader key here; make one with 'python -m course_utils release'") from None
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read the grader key ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a grader key (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise ValueError(f"{path}: key version {data.get('version')!r}, this kit reads version {VERSION}; "
                         "release the masters again")
    try:
        return {name: [Exercise.from_dict(e) for e in exercises] for name, exercises in data["notebooks"].items()}
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: malformed grader key ({type(err).__name__}: {err})") from None
