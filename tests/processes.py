"""Running a command that starts processes of its own (``torchrun`` and its ranks) from a test."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any


def run_process_group(command: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess:
    """``subprocess.run(command, capture_output=True, text=True)``, in a session of its own.

    On timeout the whole session is killed, not only ``command``: ``subprocess.run`` would kill
    torchrun and leave its ranks running, stuck, after the test suite has ended.
    """
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True, **kwargs) as proc:  # fmt: skip
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"{command[-1]}: no end after {timeout} s\n{out[-3000:]}\n{err[-3000:]}") from None
    return subprocess.CompletedProcess(command, proc.returncode, out, err)
