"""The runner of ``bench`` and ``tests/test_notebooks.py``: fast mode and the data root reach the
kernel, this process's environment is left alone, and a failure names the cell."""

import os

import nbformat
import pytest

from course_utils.tools.notebook_runner import NotebookFailed, run_notebook


def write_notebook(path, *sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_run_notebook_gives_the_kernel_fast_mode_and_says_which_cell_failed(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_FAST", raising=False)
    path = write_notebook(
        tmp_path / "nb.ipynb",
        "import os, pathlib; print(os.environ['COURSE_FAST'], os.environ['COURSE_DATA'], os.environ['EXTRA'])",
        "pathlib.Path('cwd.txt').write_text(os.getcwd())",
        "1 / 0",
    )
    with pytest.raises(NotebookFailed) as err:
        run_notebook(path, tmp_path / "data", cell_timeout=60, env={"EXTRA": "yes"})
    message = str(err.value)
    assert "nb.ipynb failed in cell 2:" in message and "1 / 0" in message and "ZeroDivisionError" in message
    assert (tmp_path / "cwd.txt").read_text() == str(tmp_path)  # the kernel starts in the notebook's folder
    assert "COURSE_FAST" not in os.environ  # set for the kernel only
    path.unlink()
    write_notebook(path, "import os; print(os.environ['COURSE_FAST'], os.environ['COURSE_DATA'])")
    done = run_notebook(path, tmp_path / "data", cell_timeout=60)
    assert done.cells[0].outputs[0]["text"].split() == ["1", str(tmp_path / "data")]
