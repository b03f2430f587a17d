"""Every notebook is clean (no outputs), well named, and executes headless in fast mode."""

import os
import re
from pathlib import Path

import nbformat
import pytest

from course_utils.tools.notebook_runner import NotebookFailed, run_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
ALL_NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
NAME = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")
CELL_TIMEOUT = int(os.environ.get("COURSE_CELL_TIMEOUT", "300"))  # seconds per cell, fast mode


def test_there_are_notebooks():
    assert any(p.name.startswith("00_") for p in ALL_NOTEBOOKS)


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean(path):
    assert NAME.match(path.name), f"{path.name}: notebooks are named NN_name.ipynb (lowercase, underscores)"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name}, cell {i}: outputs are committed; clear them"
            assert cell.execution_count is None, f"{path.name}, cell {i}: execution count is committed"


def test_setup_cells_and_readme_in_sync():
    from course_utils.tools.source import sync

    assert sync(check=True) == [], "run 'python -m course_utils sync'"


@pytest.fixture(scope="session")
def course_data(tmp_path_factory):
    """One data root for the whole run, as a student's machine has: notebooks 07-10
    reuse the dataset and caches that earlier notebooks wrote."""
    return os.environ.get("COURSE_TEST_DATA") or str(tmp_path_factory.mktemp("course_data"))


@pytest.mark.notebook
@pytest.mark.parametrize("path", [p for p in ALL_NOTEBOOKS if NAME.match(p.name)], ids=lambda p: p.name)
def test_notebook_executes(path, course_data):
    # One math thread per kernel: the small fast-mode models are overhead-bound, and with
    # the default (one per core) a kernel slows down several times whenever anything else
    # runs on the machine.
    threads = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    try:
        run_notebook(path, course_data, cell_timeout=CELL_TIMEOUT, env=threads)
    except NotebookFailed as err:
        pytest.fail(str(err), pytrace=False)
