"""Every notebook executed headless in fast mode, timed (``bench`` without ``--quick``)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Callable


# --------------------------------------------------------------------------- notebooks
def run_notebooks(log: Callable[[str], None], timeout: int = 600, pattern: str = "[0-9][0-9]_*.ipynb") -> dict:
    """Execute every notebook (``pattern``) in fast mode with nbclient, as ``tests/test_notebooks.py`` does.

    They run in order and share one fresh data root, as on a student's machine (notebooks
    07-10 reuse the dataset and caches written by earlier ones).
    """
    import nbformat
    from nbclient import NotebookClient

    folder = Path(__file__).resolve().parents[2] / "notebooks"
    paths = sorted(folder.glob(pattern))
    if not paths:
        return {"value": None, "skipped": f"no notebooks in {folder}"}
    saved = {k: os.environ.get(k) for k in ("COURSE_FAST", "COURSE_DATA", "MPLBACKEND")}
    per, failed = {}, []
    with tempfile.TemporaryDirectory(prefix="bench_nb_") as data:
        os.environ.update(COURSE_FAST="1", COURSE_DATA=data, MPLBACKEND="module://matplotlib_inline.backend_inline")
        try:
            start = time.perf_counter()
            for path in paths:
                t0 = time.perf_counter()
                nb = nbformat.read(path, as_version=4)
                client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                        resources={"metadata": {"path": str(folder)}})  # fmt: skip
                status = ""
                try:
                    client.execute()
                except Exception as err:  # a failing notebook is reported, the others still run
                    status = f" FAILED ({type(err).__name__})"
                    failed.append(path.name + status)
                per[path.name] = time.perf_counter() - t0
                log(f"  {path.name}: {per[path.name]:.1f} s{status}")
            total = time.perf_counter() - start
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    note = f"{len(paths)} notebooks, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else "")
    return {"value": total, "per_notebook": per, "failed": failed, "note": note}
