"""Execute a notebook headless: per-cell and total timeouts, survive crashes, say what failed.

:func:`execute_notebook` runs every code cell of a notebook in a fresh kernel and returns
one :class:`CellResult` per cell. :class:`Session` is the piece underneath, used by the
grader too: a :class:`~course_utils.grading.kernel.Kernel` plus the cells that ran in it,
so that when a cell kills the kernel (``os._exit``, a segfault, memory) or ignores a
timeout, a fresh kernel replays the cells that worked and the run goes on.

    result = execute_notebook("notebooks/02_filtering.ipynb", env={"COURSE_FAST": "1"})
    assert result.ok, result.describe()
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import nbformat

from .files import default_workers
from .guard import INIT_CODE
from .kernel import STOP, Kernel, KernelStartError, RunResult
from .sandbox import Confinement


@dataclass
class CellResult:
    """How one code cell went."""

    index: int  # position in the notebook, from 0
    status: str  # "ok", "error", "timeout", "dead" (it killed the kernel) or "skipped"
    message: str = ""  # "ZeroDivisionError: division by zero", or why it was skipped
    traceback: str = ""
    seconds: float = 0.0


@dataclass
class ExecutionResult:
    """Every executed code cell of one notebook, in order."""

    name: str
    cells: list[CellResult] = field(default_factory=list)
    restarts: int = 0  # fresh kernels started after a crash or a killed cell
    seconds: float = 0.0
    sources: dict[int, str] = field(default_factory=dict, repr=False)  # cell index -> source

    @property
    def ok(self) -> bool:
        return all(c.status == "ok" for c in self.cells)

    @property
    def failures(self) -> list[CellResult]:
        return [c for c in self.cells if c.status != "ok"]

    def describe(self, limit: int = 3) -> str:
        """The failing cells (number as in Jupyter, counted from 1), their source and traceback."""
        if self.ok:
            return f"{self.name}: all {len(self.cells)} code cells ran ({self.seconds:.1f} s)"
        parts = [f"{self.name}: {len(self.failures)} of {len(self.cells)} code cells failed"]
        for c in self.failures[:limit]:
            parts.append(f"--- cell {c.index + 1}: {c.status}: {c.message}\n"
                         f"{self.sources.get(c.index, '')}\n{c.traceback}".rstrip())
        return "\n".join(parts)


def kernel_env(extra: Optional[Mapping[str, str]] = None, workers: int = 1) -> dict[str, str]:
    """This process's environment for a kernel, plus ``extra``.

    Plots go to a non-interactive backend, and when ``workers`` kernels run side by side
    each gets its share of the CPU cores for its math libraries (unless already set), so
    they do not fight over the same cores.
    """
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    threads = str(max(1, default_workers() // max(1, workers)))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, threads)
    env.update(extra or {})
    return env


class Session:
    """A kernel that outlives crashes: it remembers the cells that ran and replays them.

    ``cell_timeout`` bounds each cell; ``total_timeout`` bounds everything from
    :meth:`reset_clock` on (cells, replays and tests). At most ``max_restarts`` fresh
    kernels are started; after that, what is left is skipped.
    """

    def __init__(
        self,
        cwd: Union[str, os.PathLike],
        env: Optional[Mapping[str, str]] = None,
        cell_timeout: float = 120.0,
        total_timeout: Optional[float] = None,
        max_restarts: int = 3,
        log_dir: Optional[Union[str, os.PathLike]] = None,
        confine: Optional[Confinement] = None,
    ):
        self._logdir = None if log_dir else tempfile.TemporaryDirectory(prefix="kernel-log-")
        log_path = Path(log_dir or self._logdir.name) / "kernel.log"
        self.kernel = Kernel(cwd, env=env, log_path=log_path, confine=confine)
        self.cell_timeout, self.total_timeout = cell_timeout, total_timeout
        self.max_restarts, self.restarts = max_restarts, 0
        self.history: list[str] = []  # sources that ran without error, replayed after a crash
        self.after_replay = ""  # grader code run after a replay (the tests' PREPARE_CODE)
        self.last_cell: Optional[CellResult] = None
        self.deadline = float("inf")
        self.reset_clock()

    def __enter__(self) -> Session:
        self._start()
        return self

    def _start(self, restart: bool = False) -> None:
        """A fresh kernel, with the grader's INIT_CODE run before any student code."""
        if restart:
            self.kernel.restart()
        else:
            self.kernel.start()
        r = self.kernel.run(INIT_CODE, timeout=60, silent=True)
        if r.status != "ok":
            self.kernel.shutdown()
            raise KernelStartError(f"the kernel did not run the grader's set-up code ({r.status}: {r.error})")

    def allow_restarts(self, n: int) -> None:
        """``n`` more fresh kernels from now on: each exercise's tests get their own budget."""
        self.max_restarts = self.restarts + n

    def __exit__(self, *exc: object) -> None:
        self.kernel.shutdown()
        if self._logdir:
            self._logdir.cleanup()

    def reset_clock(self) -> None:
        """Start the ``total_timeout`` budget now."""
        self.deadline = time.monotonic() + self.total_timeout if self.total_timeout else float("inf")

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, code: str, record: bool = True, expressions: Optional[dict[str, str]] = None) -> RunResult:
        """Run ``code`` within both timeouts; if the kernel is lost, get a fresh one ready.

        ``record=True`` keeps successful code in the replay history (notebook cells);
        tests run with ``record=False``, silently (no student hooks, no history).
        """
        if self.remaining() <= 0:
            return RunResult("skipped", evalue=f"the total time limit of {self.total_timeout:g} s was reached")
        if STOP.is_set():
            return RunResult("skipped", evalue="grading was interrupted")
        if not self.kernel.is_alive() and not self._recover():
            return RunResult("skipped", evalue=self._why_no_kernel())
        result = self.kernel.run(code, timeout=min(self.cell_timeout, self.remaining()), silent=not record,
                                 expressions=expressions)
        if result.status == "ok" and record:
            self.history.append(code)
        if result.kernel_lost:
            self._recover()
        return result

    def run_cell(self, index: int, source: str) -> CellResult:
        """Run one notebook cell; a kernel found dead afterwards is charged to the cell that ran last."""
        self.check_late_death()
        r = self.run(source)
        message = r.error if r.status in ("error", "timeout") else r.evalue
        self.last_cell = CellResult(index, r.status, message, r.traceback, r.seconds)
        return self.last_cell

    def check_late_death(self) -> None:
        """If the kernel died after the last cell replied (a delayed ``os._exit``, a thread), that cell
        is the cause: it is marked dead and not replayed."""
        cell = self.last_cell
        if cell is None or not self.kernel.kernel_lost_quietly():
            return
        code, recorded = self.kernel.exit_code(), cell.status == "ok"
        cell.status = "dead"
        cell.message = "the kernel died just after this cell" + (f" (exit code {code})" if code is not None else "")
        if recorded and self.history:
            self.history.pop()

    def _recover(self) -> bool:
        """Start a fresh kernel and replay the history; False when out of restarts or time."""
        if self.restarts >= self.max_restarts or self.remaining() <= 0 or STOP.is_set():
            return False
        self.restarts += 1
        try:
            self._start(restart=True)
        except KernelStartError:
            return False
        for code in self.history:
            if self.remaining() <= 0:
                return False
            r = self.kernel.run(code, timeout=min(self.cell_timeout, self.remaining()))
            if r.kernel_lost:  # the replay itself crashed: give up on this kernel
                return self._recover()
        if self.after_replay:
            self.kernel.run(self.after_replay, timeout=min(self.cell_timeout, self.remaining()), silent=True)
        return True

    def _why_no_kernel(self) -> str:
        if self.remaining() <= 0:
            return f"the total time limit of {self.total_timeout:g} s was reached"
        if STOP.is_set():
            return "grading was interrupted"
        if self.restarts >= self.max_restarts:
            return f"the kernel crashed {self.restarts + 1} times; the rest was not run"
        return "no new kernel could be started; the rest was not run"


def read_notebook(path: Union[str, os.PathLike]) -> Any:
    """nbformat v4 notebook from ``path``; raises ``ValueError`` naming the file when it cannot."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path.name}: cannot read the file ({err})") from None
    if not text.strip():
        raise ValueError(f"{path.name}: the file is empty")
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path.name}: not a notebook, the JSON is broken at line {err.lineno}, column "
                         f"{err.colno} ({err.msg}); was the file cut short or edited by hand?") from None
    try:
        with warnings.catch_warnings():  # e.g. duplicate cell ids: nbformat fixes them and warns
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
    except Exception as err:  # nbformat raises several kinds (NotJSONError, KeyError, ...)
        raise ValueError(f"{path.name}: not a valid notebook ({type(err).__name__}: {str(err)[:200]})") from None
    if not isinstance(nb.get("cells"), list) or not all(isinstance(c, dict) for c in nb.cells):
        raise ValueError(f"{path.name}: not a valid notebook (no list of cells)")
    return nb


def execute_notebook(
    path: Union[str, os.PathLike],
    cwd: Optional[Union[str, os.PathLike]] = None,
    env: Optional[Mapping[str, str]] = None,
    cell_timeout: float = 300.0,
    total_timeout: Optional[float] = None,
    stop_on_error: bool = True,
    upto: Optional[int] = None,
    nb: Any = None,
) -> ExecutionResult:
    """Run the code cells of a notebook in a fresh kernel, in order.

    ``cwd`` defaults to the notebook's folder and ``env`` to this process's environment
    (see :func:`kernel_env`). ``stop_on_error=False`` goes on after failing cells, as a
    student's "Run all" with errors would not, but as grading needs. ``upto`` runs only
    the cells before that index. ``nb`` passes an already loaded notebook (``path`` then
    only names it). Outputs are not kept: the result says what failed and why.
    """
    path = Path(path)
    nb = nb if nb is not None else read_notebook(path)
    result = ExecutionResult(name=path.name)
    start = time.monotonic()
    with Session(cwd or path.parent, env, cell_timeout, total_timeout) as session:
        for i, cell in enumerate(nb.cells[:upto]):
            if cell.get("cell_type") != "code" or not cell.get("source", "").strip():
                continue
            result.sources[i] = cell.source
            result.cells.append(session.run_cell(i, cell.source))
            if stop_on_error and result.cells[-1].status != "ok":
                break
        result.restarts = session.restarts
    result.seconds = time.monotonic() - start
    return result
