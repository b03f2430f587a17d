"""A hostile class: submissions that try to get marks they did not earn or to harm classmates.

ONE grade call over every attack of issue 18 (and a few more) plus honest classmates. For
each attacker: no credit not earned; for every classmate: the grade they earned; and after
the batch: no process of it survives, the key and the kit are unchanged.
"""

import csv
import hashlib
import json
import os
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell
from test_grading import RIGHT, ROOT, SECRET, demo_master, read_notebook, solved, write_nb

from course_utils.grading import grade as grading
from course_utils.grading import sandbox, sheet
from course_utils.grading.key import load_key
from course_utils.grading.notebook import unscored
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


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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
    "parent_kill": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
    "orphan": ("import subprocess\n"
               "subprocess.Popen(['setsid', 'sh', '-c', 'sleep 30; echo HACKED > {out}'], start_new_session=True)"),
    # wrong answers that pass in the kernel because numpy's comparison lies there: the grader's own process,
    # where the tests run again on the recorded results, has the real numpy
    "patched_numpy": ("import numpy as np\n"
                      "np.isclose = lambda a, b, **k: np.ones(np.broadcast(np.asarray(a), np.asarray(b)).shape, bool)\n"
                      "def double(x):\n    return x"),
    # results that compare equal to anything: the grader cannot rebuild them outside, and the key says the
    # master's could be
    "opaque_results": ("class Yes:\n    def __eq__(self, other):\n        return True\n"
                       "    def __ne__(self, other):\n        return False\n"
                       "def total(xs):\n    return Yes()\ndef secret():\n    return Yes()"),
    "no_recording": ("import numpy as np\nnp.savez = lambda *a, **k: None\n"
                     "np.isclose = lambda a, b, **k: np.ones(np.broadcast(np.asarray(a), np.asarray(b)).shape, bool)\n"
                     "def double(x):\n    return x"),
}
NEED_SANDBOX = {  # attacks that only the sandbox stops (docs/grading.md, "what isolation covers")
    "overwrite_classmates": ("import os\nfor top in ('/tmp', os.path.dirname(os.path.dirname(os.getcwd()))):\n"
                             "    for folder, _, files in os.walk(top):\n"
                             "        if '01_demo.ipynb' in files and folder != os.getcwd():\n"
                             "            try:\n"
                             "                open(os.path.join(folder, '01_demo.ipynb'), 'a').write('broken')\n"
                             "            except OSError:\n                pass"),
    "read_key": ("import glob\nKEYS = [open(p).read() for p in glob.glob('/tmp/**/key.json', recursive=True)]\n"
                 "def secret():\n    return 1234 if any('1234' in k for k in KEYS) else 0"),
}
NEED_PROCESS_LIMIT = {  # attacks that only a process limit stops (sandbox.process_limit_problem)
    "fork_bomb": ("import subprocess\nSLEEPERS = []\nfor _ in range(10_000):\n    try:\n"
                  "        SLEEPERS.append(subprocess.Popen(['sleep', '300']))\n    except OSError:\n        break"),
}
EARNED = {"read_key": {"01_secret": "1"}}  # its secret() returns an int: the visible check passes
HONEST_WITH = {  # honest work plus something careless: full marks all the same
    "exit_mid": "exit()\nprint('after exit')",
    "quit_mid": "quit()",
}


@pytest.fixture(scope="module", params=["sandbox", "plain"])
def hostile(request, tmp_path_factory):
    """The batch, in the sandbox (where bubblewrap runs) and without it (as on Colab or macOS)."""
    if request.param == "sandbox" and sandbox.bwrap_problem():
        pytest.skip(f"no sandbox here: {sandbox.bwrap_problem()}")
    with pytest.MonkeyPatch.context() as mp:
        if request.param == "plain":
            mp.setenv("COURSE_GRADER_NO_SANDBOX", "1")
        sandbox.forget_probes()
        yield run_batch(tmp_path_factory.mktemp(f"hostile_{request.param}"), request.param == "sandbox")
    sandbox.forget_probes()


def run_batch(base, sandboxed):
    out = base / "out" / "grades.csv"
    attacks = dict(ATTACKS, **(NEED_SANDBOX if sandboxed else {}),
                   **(NEED_PROCESS_LIMIT if not sandbox.process_limit_problem() else {}))
    rel = release_demo(base)
    student = read_notebook(rel.student_dir / "01_demo.ipynb")
    subs = base / "subs"
    last = max(i for i, c in enumerate(student.cells) if c.metadata.get("nbgrader", {}).get("grade"))
    for name, code in attacks.items():
        nb = solved(student, {})
        nb.cells.insert(last + 1, new_code_cell(code.replace("{out}", str(out))))
        write_nb(nb, subs / name / "01_demo.ipynb")
    for name, code in HONEST_WITH.items():
        nb = solved(student, RIGHT)
        nb.cells.insert(4, new_code_cell(code))
        write_nb(nb, subs / name / "01_demo.ipynb")
    # a careless double() that kills the kernel on the hidden inputs: only double's tests suffer
    crashing = dict(RIGHT, **{"01_double": "import os\ndef double(x):\n    if isinstance(x, float):\n"
                                           "        os._exit(3)\n    return 2 * x"})
    write_nb(solved(student, crashing), subs / "crashing_function" / "01_demo.ipynb")
    for friend in ("honest_1", "honest_2", "=1+1", "..."):  # folder names taken as given
        write_nb(solved(student, RIGHT), subs / friend / "01_demo.ipynb")
    write_nb(student, subs / "two_copies" / "01_demo.ipynb")  # the untouched one, named as expected
    write_nb(solved(student, RIGHT), subs / "two_copies" / "Copy of 01_demo.ipynb")
    write_nb(demo_master(), subs / "master" / "01_demo.ipynb")
    sub_hashes = {p: sha(p) for p in subs.rglob("*.ipynb")}
    Path("/tmp/leaked_tests.txt").unlink(missing_ok=True)
    key_before, kit_before = tree_hash(rel.grader_dir), tree_hash(KIT)
    marker = f"hostile-{os.getpid()}-{id(base)}"
    os.environ["COURSE_GRADER_TEST_MARK"] = marker
    try:
        report = grading.grade(subs, rel.grader_dir, out, workers=2, cell_timeout=10, total_timeout=120)
    finally:
        del os.environ["COURSE_GRADER_TEST_MARK"]
    rows = {(r["student_id"], r["exercise"]): r for r in csv.DictReader(report.grades_csv.open(encoding="utf-8"))}
    survivors = marked_processes(marker)
    leaked = Path("/tmp/leaked_tests.txt").read_text() if Path("/tmp/leaked_tests.txt").exists() else ""
    return {"report": report, "rows": rows, "survivors": survivors, "leaked": leaked, "attacks": attacks,
            "subs_changed": sorted(str(p) for p in set(sub_hashes) | set(subs.rglob("*.ipynb"))
                                   if not p.exists() or sub_hashes.get(p) != sha(p)),
            "sandboxed": sandboxed, "key": rel.grader_dir,
            "key_same": key_before == tree_hash(rel.grader_dir), "kit_same": kit_before == tree_hash(KIT)}


def release_demo(base):
    """The demo's key, with the tests the master's results were checked on outside the kernel."""
    write_nb(demo_master(), base / "masters" / "01_demo.ipynb")
    return release(base / "masters", base / "release", grade_masters=True, cell_timeout=20, total_timeout=120)


def points(rows, student):
    return {ex: r["points"] for (s, ex), r in rows.items() if s == student}


def test_attacks_earn_nothing(hostile):
    rows = hostile["rows"]
    for attack in hostile["attacks"]:
        earned = dict(ZERO, **EARNED.get(attack, {}))
        assert points(rows, attack) == earned, {ex: r["message"] for (s, ex), r in rows.items() if s == attack}


def test_the_sheet_says_how_kernels_were_confined(hostile):
    line = next(iter(hostile["rows"].values()))["isolation"]
    assert line.startswith("isolated (bubblewrap" if hostile["sandboxed"] else "NOT ISOLATED")
    assert hostile["report"].summary_csv.read_text(encoding="utf-8").count(line) >= 1


def test_tampering_is_named_in_the_message(hostile):
    rows = hostile["rows"]
    assert "not done yet" in rows["custom_exc", "01_double"]["message"]  # the reply's status, not IOPub
    assert "the builtin abs() was replaced" in rows["builtins", "01_double"]["message"]
    assert "not tested: the test did not run to its end" in rows["transformer", "01_double"]["message"]


def test_classmates_get_what_they_earned(hostile):
    rows = hostile["rows"]
    for student in ("honest_1", "honest_2", "'=1+1", "...", "master", "exit_mid", "quit_mid"):
        assert points(rows, student) == FULL, (student, [r["message"] for (s, _), r in rows.items() if s == student])


def test_lies_in_the_kernel_are_caught_outside_it(hostile):
    rows = hostile["rows"]
    assert "when the grader checked your results outside your notebook's kernel" in \
        rows["patched_numpy", "01_double"]["message"]
    assert rows["patched_numpy", "01_double"]["outside"] == "3/3"
    for student, exercise in (("opaque_results", "01_total"), ("no_recording", "01_double")):
        assert "could not check your results outside your notebook's kernel" in rows[student, exercise]["message"]
    for student in ("honest_1", "master", "exit_mid"):  # every test of the demo is decided outside too
        assert [rows[student, e]["outside"] for e in ("01_double", "01_total", "01_secret")] == ["3/3", "2/2", "2/2"]
    if "fork_bomb" in hostile["attacks"]:  # bounded by the process limit: the batch went on, tests ran
        [bomb] = [g for g in hostile["report"].notebooks if g.student == "fork_bomb"]
        assert bomb.status == "graded" and "not done yet" in rows["fork_bomb", "01_total"]["message"]


def test_the_key_says_which_tests_the_master_passed_outside(hostile):
    parts = [p for e in load_key(hostile["key"])["01_demo.ipynb"] for p in e.parts]
    assert [p.outside for p in parts] == [True] * 7


def test_a_crashing_function_costs_only_its_own_tests(hostile):
    got = points(hostile["rows"], "crashing_function")
    assert got["01_total"] == "2" and got["01_secret"] == "2", got
    assert got["01_double"] not in ("3", "0"), got  # the visible check (integers) still passes


def test_hidden_tests_do_not_leak_to_student_hooks(hostile):
    # Every line of every hidden test, as the key stores it. Not the bare number: what the hooks record is
    # the grader's own code, with random hex tokens and folder names where "1234" turns up by chance
    # (about 1 run in 300: a flaky test once, in CI).
    parts = [p for entry in load_key(hostile["key"])["01_demo.ipynb"] for p in entry.parts]
    shown = {line.strip() for p in parts if not p.hidden for line in p.code.splitlines()}  # the student has these
    hidden = [line.strip() for p in parts if p.hidden for line in p.code.splitlines()
              if line.strip() and line.strip() not in shown]
    assert f'assert secret() == {SECRET}, "wrong secret"' in hidden and "# test: arrays of any shape" in hidden
    assert [line for line in hidden if line in hostile["leaked"]] == []
    if not hostile["sandboxed"]:  # in the sandbox the kernels' /tmp is their own: nothing reaches this file
        assert "__course_grader_part(" in hostile["leaked"], "the hooks recorded nothing: the attacks did not run"


def test_no_process_survives_and_key_and_kit_are_unchanged(hostile):
    assert hostile["survivors"] == []
    assert hostile["key_same"] and hostile["kit_same"]


def test_submissions_are_unchanged(hostile):
    assert hostile["subs_changed"] == [], "a kernel changed a submission"


def test_csv_cells_cannot_be_formulas(hostile):
    text = hostile["report"].grades_csv.read_text(encoding="utf-8")
    assert "\n'=1+1,01_demo.ipynb," in text and "\n=1+1," not in text
    assert ("'=1+1", "01_double") in hostile["rows"]


def test_two_copies_are_named_in_the_feedback(hostile):
    assert points(hostile["rows"], "two_copies")["01_double"] == "0"  # the file named as expected is graded
    text = (hostile["report"].feedback_dir / "two_copies.md").read_text(encoding="utf-8")
    assert "your folder holds 2 copies of 01_demo.ipynb: the grader graded 01_demo.ipynb" in text
    assert "Copy of 01_demo.ipynb" in text


def test_an_interrupted_batch_resumes_and_no_old_sheet_looks_current(tmp_path):
    """A saved per-notebook result is used as is; a sheet of an earlier run is set aside at the start."""
    rel = release_demo(tmp_path)
    subs, out = tmp_path / "subs", tmp_path / "res" / "grades.csv"
    write_nb(demo_master(), subs / "done" / "01_demo.ipynb")
    write_nb(solved(read_notebook(rel.student_dir / "01_demo.ipynb"), RIGHT), subs / "todo" / "01_demo.ipynb")
    out.parent.mkdir()
    out.write_text("student_id\nstale\n")
    settings = dict(workers=1, cell_timeout=20, total_timeout=120)
    partial = sheet.PartialResults(out, grading._fingerprint(rel.grader_dir, True, 20, 120, None, True))
    [done] = [j for j in grading.find_jobs(subs, load_key(rel.grader_dir), None)[0] if j.student == "done"]
    saved = unscored(done, "graded", "graded before the batch was killed")
    partial.save(saved, sheet.file_hash(done.path))
    report = grading.grade(subs, rel.grader_dir, out, **settings)
    rows = {(r["student_id"], r["exercise"]): r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert rows["done", "01_double"]["message"] == "graded before the batch was killed"  # not graded again
    assert rows["todo", "01_double"]["points"] == "3"
    assert (tmp_path / "res" / "grades.previous.csv").read_text() == "student_id\nstale\n"
    assert not partial.folder.exists() and report.grades_csv == out


# --------------------------------------------------------------------------- forbidden calls
FORBIDDEN_TEST = """from course_utils.checks import check_function
from course_utils.basics.filters import conv2d as reference
import numpy as np
rng = np.random.default_rng(0)
check_function(conv2d, reference, [(rng.normal(size=(n, n)), rng.normal(size=(3, 3))) for n in (4, 7)])
"""
FORBIDDEN = ["course_utils.basics.filters.conv2d", "scipy.signal.correlate2d"]
SHORTCUTS = {
    "alias": "from course_utils.basics.filters import conv2d",
    "wrapper": "from course_utils.basics.filters import conv2d as ref\ndef conv2d(i, k):\n    return ref(i, k)",
    "closure": ("def make():\n    import course_utils.basics.filters as f\n    g = f.conv2d\n"
                "    def conv2d(i, k):\n        return g(i, k)\n    return conv2d\nconv2d = make()"),
    "partial": "import functools\nfrom course_utils.basics import filters\nconv2d = functools.partial(filters.conv2d)",
    "library": "import scipy.signal as s\ndef conv2d(i, k):\n    return s.correlate2d(i, k, mode='valid')",
    "unhook": ("import sys\nimport scipy.signal as s\n"
               "def conv2d(i, k):\n    sys.setprofile(None)\n    return s.correlate2d(i, k, mode='valid')"),
}
HONEST_CONV = ("import numpy as np\ndef conv2d(i, k):\n    n, m = k.shape\n"
               "    return np.array([[np.sum(i[r:r + n, c:c + m] * k)"
               " for c in range(i.shape[1] - m + 1)] for r in range(i.shape[0] - n + 1)])")


def run_part(session, test, forbidden, names, name="t", token="tok3n"):
    """One test part as the grader sends it, ``forbidden`` calls watched: (passed, run result), passed as the
    grader counts it (the reply is ok and the part's token was read back)."""
    from course_utils.grading.guard import TOKEN_NAME, part_code

    r = session.run(part_code(test, name, str(KIT.parent), token, forbidden, names), record=False,
                    expressions={"t": TOKEN_NAME})
    return r.status == "ok" and token in r.expressions.get("t", ""), r


def watched_run(tmp_path, student_code, test, forbidden, names):
    """A fresh kernel: the student's code, the grader's PREPARE_CODE, then :func:`run_part`."""
    from course_utils.grading.execute import Session
    from course_utils.grading.guard import PREPARE_CODE

    with Session(tmp_path, cell_timeout=60) as session:
        assert session.run(student_code).status == "ok"
        session.run(PREPARE_CODE, record=False)
        return run_part(session, test, forbidden, names)


@pytest.mark.parametrize("case", [*SHORTCUTS, "honest"])
def test_forbidden_calls_earn_nothing_but_the_test_may_use_the_reference(case, tmp_path):
    from course_utils.grading.guard import forbidden_calls

    passed, r = watched_run(tmp_path, SHORTCUTS.get(case, HONEST_CONV), FORBIDDEN_TEST, FORBIDDEN, ["conv2d"])
    if case == "honest":
        assert passed, r.error
    else:
        assert r.status == "error" and not passed
        called = forbidden_calls(r.evalue)
        assert called, r.error
        if case != "unhook":
            assert called in FORBIDDEN


HISTOGRAM_TEST = """import numpy as np
from course_utils.checks import check_close
grey = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
check_close(histogram(grey), np.histogram(grey, bins=256, range=(0, 256))[0], name="histogram")
"""
NUMPY_SHORTCUTS = {  # numpy's public functions are dispatcher objects (numpy >= 1.25), not plain functions
    "bincount": "import numpy as np\ndef histogram(g):\n    return np.bincount(g.ravel(), minlength=256)",
    "histogram": "import numpy as np\ndef histogram(g):\n    return np.histogram(g, bins=256, range=(0, 256))[0]",
    "alias": "from numpy import bincount as count\nhistogram = lambda g: count(g.ravel(), minlength=256)",
    "honest": ("import numpy as np\ndef histogram(g):\n    counts = np.zeros(256, np.int64)\n"
               "    np.add.at(counts, g.ravel(), 1)\n    return counts"),
}


@pytest.mark.parametrize("case", NUMPY_SHORTCUTS)
def test_numpy_shortcuts_are_seen_and_the_test_may_use_them(case, tmp_path):
    from course_utils.grading.guard import forbidden_calls

    forbidden = ["numpy.histogram", "numpy.bincount"]
    passed, r = watched_run(tmp_path, NUMPY_SHORTCUTS[case], HISTOGRAM_TEST, forbidden, ["histogram"])
    if case == "honest":
        assert passed, r.error
    else:
        assert not passed and r.status == "error" and "numpy.bincount" in forbidden_calls(r.evalue), r.error


DISPATCH_TEST = """import numpy as np
from course_utils.checks import check_close
import scipy.signal
# numpy < 1.25 runs its public functions through wrappers compiled as "<__array_function__ internals>":
# np.histogram (the test's own) reaches np.bincount from such a frame, which is not the student's code
wrapper = {}
exec(compile("def library(i, k):\\n    return correlate2d(i, k, mode='valid')",
             "<__array_function__ internals>", "exec"), {"correlate2d": scipy.signal.correlate2d}, wrapper)
i, k = np.arange(16.0).reshape(4, 4), np.ones((3, 3))
check_close(conv2d(i, k), wrapper["library"](i, k), name="conv2d")
"""


def test_a_library_wrapper_the_test_calls_is_not_the_students_call(tmp_path):
    passed, r = watched_run(tmp_path, HONEST_CONV, DISPATCH_TEST, FORBIDDEN, ["conv2d"])
    assert passed, r.error


def test_forbidden_lines_are_read_from_the_grade_cell():
    from course_utils.grading.markers import forbidden_names

    cell = "check(x)\n### BEGIN HIDDEN TESTS\n# forbidden: a.b, scipy.signal.correlate2d\n# test: t\nf()\n"
    assert forbidden_names(cell) == ["a.b", "scipy.signal.correlate2d"]


DECORATED_TEST = """import torch
from course_utils.checks import check_close
from course_utils.captioning.decoding import beam_search as reference
check_close(search(torch.ones(2)), torch.full((2,), 2.0), name="search")
"""
DECORATED = {  # torch.no_grad() wraps every function it decorates in the same code: the real one must be watched
    "honest": "import torch\n@torch.no_grad()\ndef search(x):\n    return 2 * x",
    "shortcut": ("import torch\nfrom course_utils.captioning.decoding import beam_search\n"
                 "@torch.no_grad()\ndef search(x):\n    try:\n        beam_search(None, x, 1, 2)\n"
                 "    except Exception:\n        pass\n    return 2 * x"),
}


@pytest.mark.parametrize("case", DECORATED)
def test_a_decorated_reference_is_watched_not_its_decorator(case, tmp_path):
    from course_utils.grading.guard import forbidden_calls

    forbidden = ["course_utils.captioning.decoding.beam_search"]
    passed, r = watched_run(tmp_path, DECORATED[case], DECORATED_TEST, forbidden, ["search"])
    if case == "honest":
        assert passed, r.error
    else:
        assert not passed and r.status == "error" and forbidden_calls(r.evalue) == forbidden[0], r.error


# --------------------------------------------------------------------------- the masters' forbidden lines
# One solution per notebook written as a shortcut (the kit's reference, or a library call that does the work),
# for exercises whose visible checks need nothing else from the notebook.
RNN_FORWARD = ("import torch\nfrom course_utils.sequence import rnn_cells\n"
               "def rnn_forward(xs, h0, W_xh, W_hh, b):\n    hs, h = [], h0\n    for x in xs:\n"
               "        h = rnn_cells.rnn_step(x, h, W_xh, W_hh, b)\n        hs.append(h)\n"
               "    return torch.stack(hs)\n")
MASTER_SHORTCUTS = {
    "01_bmp_size": ("01_images_as_arrays.ipynb", "from course_utils.basics.arrays import bmp_size"),
    "02_conv2d_layer": ("02_filtering_and_convolution.ipynb",
                        "import numpy as np\nimport torch\nimport torch.nn.functional as F\n"
                        "def conv2d_layer(images, weight, bias, stride=1, padding=0):\n"
                        "    t = [torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (images, weight, bias)]\n"
                        "    return F.conv2d(*t, stride=stride, padding=padding).numpy()"),
    "03_adam": ("03_neural_networks_and_optimisers.ipynb",  # torch.optim.Adam made to take one step from (m, v, t)
                "import torch\n"
                "def adam_update(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):\n"
                "    p = param.detach().clone()\n"
                "    opt = torch.optim.Adam([p], lr=lr, betas=(beta1, beta2), eps=eps)\n"
                "    p.grad = grad.clone()\n"
                "    state = {'step': torch.tensor(float(t - 1)), 'exp_avg': m.clone(), 'exp_avg_sq': v.clone()}\n"
                "    opt.state[p] = state\n"
                "    opt.step()\n"
                "    return p, state['exp_avg'], state['exp_avg_sq']"),
    "04_param_counts": ("04_cnn_classifier.ipynb",
                        "from torch import nn\n"
                        "def conv2d_params(i, o, k):\n"
                        "    return sum(p.numel() for p in nn.Conv2d(i, o, k).parameters())\n"
                        "def linear_params(i, o):\n    return sum(p.numel() for p in nn.Linear(i, o).parameters())"),
    "06_rnn_backward": ("06_rnn_and_lstm.ipynb",  # autograd, with the bias rebuilt from the first hidden state
                        RNN_FORWARD + "def rnn_backward(xs, hs, h0, W_xh, W_hh, dhs):\n"
                        "    leaves = [t.detach().clone().requires_grad_(True) for t in (xs, h0, W_xh, W_hh)]\n"
                        "    b = (torch.atanh(hs[0]) - xs[0] @ W_xh.T - h0 @ W_hh.T).mean(0)\n"
                        "    b = b.detach().requires_grad_(True)\n"
                        "    grads = torch.autograd.grad((rnn_forward(*leaves, b) * dhs).sum(), [*leaves, b])\n"
                        "    return dict(zip(['xs', 'h0', 'W_xh', 'W_hh', 'b'], grads))"),
    "07_pad_captions": ("07_caption_data.ipynb",
                        "import torch\nfrom torch.nn.utils.rnn import pad_sequence\n"
                        "def pad_captions(captions, pad_id=0):\n"
                        "    padded = pad_sequence(captions, batch_first=True, padding_value=pad_id)\n"
                        "    return padded, torch.tensor([len(c) for c in captions])"),
    "10_peak_on_object": ("10_evaluation_and_demo.ipynb",
                          "import torch\nfrom course_utils.captioning.metrics import _overlaps, region_boxes\n"
                          "def peak_on_object(alpha, box, grid, image_size):\n"
                          "    cell = region_boxes(grid, image_size)[int(torch.as_tensor(alpha).argmax())]\n"
                          "    return _overlaps(cell, box)"),
}


def test_the_masters_forbidden_lines_stop_shortcuts_that_pass_every_test(tmp_path):
    """Each shortcut passes every part of its exercise (visible checks and hidden tests) when nothing is watched,
    and none with the names of the master's `# forbidden:` line watched."""
    from course_utils.grading.execute import Session
    from course_utils.grading.guard import PREPARE_CODE, forbidden_calls
    from course_utils.grading.markers import parse_master

    exercises = {}
    for notebook in {nb for nb, _ in MASTER_SHORTCUTS.values()}:
        exercises.update({ex.label: ex for ex in parse_master(read_notebook(ROOT / "notebooks" / notebook),
                                                              notebook).exercises})
    problems, runs = [], 0
    with Session(tmp_path, cell_timeout=120) as session:
        for label, (_, shortcut) in MASTER_SHORTCUTS.items():
            assert session.run(shortcut).status == "ok", label
        session.run(PREPARE_CODE, record=False)
        for label in MASTER_SHORTCUTS:
            ex = exercises[label]
            assert ex.forbidden, f"{label}: the master's grade cell has no `# forbidden:` line"
            for part in ex.parts:
                for forbidden in ([], ex.forbidden):
                    runs += 1
                    token = f"tok3n{runs}"  # a part that fails leaves the previous part's token in place
                    passed, r = run_part(session, part.code, forbidden, ex.names, part.name, token)
                    if not forbidden and not passed:
                        problems.append(f"{label} / {part.name}: the shortcut fails even unwatched: {r.error}")
                    elif forbidden and (passed or not forbidden_calls(r.evalue)):
                        problems.append(f"{label} / {part.name}: the shortcut was not stopped: {r.error}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- classmates' kernels
SIBLING = r'''
import glob, json, os, time
from ipykernel import get_connection_file
from jupyter_client import BlockingKernelClient
PAYLOAD = "double = lambda x: 0\ntotal = lambda xs: -1.0\nsecret = lambda: 0"


def connection_files():
    """Every kernel connection file in reach: /tmp, the runtime folders, the batch folder, other kernels' -f."""
    batch = os.path.dirname(os.path.dirname(os.getcwd()))
    found = set()
    for pattern in ("/tmp/*.json", "/tmp/*/*.json", "/tmp/*/*/*.json", "/tmp/*/*/*/*.json", batch + "/*/*/*.json",
                    os.path.expanduser("~/.local/share/jupyter/runtime/*.json"),
                    "/root/.local/share/jupyter/runtime/*.json"):
        found.update(glob.glob(pattern))
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        found.update(argv[i + 1].decode() for i, a in enumerate(argv[:-1]) if a == b"-f")
    try:
        mine = os.path.realpath(get_connection_file())
    except OSError:  # the grader deleted it once the kernel had started
        mine = ""
    keep = []
    for path in found:
        try:
            info = json.load(open(path))
        except (OSError, ValueError):
            continue
        # classmates' kernels only: never touch a kernel outside this batch (other runs on the same machine)
        inside = os.path.realpath(path).startswith(os.path.realpath(batch) + "/")
        if isinstance(info, dict) and info.get("key") and os.path.realpath(path) != mine and inside:
            keep.append(path)
    return keep


def inject(path):
    kc = BlockingKernelClient(connection_file=path)
    kc.load_connection_file()
    kc.start_channels()
    try:
        msg_id = kc.execute(PAYLOAD)
        while True:
            reply = kc.get_shell_msg(timeout=3)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"]["status"] == "ok"
    except Exception:
        return False
    finally:
        kc.stop_channels()


FOUND, INJECTED = set(), []
_until = time.time() + SECONDS
while True:
    for _path in connection_files():
        if _path not in FOUND:
            FOUND.add(_path)
            INJECTED += [_path] if inject(_path) else []
    if time.time() > _until:
        break
    time.sleep(0.2)
print(json.dumps({"found": sorted(FOUND), "injected": INJECTED}))
'''
NEED_SANDBOX["inject_classmates"] = SIBLING.replace("SECONDS", "6")  # polls while classmates' kernels start


@pytest.mark.parametrize("mode", ["sandbox", "plain"])
def test_a_kernel_cannot_drive_a_classmates_kernel(mode, tmp_path, monkeypatch):
    """Two confined kernels of one batch: the attacker's finds no connection file and changes nothing in the
    victim. Without the sandbox the same attack does work once a connection file is left readable: the
    grader deletes each kernel's file as soon as the kernel has read it."""
    from course_utils.grading.execute import kernel_env
    from course_utils.grading.kernel import Kernel

    if mode == "plain":
        monkeypatch.setenv("COURSE_GRADER_NO_SANDBOX", "1")
    else:  # the hostile fixture's plain batch may still hold it
        monkeypatch.delenv("COURSE_GRADER_NO_SANDBOX", raising=False)
    sandbox.forget_probes()
    if mode == "sandbox" and sandbox.bwrap_problem():
        pytest.skip(f"no sandbox here: {sandbox.bwrap_problem()}")
    batch = tmp_path / "batch"
    batch.mkdir(mode=0o711)
    hide = sandbox.grader_secrets(batch)
    kernels = []
    try:
        for slot in (0, 1):
            scratch = batch / f"grade-{slot}"
            (scratch / "work").mkdir(parents=True)
            confine = sandbox.Confinement(scratch, hide=hide, slot=slot)
            kernels.append(Kernel(scratch / "work", env={**kernel_env(), **confine.env()}, confine=confine))
            kernels[-1].start()
        victim, attacker = kernels
        assert victim.run("double = lambda x: 2 * x", timeout=30).status == "ok"
        r = attacker.run(SIBLING.replace("SECONDS", "0"), timeout=60)
        assert r.status == "ok", r.error
        seen = json.loads(r.output.strip().splitlines()[-1])
        assert seen == {"found": [], "injected": []}, seen
        assert victim.run("print(double(2))", timeout=30).output == "4\n"
        if mode == "plain":  # the attack is real: a readable connection file is enough
            victim.km.write_connection_file()
            r = attacker.run(SIBLING.replace("SECONDS", "0"), timeout=60)
            assert json.loads(r.output.strip().splitlines()[-1])["injected"], r.output
            assert victim.run("print(double(2))", timeout=30).output == "0\n"
    finally:
        for k in kernels:
            k.shutdown()
        sandbox.forget_probes()


# --------------------------------------------------------------------------- output
HUGE_OUTPUT = r'''
import json, resource, sys, tempfile
from course_utils.grading import iopub
from course_utils.grading.kernel import Kernel
iopub.MAX_MESSAGE = 16 << 20
with Kernel(tempfile.mkdtemp()) as k:
    runs = []
    for size in (4 << 20, 100 << 20):  # under the cap: head and tail kept; over it: dropped before decoding
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        r = k.run(f"import sys\n_ = sys.stdout.write('<' + 'x' * {size} + '>')", timeout=120)
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) >> 10
        runs.append({"status": r.status, "output": r.output[:20] + "|" + r.output[-100:], "chars": len(r.output),
                     "grown_mb": grown, "gap": "characters dropped ...]" in r.output})
    after = k.run("print('next cell')", timeout=30)
    runs.append({"status": after.status, "output": after.output})
print(json.dumps(runs))
'''


def test_a_huge_output_costs_the_grader_little_memory_and_keeps_head_and_tail():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", HUGE_OUTPUT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    small, huge, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert small["status"] == "ok" and small["output"].startswith("<xxx") and small["output"].endswith("xxx>")
    assert small["gap"] and small["chars"] < 30_000, small
    assert huge["status"] == "ok" and "output larger than the grader accepts was dropped" in huge["output"], huge
    assert huge["grown_mb"] < 40, huge  # a 100 MB message read the usual way costs about 300 MB
    assert after == {"status": "ok", "output": "next cell\n"}  # IOPub works again for the next cell
