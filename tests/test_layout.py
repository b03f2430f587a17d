"""The package's layout follows the syllabus: an earlier lesson never imports a later one.

Levels, lowest first: the foundations (``env``, ``files``, ``checks``, ``plotting``),
then one subpackage per part of the course, then the apps, the teacher's grading
tools, the command line and the developer tools. A module may import its own level and
lower ones only. Imports are read from the source (inside functions too), so a lazy
import cannot hide a wrong direction.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "course_utils"
LEVELS = ["foundations", "basics", "vision", "sequence", "caption_data", "captioning", "apps", "grading", "cli",
          "tools"]  # fmt: skip
FOUNDATIONS = {"env", "files", "checks", "plotting"}
MAX_LINES = 420  # "no module over ~400 lines"
# Debts still being paid: each entry is a module that breaks a rule today. Remove the
# entry with the fix; the tests fail if an entry is no longer needed, so the list only shrinks.
KNOWN_TOO_LONG: set[str] = set()
KNOWN_WRONG_DIRECTION: set[tuple[str, str]] = set()


def level_of(module: str) -> str:
    """``course_utils.vision.cam`` -> ``vision``; foundation modules -> ``foundations``."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in FOUNDATIONS or parts[1] in ("__init__", "__main__"):
        return "foundations" if len(parts) > 1 and parts[1] in FOUNDATIONS else "entry"
    return parts[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every ``course_utils`` module that ``path`` imports, with the line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module_name(path).split(".")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("course_utils")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = here[: len(here) - node.level + (1 if path.name == "__init__.py" else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("course_utils"):
                # "from course_utils.vision import cam" imports the module course_utils.vision.cam
                subs = [f"{name}.{a.name}" for a in node.names if (PACKAGE.parent / f"{name}.{a.name}".replace(".", "/")
                                                                     ).with_suffix(".py").exists()]  # fmt: skip
                found += [(node.lineno, s) for s in subs] or [(node.lineno, name)]
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_sits_on_a_known_level():
    for path in SOURCES:
        level = level_of(module_name(path))
        assert level in LEVELS + ["entry"], f"{path}: a folder the layout test does not know ({level})"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_earlier_lesson_imports_a_later_one(path):
    mine = level_of(module_name(path))
    if mine == "entry":
        return
    rel = str(path.relative_to(PACKAGE))
    wrong = []
    for line, target in imports_of(path):
        theirs = level_of(target)
        if theirs != "entry" and LEVELS.index(theirs) > LEVELS.index(mine):
            wrong.append((line, target, theirs))
    known = {t for f, t in KNOWN_WRONG_DIRECTION if f == rel}
    for line, target, theirs in wrong:
        assert target in known, f"course_utils/{rel}:{line} ({mine}) imports {target} ({theirs}), a later lesson"
    assert known <= {t for _, t, _ in wrong}, f"{rel}: fixed; remove it from KNOWN_WRONG_DIRECTION"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_short_enough_to_read(path):
    lines = len(path.read_text().splitlines())
    rel = str(path.relative_to(PACKAGE))
    if rel in KNOWN_TOO_LONG:
        assert lines > MAX_LINES, f"{rel}: now {lines} lines; remove it from KNOWN_TOO_LONG"
    else:
        assert lines <= MAX_LINES, f"course_utils/{rel}: {lines} lines; split it by concern"
