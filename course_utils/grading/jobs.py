"""Which notebook of which student to grade: submissions found, matched to the key, made into jobs.

Submissions are laid out as nbgrader does, ``SUBMISSIONS_DIR/<student_id>/<notebook>.ipynb``,
or flat (``SUBMISSIONS_DIR/<student_id>.ipynb``) when one notebook is graded. A file is
matched to a notebook of the key by name, then by name with the usual renamings undone
(``Copy of ...``, `` (1)``), then by the exercise ids in its cells, then by its number prefix.
Folder names are taken as given (``...``, ``=1+1``); only tools' own folders are not students.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

from .markers import Exercise


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
    outside: bool = True  # decide each part that passed in the kernel again in a process of the grader's


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
