"""Teacher and grader tooling: markers, release, the kernel runner and the autograder.

Small master notebooks written here make every test meaningful on its own; the tests at
the end also release and grade every notebook of the kit (whatever exists in notebooks/).
"""

import copy
import csv
import hashlib
import json
import threading
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_utils.__main__ import main
from course_utils.grading import grade as grading
from course_utils.grading.execute import Session, execute_notebook, read_notebook
from course_utils.grading.feedback import explain_error
from course_utils.grading.files import extract_zip, parallel_map
from course_utils.grading.kernel import STOP
from course_utils.grading.key import load_key
from course_utils.grading.markers import (
    STUB,
    MarkerError,
    defined_names,
    leaks,
    parse_master,
    split_tests,
    strip_solution,
    student_notebook,
)
from course_utils.grading.release import check_student_versions, release

ROOT = Path(__file__).resolve().parent.parent
KIT_NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SECRET = 1234  # what only the hidden test knows


# --------------------------------------------------------------------------- a small master
def solution_meta(gid):
    return {"nbgrader": {"grade": False, "grade_id": gid, "locked": False, "schema_version": 3,
                         "solution": True, "task": False}}


def grade_meta(gid, points):
    return {"nbgrader": {"grade": True, "grade_id": gid, "locked": True, "points": points, "schema_version": 3,
                         "solution": False, "task": False}}


def demo_master():
    """Three auto-graded exercises (3 + 2 + 2 points) and one answer graded by hand."""
    double_out = new_output("stream", name="stdout", text="solution output: 2 * x rocks\n")
    cells = [
        new_markdown_cell("# 01 · Demo\n\nLearning goals: doubling."),
        new_code_cell("import numpy as np\nX = np.arange(4.0)\nprint('ready')"),
        new_code_cell('def double(x):\n    """Twice x."""\n    ### BEGIN SOLUTION\n    doubled_value = 2 * x\n'
                      '    return doubled_value\n    ### END SOLUTION', metadata=solution_meta("01_double"),
                      outputs=[double_out], execution_count=3),
        new_code_cell("from course_utils.checks import check_close\n"
                      'check_close(double(X), [0, 2, 4, 6], name="double")\n'
                      "### BEGIN HIDDEN TESTS\n"
                      "# test: negative numbers\n"
                      "from course_utils.checks import check_close\n"
                      'check_close(double(-3.0), -6.0, name="double(-3)")\n'
                      "# test: arrays of any shape\n"
                      "import numpy as np\n"
                      "from course_utils.checks import check_close\n"
                      'check_close(double(np.ones((2, 3))), 2 * np.ones((2, 3)), name="double on (2, 3)")\n'
                      "### END HIDDEN TESTS", metadata=grade_meta("01_double_tests", 3)),
        new_code_cell("print(np.sum(X))  # does not use the exercise"),
        new_code_cell("def total(xs):\n    ### BEGIN SOLUTION\n    return float(sum(xs))\n    ### END SOLUTION",
                      metadata=solution_meta("01_total")),
        new_code_cell("from course_utils.checks import check_equal\n"
                      'check_equal(total([1, 2]), 3.0, name="total")\n'
                      "### BEGIN HIDDEN TESTS\n"
                      "# test: empty list\n"
                      "from course_utils.checks import check_equal\n"
                      'check_equal(total([]), 0.0, name="total([])")\n'
                      "### END HIDDEN TESTS", metadata=grade_meta("01_total_tests", 2)),
        new_code_cell("def secret():\n    ### BEGIN SOLUTION\n    return 1234\n    ### END SOLUTION",
                      metadata=solution_meta("01_secret")),
        new_code_cell("from course_utils.checks import check_true\n"
                      'check_true(isinstance(secret(), int), "secret() must return an int")\n'
                      "### BEGIN HIDDEN TESTS\n"
                      "# test: the secret number\n"
                      f'assert secret() == {SECRET}, "wrong secret"\n'
                      "### END HIDDEN TESTS", metadata=grade_meta("01_secret_tests", 2)),
        new_markdown_cell("Explain in one sentence what `double` does."),
        new_markdown_cell("It multiplies its input by two, elementwise.", metadata={"nbgrader": {
            "grade": True, "grade_id": "01_explain", "locked": False, "points": 1, "schema_version": 3,
            "solution": True, "task": False}}),
        new_markdown_cell("## Recap\n\nDoubling is easy."),
    ]
    return new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def write_nb(nb, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def cell_index(nb, grade_id):
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- markers
def test_split_tests_scores_visible_checks_and_each_hidden_group():
    parts = split_tests(demo_master().cells[3].source)
    assert [(p.name, p.hidden) for p in parts] == [
        ("checks shown in the notebook", False), ("negative numbers", True), ("arrays of any shape", True)]
    assert "### " not in "".join(p.code for p in parts)
    assert parts[1].code.startswith("# test: negative numbers") and "np.ones" not in parts[1].code


def test_hidden_preamble_is_shared_and_groupless_hidden_block_is_one_part():
    src = "x = 1\n### BEGIN HIDDEN TESTS\nimport math\n# test: a\nassert math.pi\n# test: b\nassert x\n" \
          "### END HIDDEN TESTS"
    parts = split_tests(src)
    assert [p.name for p in parts] == ["checks shown in the notebook", "a", "b"]
    assert all(p.code.startswith("import math") for p in parts[1:])
    one = split_tests("### BEGIN HIDDEN TESTS\nassert f(1) == 2\n### END HIDDEN TESTS")
    assert [(p.name, p.code) for p in one] == [("hidden tests", "assert f(1) == 2")]


def test_strip_solution_keeps_the_marker_indentation():
    src = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\nz = 2"
    assert strip_solution(src) == f"def f(x):\n    y = 1\n    {STUB[0]}\n    {STUB[1]}\nz = 2"


def test_defined_names_reads_functions_classes_and_variables():
    assert defined_names("%matplotlib inline\nimport os\ndef f():\n    pass\nclass K:\n    pass\nA, B = 1, 2\n"
                         "C = 3") == ["f", "K", "C"]


def test_student_notebook_strips_solutions_hidden_tests_and_outputs():
    master = demo_master()
    master.cells[9].metadata["note"] = "kept"
    student = student_notebook(master)
    nbformat.validate(student)
    double = student.cells[2]
    assert double.source == f'def double(x):\n    """Twice x."""\n    {STUB[0]}\n    {STUB[1]}'
    assert double.outputs == [] and double.execution_count is None
    assert double.metadata["nbgrader"]["grade_id"] == "01_double"
    assert student.cells[3].source == ('from course_utils.checks import check_close\n'
                                       'check_close(double(X), [0, 2, 4, 6], name="double")')
    assert student.cells[10].source == "YOUR ANSWER HERE"
    assert student.cells[9].metadata["note"] == "kept"
    assert leaks(master, student) == []
    text = nbformat.writes(student)
    for secret in ("doubled_value", "rocks", "negative numbers", f"== {SECRET}", "elementwise"):
        assert secret not in text


def test_leaks_finds_a_solution_copied_into_metadata():
    master = demo_master()
    master.cells[4].metadata["hint"] = "    doubled_value = 2 * x"
    assert "doubled_value = 2 * x" in leaks(master, student_notebook(master))


BROKEN = {
    "unclosed": ("def f():\n    ### BEGIN SOLUTION\n    return 1", "is never closed"),
    "end first": ("def f():\n    ### END SOLUTION\n    return 1", "without a matching ### BEGIN SOLUTION"),
    "nested": ("### BEGIN SOLUTION\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n### END SOLUTION",
               "cannot be nested"),
    "mismatched": ("### BEGIN SOLUTION\nx = 1\n### END HIDDEN TESTS", "without a matching ### BEGIN HIDDEN TESTS"),
    "misspelt": ("def f():\n    # Begin Solution\n    return 1\n    # end solution", "looks like a marker"),
    "not alone": ("x = 1  ### BEGIN SOLUTION\n### END SOLUTION", "alone on its line"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_parse_master_refuses_bad_markers_naming_notebook_and_cell(case):
    source, expected = BROKEN[case]
    nb = demo_master()
    nb.cells.insert(2, new_code_cell(source, metadata=solution_meta("01_broken")))
    with pytest.raises(MarkerError) as err:
        parse_master(nb, "01_demo.ipynb")
    assert any(p.startswith("01_demo.ipynb, cell 3 (code") and expected in p for p in err.value.problems), \
        err.value.problems


def test_parse_master_refuses_markers_outside_code_cells():
    nb = demo_master()
    nb.cells.insert(1, new_markdown_cell("Put your code between\n### BEGIN SOLUTION\nand the end marker"))
    with pytest.raises(MarkerError, match=r"cell 2 \(markdown.*outside a code cell"):
        parse_master(nb, "01_demo.ipynb")


def test_parse_master_refuses_duplicate_ids_hidden_tests_without_points_and_bad_points():
    nb = demo_master()
    nb.cells[5].metadata = solution_meta("01_double")  # same id as cell 3
    nb.cells.append(new_code_cell("### BEGIN HIDDEN TESTS\nassert True\n### END HIDDEN TESTS"))
    nb.cells[6].metadata["nbgrader"]["points"] = "two"
    with pytest.raises(MarkerError) as err:
        parse_master(nb, "01_demo.ipynb")
    text = "\n".join(err.value.problems)
    assert "cell 6 (code" in text and "duplicate exercise id '01_double' (also cell 3)" in text
    assert f"cell {len(nb.cells)} (code" in text and "not a grade cell" in text
    assert "cell 7 (code" in text and "needs 'points'" in text


def test_parse_master_returns_exercises_with_points_names_and_first_exercise():
    master = parse_master(demo_master(), "01_demo.ipynb")
    assert [(e.label, e.points, e.kind) for e in master.exercises] == [
        ("01_double", 3, "auto"), ("01_total", 2, "auto"), ("01_secret", 2, "auto"), ("01_explain", 1, "manual")]
    assert master.exercises[0].names == ["double"] and master.exercises[0].solution_id == "01_double"
    assert master.first_exercise == 2


# --------------------------------------------------------------------------- release
@pytest.fixture(scope="module")
def released(tmp_path_factory):
    base = tmp_path_factory.mktemp("release")
    write_nb(demo_master(), base / "masters" / "01_demo.ipynb")
    rel = release(base / "masters", base / "out")
    return base, rel


def test_release_writes_student_versions_and_a_key(released):
    base, rel = released
    student = read_notebook(rel.student_dir / "01_demo.ipynb")
    assert student.cells[2].source.endswith(STUB[1])
    key = load_key(rel.grader_dir)
    assert [e.label for e in key["01_demo.ipynb"]] == ["01_double", "01_total", "01_secret", "01_explain"]
    assert any(f"== {SECRET}" in p.code for p in key["01_demo.ipynb"][2].parts)
    rows = list(csv.DictReader((rel.grader_dir / "exercises.csv").open()))
    assert [(r["exercise"], r["points"]) for r in rows][:2] == [("01_double", "3"), ("01_total", "2")]
    assert not list((base / "out" / "student").glob("*.json")), "nothing of the key among student files"


def test_release_refuses_a_broken_master_and_writes_nothing(tmp_path, capsys):
    bad = demo_master()
    bad.cells[5].source = bad.cells[5].source.replace("### END SOLUTION", "")
    write_nb(demo_master(), tmp_path / "masters" / "01_demo.ipynb")
    write_nb(bad, tmp_path / "masters" / "02_bad.ipynb")
    assert main(["release", str(tmp_path / "masters"), str(tmp_path / "out"), "--no-check"]) == 1
    err = capsys.readouterr().err
    assert "nothing written" in err and "02_bad.ipynb, cell 6 (code" in err and "never closed" in err
    assert not (tmp_path / "out" / "student").exists()


def test_release_command_checks_the_student_versions(tmp_path, capsys):
    write_nb(demo_master(), tmp_path / "masters" / "01_demo.ipynb")
    assert main(["release", str(tmp_path / "masters"), str(tmp_path / "out"), "--workers", "1",
                 "--grade-masters", "--cell-timeout", "30"]) == 0
    out = capsys.readouterr().out
    assert "released 1 notebook(s), 4 exercise(s), 8 points" in out
    assert "ok   01_demo.ipynb: 1 cell(s) before the first exercise run" in out
    assert "ok   master 01_demo.ipynb: full marks; 7 of 7 tests decided outside the kernel" in out
    assert all(p.outside for e in load_key(tmp_path / "out" / "grader")["01_demo.ipynb"] for p in e.parts)


def test_release_check_runs_the_student_version_up_to_its_first_exercise(released):
    _, rel = released
    [result] = check_student_versions(rel, workers=1, cell_timeout=30)
    assert result.ok, result.describe()
    assert [c.index for c in result.cells] == [1]


def test_release_check_reports_a_failing_cell_before_the_first_exercise(tmp_path):
    nb = demo_master()
    nb.cells[1].source = "import numpy as np\nX = np.arange(4.0) / undefined_name"
    write_nb(nb, tmp_path / "m" / "01_demo.ipynb")
    [result] = check_student_versions(release(tmp_path / "m", tmp_path / "out"), workers=1, cell_timeout=30)
    assert not result.ok
    assert "cell 2: error: NameError: name 'undefined_name' is not defined" in result.describe()


def test_load_key_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="no grader key here"):
        load_key(tmp_path)
    (tmp_path / "key.json").write_text(json.dumps({"notebooks": {}}))
    with pytest.raises(ValueError, match="key.json: not a grader key"):
        load_key(tmp_path)


# --------------------------------------------------------------------------- the kernel runner
def test_session_survives_errors_timeouts_and_a_crash(tmp_path):
    with Session(tmp_path, cell_timeout=3, total_timeout=60) as s:
        assert s.run_cell(0, "a = 41").status == "ok"
        err = s.run_cell(1, "1 / 0")
        assert (err.status, err.message) == ("error", "ZeroDivisionError: division by zero")
        assert s.run_cell(2, "while True:\n    pass").status == "timeout"
        assert s.run_cell(3, "import os\nos._exit(3)").status == "dead"
        assert s.restarts == 1
        r = s.run("print(a + 1)")  # the fresh kernel replayed `a = 41`, not the crash
        assert (r.status, r.output) == ("ok", "42\n")


def test_stop_makes_a_running_cell_return_and_the_session_give_up(tmp_path):
    """What Ctrl-C in the grader does (parallel_map sets STOP), without waiting for time limits."""
    timer = threading.Timer(1.0, STOP.set)
    try:
        with Session(tmp_path, cell_timeout=120, total_timeout=600) as s:
            timer.start()
            r = s.run_cell(0, "while True:\n    pass")
            assert (r.status, r.message) == ("skipped", "grading was interrupted")
            assert s.run_cell(1, "x = 1").status == "skipped"
    finally:
        timer.cancel()
        STOP.clear()


def test_parallel_map_yields_errors_in_place_of_results():
    def job(n):
        if n == 2:
            raise ValueError("bad job")
        return n * 10

    got = dict(parallel_map(job, [1, 2, 3], workers=2))
    assert got[1] == 10 and got[3] == 30 and isinstance(got[2], ValueError)


def test_execute_notebook_stops_at_the_first_error_unless_told_not_to(tmp_path):
    nb = new_notebook(cells=[new_code_cell("x = 1"), new_code_cell("raise ValueError('bad')"),
                             new_markdown_cell("text"), new_code_cell("y = x + 1")])
    path = write_nb(nb, tmp_path / "n.ipynb")
    stopped = execute_notebook(path, cell_timeout=30)
    assert [c.status for c in stopped.cells] == ["ok", "error"]
    assert "--- cell 2: error: ValueError: bad\nraise ValueError('bad')" in stopped.describe()
    going = execute_notebook(path, cell_timeout=30, stop_on_error=False)
    assert [(c.index, c.status) for c in going.cells] == [(0, "ok"), (1, "error"), (3, "ok")]


# --------------------------------------------------------------------------- finding submissions
def test_match_notebooks_undoes_renames_and_reads_exercise_ids(released, tmp_path):
    _, rel = released
    key = load_key(rel.grader_dir)
    key["02_other.ipynb"] = []
    renamed = write_nb(demo_master(), tmp_path / "Copy of 01_Demo (1).ipynb")
    assert grading.match_notebooks([renamed], key) == {"01_demo.ipynb": renamed}
    anonymous = write_nb(demo_master(), tmp_path / "homework.ipynb")
    assert grading.match_notebooks([anonymous], key) == {"01_demo.ipynb": anonymous}
    junk = tmp_path / "01_mine.ipynb"
    junk.write_text("{not json")
    assert grading.match_notebooks([junk], key) == {"01_demo.ipynb": junk}


def test_find_jobs_flat_layout_and_unsubmitted_notebooks(released, tmp_path):
    _, rel = released
    key = load_key(rel.grader_dir)
    key["02_other.ipynb"] = key["01_demo.ipynb"]
    settings = grading.Settings(env={})
    write_nb(demo_master(), tmp_path / "flat" / "alice.ipynb")
    with pytest.raises(ValueError, match="pass one --notebook"):
        grading.find_jobs(tmp_path / "flat", key, settings)
    jobs, skipped = grading.find_jobs(tmp_path / "flat", key, settings, notebooks=["01_demo.ipynb"])
    assert [(j.student, j.notebook, j.own_folder) for j in jobs] == [("alice", "01_demo.ipynb", False)]
    write_nb(demo_master(), tmp_path / "dirs" / "bob" / "01_demo.ipynb")
    (tmp_path / "dirs" / "carol").mkdir()
    jobs, skipped = grading.find_jobs(tmp_path / "dirs", key, settings)
    assert skipped == ["02_other.ipynb"]
    assert [(j.student, j.path is None, j.own_folder) for j in jobs] == [("bob", False, True), ("carol", True, False)]
    assert jobs[1].missing == "no notebook 01_demo.ipynb in carol/ (no notebook at all in the folder)"


def test_extract_zip_refuses_paths_leaving_the_folder(tmp_path):
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
        z.writestr("../outside.txt", "x")
    with pytest.raises(ValueError, match="outside"):
        extract_zip(tmp_path / "evil.zip", tmp_path / "dest")
    assert not (tmp_path / "outside.txt").exists()


def test_errors_are_explained_in_student_words():
    assert explain_error("NameError", "name 'double' is not defined", ["double"]).startswith(
        "`double` is not defined: the cell that defines it was deleted")
    assert explain_error("NameError", "name 'X' is not defined", ["double"]).startswith(
        "`X` is not defined: the test uses it from your notebook")
    assert explain_error("CheckError", "double: value at (1,) is 1, expected 2", []) == \
        "wrong answer: double: value at (1,) is 1, expected 2"
    assert explain_error("NotImplementedError", "", []).startswith("not done yet")


# --------------------------------------------------------------------------- deciding outside the kernel
def test_recorded_values_round_trip_without_pickle():
    import collections

    import numpy as np
    import torch

    from course_utils.grading.codec import Encoder, decode, digest

    Pair = collections.namedtuple("Pair", "values indices")
    value = {"a": [np.arange(6, dtype=np.uint8).reshape(2, 3), np.float32(1.5), (1, 2.5, "x", None, True)],
             3: {frozenset({1, 2}), b"\x00\xff"}, "t": (torch.arange(4.0), torch.tensor([1.0], dtype=torch.bfloat16)),
             "n": Pair(torch.tensor([3.0]), torch.tensor([0])), "inf": [float("inf"), -0.0, 2**70],
             "size": torch.Size([2, 3]), "dtype": torch.float64}
    enc = Encoder()
    back = decode(enc.encode(value), lambda i: enc.arrays[i])
    assert digest(back) != "" and back["n"].indices.tolist() == [0] and back["t"][1].dtype == torch.bfloat16
    assert digest([back[k] for k in ("a", "t", "inf", "size", "dtype")]) == \
        digest([value[k] for k in ("a", "t", "inf", "size", "dtype")])
    assert all(a.dtype != object for a in enc.arrays)


def test_inputs_written_in_the_test_cannot_be_compared():
    import pytest as _pytest
    import torch

    from course_utils.grading.codec import Encoder, Unhashable, Unserialisable, digest

    namespace = {"__name__": "__main__"}
    exec("class Spy:\n    pass\nspy = Spy()\nf = lambda x: x\n", namespace)
    for value in (namespace["spy"], namespace["f"], [1, namespace["f"]]):
        with _pytest.raises(Unhashable):
            digest(value)
    net = torch.nn.Linear(2, 2)
    assert digest(net) == digest(net)
    before = digest(net)
    net.eval()
    assert digest(net) != before  # a mode switch is a change the replay must apply
    net.register_forward_hook(namespace["f"])
    with _pytest.raises(Unhashable):
        digest(net)
    with _pytest.raises(Unserialisable):
        Encoder().encode(net)


STUDENT_CODE = """import numpy as np, torch
def conv2d(i, k):
    n, m = k.shape
    return np.array([[np.sum(i[r:r + n, c:c + m] * k) for c in range(i.shape[1] - m + 1)]
                     for r in range(i.shape[0] - n + 1)])
def fill(a, g):
    a[:] = torch.rand(len(a), generator=g).numpy()  # changes its argument and draws from the generator
def noisy(x):
    return x + torch.randn(x.shape)  # draws from the global generator: the test's next numbers change
def to_eval(model):
    model.eval()
    return sum(p.numel() for p in model.parameters())
def soft(z):
    return torch.softmax(z, -1)
def norm(x, bn):
    return bn(x)  # in training mode: updates the running statistics the test then uses too
class Box:
    def __init__(self, n):
        self.n = n
"""
NAMES = ["conv2d", "fill", "noisy", "to_eval", "soft", "norm", "Box"]
OUTSIDE_CASES = {  # test -> (the replay's verdict on the honest code, on the code with numpy's comparison patched)
    "conv2d": ("import numpy as np\nfrom course_utils.checks import check_function\n"
               "from course_utils.basics.filters import conv2d as reference\nrng = np.random.default_rng(0)\n"
               "check_function(conv2d, reference,\n"
               "               [(rng.normal(size=(n, n)), rng.normal(size=(3, 3))) for n in (4, 7)])",
               "passed", "failed"),
    "changes": ("import numpy as np, torch\nfrom course_utils.checks import check_close\n"
                "g = torch.Generator().manual_seed(1)\na = np.zeros(3)\nfill(a, g)\n"
                "check_close(a, torch.rand(3, generator=torch.Generator().manual_seed(1)))\n"
                "check_close(torch.rand(2, generator=g),\n"
                "            torch.rand(5, generator=torch.Generator().manual_seed(1))[3:])",
                "passed", "failed"),
    "random state": ("import torch\nfrom course_utils.checks import check_close\ny = noisy(torch.zeros(3))\n"
                     "z = torch.randn(3)\ncheck_close(y.shape, [3])\ncheck_close(z, z + 1 - 1)", "passed", "passed"),
    "model mode": ("import torch\nfrom course_utils.checks import check_equal\ntorch.manual_seed(0)\n"
                   "net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Dropout())\n"
                   "check_equal(to_eval(net), 9)\ncheck_equal(net.training, False)", "passed", "passed"),
    "model buffers": ("import torch\nfrom course_utils.checks import check_close\ntorch.manual_seed(0)\n"
                      "bn = torch.nn.BatchNorm1d(3)\nfor n in (4, 5):\n    x = torch.randn(n, 3)\n"
                      "    check_close(norm(x, bn), bn(x), atol=1e-5)", "passed", "passed"),
    "a class of the test": ("import torch\nfrom course_utils.checks import check_equal\n"
                            "class Net(torch.nn.Linear):\n    pass\ncheck_equal(to_eval(Net(2, 3)), 9)",
                            "undecided", "undecided"),
    "a class of the solution": ("from course_utils.checks import check_equal\ncheck_equal(Box(2).n, 2)",
                                "undecided", "undecided"),
    "gradient": ("import torch\nfrom course_utils.checks import check_close\n"
                 "x = torch.randn(4, dtype=torch.float64, requires_grad=True)\n"
                 "(g,) = torch.autograd.grad(soft(x).sum(), x)\ncheck_close(g, torch.zeros(4), atol=1e-9)",
                 "undecided", "undecided"),
}
PATCH = "np.isclose = lambda a, b, **k: np.ones(np.broadcast(np.asarray(a), np.asarray(b)).shape, bool)\n" \
        "np.array_equal = lambda *a, **k: True\n"


def test_parts_are_decided_again_outside_the_kernel(tmp_path):
    """Each part passes in the kernel; the grader's replay on the recorded results agrees with the honest
    notebook, and then finds the wrong answers that a patched numpy hid from the kernel's checks."""
    from course_utils.grading.guard import PREPARE_CODE, TOKEN_NAME, part_code, test_file, test_source
    from course_utils.grading.replay import free_names, run_part

    wrong = "\ndef conv2d(i, k):\n    return np.zeros((i.shape[0] - 2, i.shape[1] - 2))\n" \
            "def fill(a, g):\n    a[:] = 0.5\n"
    got: dict[str, list[str]] = {name: [] for name in OUTSIDE_CASES}
    with Session(tmp_path, cell_timeout=60) as session:
        for patched in (False, True):
            assert session.run(STUDENT_CODE + (PATCH + wrong if patched else "")).status == "ok"
            session.run(PREPARE_CODE, record=False)
            for name, (code, *_) in OUTSIDE_CASES.items():
                record, source = str(tmp_path / f"{name}{patched}.npz"), test_source(code)
                free = [n for n in free_names(source) if not n.startswith("check_")]
                r = session.run(part_code(code, name, str(ROOT), "tok", [], NAMES, record, free), record=False,
                                expressions={"t": TOKEN_NAME})
                assert r.status == "ok" and "tok" in r.expressions["t"], (name, patched, r.error)
                got[name].append(run_part({"code": source, "name": test_file(name), "names": NAMES, "free": free,
                                           "record": record})["status"])
    assert got == {name: list(case[1:]) for name, case in OUTSIDE_CASES.items()}


# --------------------------------------------------------------------------- grading crafted submissions
CHEAT = r'''
import os, re, sys
def _search():
    """Look for the key: in this folder and the one above, the environment, argv, the parent's command."""
    texts = list(os.environ.values()) + list(sys.argv)
    for root in (os.getcwd(), os.path.dirname(os.getcwd())):
        for folder, _, files in os.walk(root):
            for name in files:
                if os.path.getsize(os.path.join(folder, name)) > 10**6:
                    continue
                try:
                    texts.append(open(os.path.join(folder, name), errors="ignore").read())
                except OSError:
                    pass
    try:
        texts.append(open(f"/proc/{os.getppid()}/cmdline").read().replace("\0", " "))
    except OSError:
        pass
    paths = {p for t in texts for p in re.findall(r"/[\w./-]+", t)}
    for p in paths:
        for f in (p, os.path.join(p, "key.json"), os.path.join(p, "grader", "key.json")):
            if os.path.isfile(f) and os.path.getsize(f) < 10**6:
                try:
                    texts.append(open(f, errors="ignore").read())
                except OSError:
                    pass
    for t in texts:
        m = re.search(r"secret\(\) == (\d+)", t)
        if m:
            return int(m.group(1))
    return 0
FOUND = _search()
def secret():
    return FOUND
for target in ["grades.csv", "../grades.csv", "{out}", "{feedback}/cheater.md"]:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        open(target, "w").write("HACKED")
    except OSError:
        pass
open("01_demo.ipynb", "w").write("HACKED")
import course_utils.checks as _checks
_checks.check_equal = lambda *a, **k: None  # a check that never fails...
check_equal = lambda *a, **k: None           # ...in the module and in the notebook
def total(xs):
    return 0
'''


def solved(student, sources):
    nb = copy.deepcopy(student)
    for gid, src in sources.items():
        nb.cells[cell_index(nb, gid)].source = src
    return nb


RIGHT = {"01_double": "def double(x):\n    return 2 * x", "01_total": "def total(xs):\n    return float(sum(xs))",
         "01_secret": f"def secret():\n    return {SECRET}"}


@pytest.fixture(scope="module")
def graded(released):
    """One grade call over crafted submissions, two at a time, short time limits."""
    base, rel = released
    master = demo_master()
    student = read_notebook(rel.student_dir / "01_demo.ipynb")
    subs, out, feedback = base / "subs", base / "results" / "grades.csv", base / "results" / "feedback"
    write_nb(master, subs / "master" / "01_demo.ipynb")
    write_nb(student, subs / "student" / "01_demo.ipynb")
    partial = dict(RIGHT, **{"01_double": "def double(x):\n    return x + x if np.ndim(x) == 0 else x"})
    write_nb(solved(student, partial), subs / "partial" / "01_demo.ipynb")
    # cells moved, duplicated (a wrong copy first) and deleted (every grade cell), file renamed by Colab
    nb = solved(student, dict(RIGHT, **{"01_double": "def double(x):\n    return 3 * x"}))
    right = copy.deepcopy(nb.cells[2])
    right.source, right.id = RIGHT["01_double"], "duplicated-double"
    nb.cells = [nb.cells[i] for i in (0, 7, 5, 1, 2, 4, 11)] + [right]
    write_nb(nb, subs / "reordered" / "Copy of 01_demo (1).ipynb")
    nb = solved(student, RIGHT)
    nb.cells[4:4] = [new_code_cell("while True:\n    pass"),
                     new_code_cell("import time\nwhile True:\n    try:\n        time.sleep(0.05)\n"
                                   "    except KeyboardInterrupt:\n        pass")]
    write_nb(nb, subs / "loops" / "01_demo.ipynb")
    nb = solved(student, RIGHT)
    nb.cells.insert(4, new_code_cell("import os\nos._exit(1)"))
    write_nb(nb, subs / "crash" / "01_demo.ipynb")
    nb = solved(student, {"01_double": RIGHT["01_double"]})
    nb.cells.insert(cell_index(nb, "01_secret") + 1, new_code_cell(
        CHEAT.replace("{out}", str(out)).replace("{feedback}", str(feedback))))
    cheater = write_nb(nb, subs / "cheater" / "01_demo.ipynb")
    (subs / "broken").mkdir()
    (subs / "broken" / "01_demo.ipynb").write_text(nbformat.writes(master)[:400])
    (subs / "absent").mkdir()
    (subs / "absent" / "notes.txt").write_text("I forgot")
    before = sha(cheater)
    report = grading.grade(subs, rel.grader_dir, out, workers=2, cell_timeout=5, total_timeout=60)
    rows = {(r["student_id"], r["exercise"]): r for r in csv.DictReader(out.open(encoding="utf-8"))}
    return report, rows, out, feedback, before == sha(cheater)


def points(rows, student):
    return {ex: r["points"] for (s, ex), r in rows.items() if s == student}


def test_grade_sheet_has_one_row_per_student_notebook_and_exercise(graded):
    report, rows, out, feedback, _ = graded
    header = out.read_text(encoding="utf-8").splitlines()[0]
    assert header == "student_id,notebook,exercise,points,max_points,status,message,outside,isolation"
    students = {"master", "student", "partial", "reordered", "loops", "crash", "cheater", "broken", "absent"}
    assert {s for s, _ in rows} == students and len(rows) == 4 * len(students)
    assert all(r["notebook"] == "01_demo.ipynb" for r in rows.values())
    assert {p.stem for p in feedback.glob("*.md")} == students
    assert report.summary_csv.exists()


def test_master_gets_full_marks_and_student_version_zero(graded):
    _, rows, *_ = graded
    assert points(rows, "master") == {"01_double": "3", "01_total": "2", "01_secret": "2", "01_explain": ""}
    assert rows["master", "01_explain"]["status"] == "manual"
    assert points(rows, "student") == {"01_double": "0", "01_total": "0", "01_secret": "0", "01_explain": ""}
    assert rows["student", "01_double"]["status"] == "failed"
    assert "not done yet" in rows["student", "01_double"]["message"]


def test_partial_credit_per_test_group(graded):
    _, rows, *_ = graded
    row = rows["partial", "01_double"]
    assert (row["points"], row["status"]) == ("1", "partial")
    assert row["message"].startswith("1 of 3 test(s) passed")
    assert "checks shown in the notebook: wrong answer: double: value at (1,) is 1, expected 2" in row["message"]
    assert 'hidden test "arrays of any shape": wrong answer' in row["message"]


def test_moved_duplicated_and_deleted_cells_do_not_break_grading(graded):
    _, rows, *_ = graded
    assert points(rows, "reordered") == {"01_double": "3", "01_total": "2", "01_secret": "2", "01_explain": ""}


def test_infinite_loops_are_stopped_and_cost_nothing_else(graded):
    report, rows, *_ = graded
    assert points(rows, "loops")["01_double"] == "3" and points(rows, "loops")["01_secret"] == "2"
    [nb] = [g for g in report.notebooks if g.student == "loops"]
    assert [c.status for c in nb.cells if c.index in (4, 5)] == ["timeout", "timeout"]
    assert any("cell 5 ran longer than 5 s" in n for n in nb.notes)


def test_kernel_crash_costs_only_the_crashing_cell(graded):
    report, rows, _, feedback, _ = graded
    assert points(rows, "crash") == {"01_double": "3", "01_total": "2", "01_secret": "2", "01_explain": ""}
    text = (feedback / "crash.md").read_text(encoding="utf-8")
    assert "cell 5 crashed the Python kernel (the kernel died (exit code 1))" in text


def test_invalid_and_missing_notebooks_get_a_clear_reason(graded):
    _, rows, *_ = graded
    broken = rows["broken", "01_double"]
    assert (broken["points"], broken["status"]) == ("0", "invalid")
    assert "01_demo.ipynb: not a notebook, the JSON is broken at line" in broken["message"]
    absent = rows["absent", "01_total"]
    assert (absent["points"], absent["status"]) == ("0", "missing")
    assert absent["message"] == "no notebook 01_demo.ipynb in absent/ (no notebook at all in the folder)"


def test_student_code_cannot_read_the_key_forge_checks_or_write_the_grade_sheet(graded):
    _, rows, out, feedback, untouched = graded
    secret = rows["cheater", "01_secret"]
    assert (secret["points"], secret["status"]) == ("1", "partial"), "the hidden test must fail: key not found"
    assert 'hidden test "the secret number": wrong answer: wrong secret' in secret["message"]
    total = rows["cheater", "01_total"]  # returns 0: the replaced check_equal must not hide that
    assert (total["points"], total["status"]) == ("1", "partial")
    assert "wrong answer: total: got 0, expected 3.0" in total["message"]
    assert "HACKED" not in out.read_text(encoding="utf-8")
    assert "HACKED" not in (feedback / "cheater.md").read_text(encoding="utf-8")
    assert untouched, "the submission itself must not change: notebooks run in a scratch copy"


def test_feedback_file_explains_each_test(graded):
    *_, feedback, _ = graded
    text = (feedback / "partial.md").read_text(encoding="utf-8")
    assert "**Total: 5 / 7 points**" in text
    assert "- ✓ hidden test \"negative numbers\"" in text
    assert "- ✗ hidden test \"arrays of any shape\": wrong answer: double on (2, 3)" in text


def test_summary_per_exercise(graded):
    report, *_ = graded
    summary = {r["exercise"]: r for r in csv.DictReader(report.summary_csv.open(encoding="utf-8"))}
    assert summary["01_double"]["students"] == "9"
    assert summary["01_double"]["full_marks"] == "5"  # master, reordered, loops, crash, cheater
    assert summary["01_explain"]["mean_points"] == ""  # graded by hand


def test_grade_command_reads_a_zip_of_submissions(released, tmp_path, capsys):
    _, rel = released
    with zipfile.ZipFile(tmp_path / "subs.zip", "w") as z:
        z.writestr("submissions/zoe/01_demo.ipynb", nbformat.writes(demo_master()))
    code = main(["grade", str(tmp_path / "subs.zip"), "--key", str(rel.grader_dir),
                 "--out", str(tmp_path / "g.csv"), "--workers", "1", "--cell-timeout", "20"])
    assert code == 0
    assert "01_demo.ipynb 01_double: mean 3 / 3, full marks 1/1" in capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "g.csv").open(encoding="utf-8")))
    assert [(r["student_id"], r["points"]) for r in rows][:3] == [("zoe", "3"), ("zoe", "2"), ("zoe", "2")]


# --------------------------------------------------------------------------- the kit's notebooks
@pytest.fixture(scope="module")
def kit_release(tmp_path_factory):
    if not KIT_NOTEBOOKS:
        pytest.skip("no notebooks in notebooks/ yet")
    return release(ROOT / "notebooks", tmp_path_factory.mktemp("kit") / "out")


@pytest.mark.parametrize("path", KIT_NOTEBOOKS, ids=lambda p: p.name)
def test_kit_master_releases_without_leaking(kit_release, path):
    master = read_notebook(path)
    student = read_notebook(kit_release.student_dir / path.name)
    assert leaks(master, student) == [], f"{path.name}: solution or hidden test text in the student version"
    [info] = [m for m in kit_release.masters if m.name == path.name]
    for ex in info.exercises:
        assert ex.kind == "manual" or ex.parts, f"{path.name}: {ex.id} has no tests"
        if ex.solution_id:
            [cell] = [c for c in student.cells if c.metadata.get("nbgrader", {}).get("grade_id") == ex.solution_id]
            assert STUB[1] in cell.source or cell.cell_type == "markdown"


@pytest.fixture(scope="module")
def kit_graded(kit_release, tmp_path_factory):
    """ONE grade call: every kit notebook with exercises, as master and as student version."""
    names = [m.name for m in kit_release.masters if m.exercises]
    if not names:
        pytest.skip("no kit notebook has exercises yet")
    subs = tmp_path_factory.mktemp("kit_subs")
    for name in names:
        write_nb(read_notebook(ROOT / "notebooks" / name), subs / "master" / name)
        write_nb(read_notebook(kit_release.student_dir / name), subs / "student" / name)
    report = grading.grade(subs, kit_release.grader_dir, subs.parent / "kit_grades.csv", workers=2,
                           cell_timeout=300, total_timeout=900)
    return {(g.student, g.notebook): g for g in report.notebooks}


@pytest.mark.notebook
@pytest.mark.once
def test_kit_masters_run_without_errors(kit_graded):
    """Every cell of every master ran (the same check as tests/test_notebooks.py, through the grader)."""
    bad = [f"{g.notebook}, cell {c.index + 1}: {c.status}: {c.message}" for (who, _), g in kit_graded.items()
           if who == "master" for c in g.cells if c.status != "ok"]
    assert not bad, "\n".join(bad)


@pytest.mark.notebook
@pytest.mark.once
def test_kit_masters_get_full_marks(kit_graded):
    lost = [f"{g.notebook} {e.exercise}: {e.points}/{e.max_points} {e.status}: {e.message}"
            for (who, _), g in kit_graded.items() if who == "master" for e in g.exercises
            if e.status not in ("passed", "manual")]
    assert not lost, "\n".join(lost)


@pytest.mark.notebook
@pytest.mark.once
def test_kit_student_versions_get_zero_without_crashing(kit_graded):
    wrong = [f"{g.notebook} {e.exercise}: {e.points} points, {e.status}: {e.message}"
             for (who, _), g in kit_graded.items() if who == "student" for e in g.exercises
             if e.status not in ("failed", "manual") or e.points]
    assert not wrong, "a stub must fail every test, by failing not by crashing:\n" + "\n".join(wrong)


@pytest.mark.notebook
@pytest.mark.once
def test_kit_student_versions_run_up_to_their_first_exercise(kit_release, kit_graded):
    """What `release` checks, here on the whole run of each student version by the grader."""
    first = {m.name: m.first_exercise for m in kit_release.masters}
    bad = [f"{g.notebook}, cell {c.index + 1}: {c.status}: {c.message}" for (who, _), g in kit_graded.items()
           if who == "student" for c in g.cells if c.index < first[g.notebook] and c.status != "ok"]
    assert not bad, "\n".join(bad)


@pytest.mark.notebook
@pytest.mark.once
def test_kit_student_versions_run_past_unfinished_exercises(kit_graded):
    """Cells after an exercise use the package's version, so a stuck student can run the rest."""
    notes = [f"{g.notebook}: {n}" for (who, _), g in kit_graded.items() if who == "student" for n in g.notes]
    assert not notes, "\n".join(notes)
