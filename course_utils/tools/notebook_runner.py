"""A course notebook executed headless in fast mode: the one runner of ``bench`` and ``tests/test_notebooks.py``.

:func:`run_notebook` runs every cell with nbclient in a fresh ``python3`` kernel started in
the notebooks' folder, with ``COURSE_FAST=1``, the inline matplotlib backend and
``COURSE_DATA`` pointing at a data root that the caller shares between notebooks (07-10
reuse the dataset and caches that earlier notebooks wrote, as on a student's machine).
The kernel gets these settings in its own environment; this process's is left alone.

The grader does not use it: ``grading.execute`` runs *submissions*, code that may be
hostile, so it confines the kernel (``grading.sandbox``), installs the call guard,
survives kernels that crash or ignore timeouts by replaying the cells that worked, and
grades cell by cell. A course notebook written by the kit needs none of that, and a
failure here should stop at the first broken cell and show it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

FAST_MODE = {"COURSE_FAST": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}


class NotebookFailed(RuntimeError):
    """A notebook stopped: the message names it, the failing cell's number and source, and the error."""


def describe_failure(path: Path, nb: Any, err: Exception) -> str:
    """Notebook name, the failing cell's number and source, and the error."""
    failing = None
    for i, cell in enumerate(nb.cells):
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            failing = (i, cell)
    head = f"{path.name} failed"
    if failing:
        i, cell = failing
        head += f" in cell {i}:\n----- source -----\n{cell.source}\n------------------"
    return f"{head}\n{type(err).__name__}: {err}"


def run_notebook(
    path: Union[str, os.PathLike],
    data_root: Union[str, os.PathLike],
    cell_timeout: int = 300,
    env: Optional[Mapping[str, str]] = None,
) -> Any:
    """Execute every cell of the notebook at ``path`` in fast mode; return the executed notebook.

    ``data_root``: the kernel's ``COURSE_DATA``; ``cell_timeout``: seconds per cell; ``env``:
    more variables for the kernel (e.g. ``OMP_NUM_THREADS``). Raises :class:`NotebookFailed`
    when a cell fails, times out or kills the kernel.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
    kernel_env = {**os.environ, **FAST_MODE, "COURSE_DATA": str(data_root), **(env or {})}
    try:
        client.execute(env=kernel_env)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
        raise NotebookFailed(describe_failure(path, nb, err)) from None
    return nb
