"""Every notebook executed headless in fast mode, timed (``bench`` without ``--quick``)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

from course_utils.tools.notebook_runner import NotebookFailed, run_notebook


# --------------------------------------------------------------------------- notebooks
def run_notebooks(log: Callable[[str], None], timeout: int = 600, pattern: str = "[0-9][0-9]_*.ipynb") -> dict:
    """Execute every notebook (``pattern``) in fast mode with the runner of ``tests/test_notebooks.py``.

    They run in order and share one fresh data root, as on a student's machine (notebooks
    07-10 reuse the dataset and caches written by earlier ones).
    """
    folder = Path(__file__).resolve().parents[2] / "notebooks"
    paths = sorted(folder.glob(pattern))
    if not paths:
        return {"value": None, "skipped": f"no notebooks in {folder}"}
    per, failed = {}, []
    with tempfile.TemporaryDirectory(prefix="bench_nb_") as data:
        start = time.perf_counter()
        for path in paths:
            t0 = time.perf_counter()
            status = ""
            try:
                run_notebook(path, data, cell_timeout=timeout)
            except (NotebookFailed, RuntimeError, OSError) as err:  # reported; the others still run
                status = f" FAILED ({type(err).__name__})"
                failed.append(path.name + status)
            per[path.name] = time.perf_counter() - t0
            log(f"  {path.name}: {per[path.name]:.1f} s{status}")
        total = time.perf_counter() - start
    note = f"{len(paths)} notebooks, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else "")
    return {"value": total, "per_notebook": per, "failed": failed, "note": note}
