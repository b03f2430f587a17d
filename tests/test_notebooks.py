"""Every notebook is clean (no outputs), well named, and executes headless in fast mode."""

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

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


def _describe_failure(path: Path, nb, err: Exception) -> str:
    """Notebook name, the failing cell's number and source, and the traceback."""
    failing = None
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                failing = (i, cell)
    head = f"{path.name} failed"
    if failing:
        i, cell = failing
        head += f" in cell {i}:\n----- source -----\n{cell.source}\n------------------"
    return f"{head}\n{type(err).__name__}: {err}"


@pytest.fixture(scope="session")
def course_data(tmp_path_factory):
    """One data root for the whole run, as a student's machine has: notebooks 07-10
    reuse the dataset and caches that earlier notebooks wrote."""
    return os.environ.get("COURSE_TEST_DATA") or str(tmp_path_factory.mktemp("course_data"))


@pytest.mark.notebook
@pytest.mark.parametrize("path", [p for p in ALL_NOTEBOOKS if NAME.match(p.name)], ids=lambda p: p.name)
def test_notebook_executes(path, course_data, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("COURSE_DATA", course_data)
    # One math thread per kernel: the small fast-mode models are overhead-bound, and with
    # the default (one per core) a kernel slows down several times whenever anything else
    # runs on the machine.
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
        pytest.fail(_describe_failure(path, nb, err), pytrace=False)
