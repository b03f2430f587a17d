"""A hostile class: submissions that try to get marks they did not earn or to harm classmates.

ONE grade call over every attack of issue 18 (and a few more) plus honest classmates. For
each attacker: no credit not earned; for every classmate: the grade they earned; and after
the batch: no process of it survives, the key and the kit are unchanged.
"""

import csv
import hashlib
import os
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell
from test_grading import RIGHT, SECRET, demo_master, read_notebook, solved, write_nb

from course_utils.grading import grade as grading
from course_utils.grading.release import release

KIT = Path(grading.__file__).resolve().parent.parent
FULL = {"01_double": "3", "01_total": "2", "01_secret": "2", "01_explain": ""}
ZERO = {"01_double": "0", "01_total": "0", "01_secret": "0", "01_explain": ""}


def tree_hash(folder):
    h = hashlib.sha256()
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


def marked_processes(marker):
    """Processes whose environment carries ``marker`` (every kernel of the batch inherits it)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                if marker.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                    found.append(pid)
            except OSError:
                pass
    return found


# Each attack is one cell added after the last exercise of the untouched student version
# (or, with "solved", of an honest student's notebook).
ATTACKS = {
    "custom_exc": "get_ipython().set_custom_exc((Exception,), lambda *a, **k: None)",
    "patched_checks": ("import importlib, course_utils.checks as c\n"
                       "for n in dir(c):\n    if n.startswith('check_'):\n        setattr(c, n, lambda *a, **k: None)\n"
                       "importlib.reload = lambda m: m\nimportlib.import_module = lambda *a, **k: c"),
    "transformer": ("def _leak(lines):\n    open('/tmp/leaked_tests.txt', 'a').write(''.join(lines))\n"
                    "    return ['pass\\n']\n"
                    "get_ipython().input_transformers_cleanup.append(_leak)\n"
                    "get_ipython().input_transformers_post.append(_leak)"),
    "ast_transformer": ("import ast\nclass Gut(ast.NodeTransformer):\n"
                        "    def visit_Module(self, node):\n        return ast.Module(body=[], type_ignores=[])\n"
                        "get_ipython().ast_transformers.append(Gut())"),
    "run_hook": ("def _hook(info):\n    open('/tmp/leaked_tests.txt', 'a').write(str(info.raw_cell))\n"
                 "get_ipython().events.register('pre_run_cell', _hook)"),
    "shadow_kit": ("import os\nos.makedirs('course_utils', exist_ok=True)\n"
                   "open('course_utils/__init__.py', 'w').write('')\n"
                   "open('course_utils/checks.py', 'w').write("
                   "'def check_close(*a, **k): pass\\ndef check_equal(*a, **k): pass\\n"
                   "def check_true(*a, **k): pass\\n')\n"
                   "import sys\nsys.path.insert(0, os.getcwd())\n"
                   "for m in [m for m in sys.modules if m.startswith('course_utils')]:\n    del sys.modules[m]"),
    "kit_append": ("import course_utils.checks as c\n"
                   "open(c.__file__, 'a').write('\\ndef check_close(*a, **k): pass\\n"
                   "def check_equal(*a, **k): pass\\n')"),
    "builtins": "import builtins\nbuiltins.sum = lambda *a, **k: 0\nbuiltins.abs = lambda x: 0",
}
HONEST_WITH = {  # honest work plus something careless: full marks all the same
    "exit_mid": "exit()\nprint('after exit')",
    "quit_mid": "quit()",
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    rel = release_demo(base)
    student = read_notebook(rel.student_dir / "01_demo.ipynb")
    subs = base / "subs"
    last = max(i for i, c in enumerate(student.cells) if c.metadata.get("nbgrader", {}).get("grade"))
    for name, code in ATTACKS.items():
        nb = solved(student, {})
        nb.cells.insert(last + 1, new_code_cell(code))
        write_nb(nb, subs / name / "01_demo.ipynb")
    for name, code in HONEST_WITH.items():
        nb = solved(student, RIGHT)
        nb.cells.insert(4, new_code_cell(code))
        write_nb(nb, subs / name / "01_demo.ipynb")
    # a careless double() that kills the kernel on the hidden inputs: only double's tests suffer
    crashing = dict(RIGHT, **{"01_double": "import os\ndef double(x):\n    if isinstance(x, float):\n"
                                           "        os._exit(3)\n    return 2 * x"})
    write_nb(solved(student, crashing), subs / "crashing_function" / "01_demo.ipynb")
    for friend in ("honest_1", "honest_2"):
        write_nb(solved(student, RIGHT), subs / friend / "01_demo.ipynb")
    write_nb(demo_master(), subs / "master" / "01_demo.ipynb")
    Path("/tmp/leaked_tests.txt").unlink(missing_ok=True)
    key_before, kit_before = tree_hash(rel.grader_dir), tree_hash(KIT)
    marker = f"hostile-{os.getpid()}-{id(base)}"
    os.environ["COURSE_GRADER_TEST_MARK"] = marker
    try:
        report = grading.grade(subs, rel.grader_dir, base / "out" / "grades.csv", workers=2, cell_timeout=10,
                               total_timeout=120)
    finally:
        del os.environ["COURSE_GRADER_TEST_MARK"]
    rows = {(r["student_id"], r["exercise"]): r for r in csv.DictReader(report.grades_csv.open(encoding="utf-8"))}
    survivors = marked_processes(marker)
    leaked = Path("/tmp/leaked_tests.txt").read_text() if Path("/tmp/leaked_tests.txt").exists() else ""
    return {"report": report, "rows": rows, "survivors": survivors, "leaked": leaked,
            "key_same": key_before == tree_hash(rel.grader_dir), "kit_same": kit_before == tree_hash(KIT)}


def release_demo(base):
    write_nb(demo_master(), base / "masters" / "01_demo.ipynb")
    return release(base / "masters", base / "release")


def points(rows, student):
    return {ex: r["points"] for (s, ex), r in rows.items() if s == student}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attacks_earn_nothing(hostile, attack):
    rows = hostile["rows"]
    assert points(rows, attack) == ZERO, {ex: r["message"] for (s, ex), r in rows.items() if s == attack}


def test_tampering_is_named_in_the_message(hostile):
    rows = hostile["rows"]
    assert "not done yet" in rows["custom_exc", "01_double"]["message"]  # the reply's status, not IOPub
    assert "the builtin abs() was replaced" in rows["builtins", "01_double"]["message"]
    assert "not tested: the test did not run to its end" in rows["transformer", "01_double"]["message"]


def test_classmates_get_what_they_earned(hostile):
    rows = hostile["rows"]
    for student in ("honest_1", "honest_2", "master", "exit_mid", "quit_mid"):
        assert points(rows, student) == FULL, (student, [r["message"] for (s, _), r in rows.items() if s == student])


def test_a_crashing_function_costs_only_its_own_tests(hostile):
    got = points(hostile["rows"], "crashing_function")
    assert got["01_total"] == "2" and got["01_secret"] == "2", got
    assert got["01_double"] not in ("3", "0"), got  # the visible check (integers) still passes


def test_hidden_tests_do_not_leak_to_student_hooks(hostile):
    assert str(SECRET) not in hostile["leaked"]
    assert "arrays of any shape" not in hostile["leaked"]


def test_no_process_survives_and_key_and_kit_are_unchanged(hostile):
    assert hostile["survivors"] == []
    assert hostile["key_same"] and hostile["kit_same"]
