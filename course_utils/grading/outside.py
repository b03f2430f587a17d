"""Deciding outside the student's kernel, the grader's end: a replay process per grading worker.

After a notebook's tests ran in the student's kernel, each part that passed there is sent
to a Python process of the grader's own (``course_utils.grading.replay``, importing the
grader's kit, not the scratch copy the kernel could reach), which runs the part again on
the results the kernel recorded (see :mod:`.replay`). The part's final outcome combines
both (:func:`combine`): it passes only if it passes in both places. Each grading thread
keeps its replay process from one notebook to the next (numpy, torch and the kit are
imported once); :func:`close_all` ends them at the end of the batch.

When the key says that the teacher's solution was decided outside for a part
(``release --grade-masters``), a part the grader cannot replay for a student fails: a
notebook cannot escape the outside check by returning things the grader cannot rebuild.
Without that, such a part is decided by the kernel alone, and the sheet says so.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from .feedback import explain_error

KIT = Path(__file__).resolve().parent.parent  # the grader's own kit
MAX_RESTARTS = 3  # replay processes started again after one ran out of time or memory, per notebook
STARTUP = 120.0  # seconds a replay process may take to start (not counted in a test's time limit)


@dataclass
class Request:
    """One test part to replay."""

    code: str
    name: str  # the file name the test is compiled under, "<test: ...>"
    names: list[str]  # the solution's names
    free: list[str]  # what else the test reads from the notebook's namespace
    record: str  # the kernel's recording of it

    def line(self) -> str:
        return json.dumps({"code": self.code, "name": self.name, "names": self.names, "free": self.free,
                           "record": self.record}) + "\n"


def replay_env(env: Mapping[str, str], home: Path) -> dict[str, str]:
    """The kernels' environment (fast mode, threads, hash seed), the grader's kit first, a home of its own."""
    out = {k: v for k, v in env.items() if not k.startswith(("JPY_", "COURSE_GRADER_"))}
    out.update({"PYTHONPATH": os.pathsep.join([str(KIT.parent)] + [p for p in [env.get("PYTHONPATH", "")] if p]),
                "PYTHONHASHSEED": "0", "PYTHONNOUSERSITE": "1", "HOME": str(home), "COURSE_DATA": str(home / "data"),
                "MPLCONFIGDIR": str(home / "mpl"), "XDG_CACHE_HOME": str(home / "cache"), "MPLBACKEND": "Agg"})
    return out


class ReplayProcess:
    """Replays test parts one at a time in a grader-side process; restarted after a crash or a timeout."""

    def __init__(self, env: Mapping[str, str], part_timeout: float, deadline: float = float("inf")):
        self.home = Path(tempfile.mkdtemp(prefix="replay-"))
        self.base_env, self.env = dict(env), replay_env(env, self.home)
        self.part_timeout, self.deadline = part_timeout, deadline
        self.proc: Optional[subprocess.Popen] = None
        self.restarts = 0

    def __enter__(self) -> ReplayProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        shutil.rmtree(self.home, ignore_errors=True)

    def _start(self) -> bool:
        """A fresh replay process, ready to replay (False when it did not start)."""
        (self.home / "data").mkdir(exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-c", "from course_utils.grading.replay import main; main()"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     cwd=self.home, env=self.env, text=True, start_new_session=True)
        return bool(self._read(STARTUP))

    def _read(self, timeout: float) -> str:
        """One line from the process, "" after ``timeout`` seconds or when it is gone."""
        try:
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            return self.proc.stdout.readline() if ready else ""
        except (OSError, ValueError):
            return ""

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
            for stream in (self.proc.stdin, self.proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            self.proc = None

    def decide(self, request: Request) -> dict[str, str]:
        """``{"status": "passed" | "failed" | "mismatch" | "undecided", "message": ...}`` for one part."""
        timeout = min(self.part_timeout, self.deadline - time.monotonic())
        if timeout <= 0:
            return {"status": "undecided", "message": "the time limit of the tests was reached"}
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self.close()
                self.restarts += 1
            if self.restarts > MAX_RESTARTS:
                return {"status": "undecided", "message": "the grader's replay process failed too often"}
            if not self._start():
                self.close()
                self.restarts += 1
                return {"status": "undecided", "message": "the grader's replay process did not start"}
        try:
            self.proc.stdin.write(request.line())
            self.proc.stdin.flush()
            answer = self._read(timeout)
        except OSError:
            answer = ""
        if not answer:
            why = (f"the check outside your kernel took longer than {timeout:.0f} s" if self.proc.poll() is None
                   else "the grader's replay process stopped (out of memory?)")
            self.close()
            self.restarts += 1
            return {"status": "undecided", "message": why}
        try:
            verdict = json.loads(answer)
            return {"status": str(verdict["status"]), "message": str(verdict.get("message", ""))}
        except (ValueError, KeyError, TypeError):
            return {"status": "undecided", "message": "the grader's replay answered nonsense"}


_POOL: dict[int, ReplayProcess] = {}  # grading thread -> its replay process
_POOL_LOCK = threading.Lock()


def replay_process(env: Mapping[str, str], part_timeout: float) -> ReplayProcess:
    """This thread's replay process (started on first use, or again with another environment)."""
    key = threading.get_ident()
    with _POOL_LOCK:
        proc = _POOL.get(key)
        if proc is not None and proc.base_env != dict(env):
            proc.__exit__()
            proc = None
        if proc is None:
            proc = _POOL[key] = ReplayProcess(env, part_timeout)
    proc.part_timeout = part_timeout
    return proc


@atexit.register
def close_all() -> None:
    """End every replay process (the batch is over)."""
    with _POOL_LOCK:
        procs = list(_POOL.values())
        _POOL.clear()
    for proc in procs:
        proc.__exit__()


def combine(kernel: str, message: str, verdict: Optional[dict[str, str]], expected: Optional[bool],
            names: list[str]) -> tuple[str, str, str]:
    """(status, message, outside) of a part from its kernel outcome and its replay's verdict.

    ``outside`` is "passed" or "failed" when the grader decided the part in its own process too,
    "undecided: <why>" when it could not (then the kernel's outcome stands unless ``expected``),
    and "" when the part was not replayed (it failed in the kernel already).
    """
    if kernel != "passed" or verdict is None:
        return kernel, message, ""
    status, why = verdict["status"], verdict["message"]
    if status == "passed":
        return "passed", "", "passed"
    if status == "failed":
        ename, _, evalue = why.partition(": ")
        return "failed", (f"{explain_error(ename, evalue, names)} (found when the grader checked your results "
                          "outside your notebook's kernel, although the test passed inside it: does your notebook "
                          "change numpy, torch or the checks?)"), "failed"
    if expected:
        what = why if status == "undecided" else f"{why}"
        return "failed", (f"not tested: the grader could not check your results outside your notebook's kernel "
                          f"({what}); with the teacher's solution it could, so this test gives no credit"), "failed"
    return "passed", "", f"undecided: {why}"
