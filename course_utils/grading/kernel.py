"""A Jupyter kernel that runs one piece of code at a time, with a hard deadline.

This talks to the kernel with ``jupyter_client`` directly rather than through nbclient's
``NotebookClient``, because grading needs three things nbclient does not give: a cell
that ignores the interrupt must not hang the run forever (here the kernel is killed),
a dead kernel must be noticed within a second rather than after the cell timeout, and a
crashed kernel must be replaced in the middle of a notebook.

    with Kernel(cwd="scratch/alice") as k:
        r = k.run("1 / 0", timeout=10)
        r.status, r.ename   # ("error", "ZeroDivisionError")
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Mapping, Optional

import zmq
from jupyter_client import KernelManager

from . import iopub
from .iopub import Collector, OutputBudget, strip_ansi
from .sandbox import Confinement

__all__ = ["Kernel", "KernelStartError", "RunResult", "STOP", "strip_ansi"]

POLL = 0.5  # seconds between liveness checks while a cell is quiet
GRACE = 5.0  # seconds a cell gets to stop after an interrupt before the kernel is killed
LOST_IDLE = 2.0  # seconds to wait for IOPub's "idle" once the reply came (a dropped message may have cut it off)


_SIGNALS = {  # exit codes of a kernel killed by a signal, in words
    -9: ", killed by the system: usually out of memory",
    -11: ", a segmentation fault: a crash inside compiled code",
    -6: ", aborted by compiled code",
}


# Set to make every running Kernel.run return at once (the grader's Ctrl-C); see files.parallel_map.
STOP = threading.Event()


class KernelStartError(RuntimeError):
    """The kernel process could not be started (a problem of the grading machine, not of a student)."""


@dataclass
class RunResult:
    """What happened to one piece of code."""

    status: str  # "ok", "error" (an exception), "timeout", "dead" (the kernel died); Session adds "skipped"
    ename: str = ""  # exception class name, e.g. "ZeroDivisionError"
    evalue: str = ""  # exception message
    traceback: str = ""  # plain text, colours removed
    output: str = ""  # stdout, stderr and text results: their beginning and end (iopub.Collector)
    seconds: float = 0.0
    kernel_lost: bool = False  # the kernel died or was killed: restart it before running more
    expressions: dict[str, str] = field(default_factory=dict)  # user_expressions asked for -> text/plain

    @property
    def error(self) -> str:
        """``"ZeroDivisionError: division by zero"``, or "" when there was no exception."""
        return f"{self.ename}: {self.evalue}" if self.ename else ""


class Kernel:
    """One IPython kernel in a subprocess whose working directory is ``cwd``.

    ``env`` is the kernel's whole environment (default: this process's). What the kernel
    prints to its own stdout/stderr (a segfault message, say) goes to ``log_path``.
    """

    def __init__(
        self,
        cwd: os.PathLike | str,
        env: Optional[Mapping[str, str]] = None,
        kernel_name: str = "python3",
        startup_timeout: float = 60.0,
        log_path: Optional[os.PathLike | str] = None,
        confine: Optional[Confinement] = None,
    ):
        self.cwd, self.env = str(cwd), dict(os.environ if env is None else env)
        # ipykernel < 6.22 (Colab ships 6.17.1) starts debugpy, which writes a frozen-modules
        # warning into the kernel's log on Python 3.11+, where a crash report would quote it
        self.env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        self.confine = confine  # graded kernels: limits, own user id, and the sandbox where there is one
        self.kernel_name, self.startup_timeout = kernel_name, startup_timeout
        self.log_path = Path(log_path) if log_path else None
        self.km: Optional[KernelManager] = None
        self.kc: Any = None
        self._log: Optional[IO[bytes]] = None
        self.budget = OutputBudget()  # output kept for the whole notebook, across restarts
        self._replies: dict[str, dict[str, Any]] = {}  # shell replies read while waiting for IOPub

    # ------------------------------------------------------------------ life cycle
    def start(self, attempts: int = 2) -> None:
        """Start the kernel; a second attempt covers a port taken between choosing and binding it."""
        for attempt in range(attempts):
            try:
                return self._start()
            except KernelStartError:
                if attempt == attempts - 1:
                    raise

    def _start(self) -> None:
        self.km = KernelManager(kernel_name=self.kernel_name)
        self._replies = {}
        sink: Any = subprocess.DEVNULL
        if self.log_path:
            self._log = open(self.log_path, "wb")  # kept open while the kernel lives
            sink = self._log
        if self.confine:
            self._confine(self.km, self.confine)
        try:
            # An in-memory history: parallel kernels sharing ~/.ipython's sqlite file lock each other.
            self.km.start_kernel(cwd=self.cwd, env=self.env, stdout=sink, stderr=sink,
                                 extra_arguments=["--HistoryManager.hist_file=:memory:"])
            self.kc = self.km.client()
            # ZeroMQ refuses a larger message before allocating it (a 1 GB print must not cost the grader 1 GB)
            self.kc.context.setsockopt(zmq.MAXMSGSIZE, iopub.MAX_MESSAGE)
            self.kc.start_channels()
            self.kc.wait_for_ready(timeout=self.startup_timeout)
            if self.confine:  # its key lets anyone drive the kernel: gone once the kernel has read it
                Path(self.km.connection_file).unlink(missing_ok=True)
        except Exception as err:
            self.shutdown()
            raise KernelStartError(f"could not start the {self.kernel_name!r} kernel in {self.cwd}: {err}") from err

    @staticmethod
    def _confine(km: KernelManager, c: Confinement) -> None:
        """Unix sockets in the scratch folder (the sandbox has no network), and the confined command."""
        for sub in ("ipc", "runtime", "home"):
            (c.scratch / sub).mkdir(exist_ok=True)
        km.transport, km.ip = "ipc", str(c.scratch / "ipc" / "kernel")
        km.connection_file = str(c.scratch / "runtime" / "kernel.json")
        km.write_connection_file()
        km.kernel_spec.argv = c.command(list(km.kernel_spec.argv))
        # a signal would reach the launcher, not the kernel in its own session: ask the kernel itself
        km.kernel_spec.interrupt_mode = "message"
        c.prepare()

    def shutdown(self) -> None:
        """Kill the kernel (and its children) and release its ports; safe to call twice."""
        try:
            if self.kc is not None:
                self.kc.stop_channels()
        except Exception:  # channels of a dead kernel may complain; the kill below matters
            pass
        try:
            if self.km is not None and self.km.has_kernel:
                self.km.shutdown_kernel(now=True)
        except Exception:  # a kernel already gone is what we want
            pass
        self.kc, self.km = None, None
        if self.confine:
            self.confine.kill_leftovers()
        if self._log:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        """A fresh kernel in place of a dead or killed one (all variables are lost)."""
        self.shutdown()
        self.start()

    def __enter__(self) -> Kernel:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def is_alive(self) -> bool:
        return self.km is not None and self.km.is_alive()

    def kernel_lost_quietly(self) -> bool:
        """The kernel died between two runs (after its last reply): nobody has noticed it yet."""
        return self.km is not None and not self.km.is_alive()

    def exit_code(self) -> Optional[int]:
        """The kernel process's exit code once it died (-9: killed, often for lack of memory)."""
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        return process.poll() if process is not None else None

    def log_tail(self) -> str:
        """What the kernel process printed itself before dying, e.g. 'Fatal Python error: Segmentation fault'."""
        if not self.log_path or not self.log_path.exists():
            return ""
        text = self.log_path.read_bytes()[-20_000:].decode("utf-8", "replace")
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("[IPKernelApp]")]
        fatal = [line for line in lines if line.startswith("Fatal Python error")]
        return (fatal or lines[-1:] or [""])[0][:300]

    # ------------------------------------------------------------------ running code
    def run(self, code: str, timeout: float, silent: bool = False,
            expressions: Optional[dict[str, str]] = None) -> RunResult:
        """Run ``code`` and wait at most ``timeout`` seconds for it.

        On timeout the kernel is interrupted (KeyboardInterrupt); if the code still does
        not stop within GRACE seconds the kernel is killed and ``kernel_lost`` is set.
        ``silent=True`` (the grader's own code) runs no ``pre_run_cell``/``post_run_cell``
        hooks and stores nothing in the kernel's history. The outcome is the
        ``execute_reply`` status: an exception that a custom handler hid from IOPub
        still counts as an error. ``expressions`` are evaluated after the code (Jupyter's
        ``user_expressions``, which no input transformer rewrites) and returned as text.
        """
        if not self.is_alive():
            return RunResult("dead", evalue="the kernel is not running", kernel_lost=True)
        start = time.monotonic()
        msg_id = self.kc.execute(code, silent=silent, store_history=not silent, allow_stdin=False,
                                 stop_on_error=False, user_expressions=expressions or {})
        got = Collector(self.budget)
        idle = self._wait_idle(msg_id, got, start + timeout)
        if STOP.is_set():
            self.shutdown()
            return RunResult("skipped", evalue="grading was interrupted", kernel_lost=True)
        if not self.is_alive():
            return self._dead(got, time.monotonic() - start)
        if not idle:
            return self._after_timeout(msg_id, got, timeout, start)
        reply = self._wait_reply(msg_id)
        if reply is None and not got.ename:
            got.ename, got.evalue = "NoReply", "the kernel went idle without replying"
        elif reply is not None and reply.get("status") != "ok" and not got.ename:
            # An error the kernel reported only in its reply: e.g. a custom exception handler
            # (set_custom_exc) swallowed the traceback that IOPub would have carried.
            got.ename = str(reply.get("ename") or "Error")
            got.evalue = str(reply.get("evalue") or f"the kernel replied {reply.get('status')!r}")
        status = "error" if got.ename else "ok"
        values = {k: str(v.get("data", {}).get("text/plain", "")) for k, v in
                  ((reply or {}).get("user_expressions") or {}).items() if isinstance(v, dict)}
        return RunResult(status, got.ename, got.evalue, got.traceback, got.output, time.monotonic() - start,
                         expressions=values)

    def _wait_idle(self, msg_id: str, got: Collector, deadline: float) -> bool:
        """Read IOPub until the kernel is idle after ``msg_id`` (True), the deadline (False) or its death.

        If the shell reply came but "idle" does not follow within LOST_IDLE seconds, IOPub lost
        it (a message over iopub.MAX_MESSAGE makes ZeroMQ drop the connection): the run is over.
        """
        replied_at: Optional[float] = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or STOP.is_set():
                return False
            try:
                msg, dropped = iopub.read_message(self.kc.iopub_channel, self.kc.session, min(POLL, remaining))
            except queue.Empty:
                if not self.is_alive():
                    return True  # dead: the caller sees it
                if replied_at is None and self._reply_ready(msg_id):
                    replied_at = time.monotonic()
                if replied_at is not None and time.monotonic() - replied_at > LOST_IDLE:
                    got.lost = True
                    self._reconnect_iopub()
                    return True
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id and got.add(msg, dropped):
                return True

    def _reconnect_iopub(self) -> None:
        """A fresh IOPub connection: ZeroMQ does not remake one it dropped for a message over MAX_MESSAGE."""
        try:
            self.kc.iopub_channel.close()
        except Exception:  # a channel already broken: replaced below all the same
            pass
        self.kc._iopub_channel = None
        self.kc.iopub_channel.start()
        time.sleep(0.2)  # the subscription reaches the kernel before the next run publishes

    def _reply_ready(self, msg_id: str) -> bool:
        """Read the shell replies waiting (without blocking); True once the one to ``msg_id`` is among them."""
        while msg_id not in self._replies:
            try:
                reply = self.kc.get_shell_msg(timeout=0)
            except queue.Empty:
                return False
            self._replies[reply.get("parent_header", {}).get("msg_id", "")] = reply.get("content", {})
        return True

    def _wait_reply(self, msg_id: str, timeout: float = 5.0) -> Optional[dict[str, Any]]:
        """The content of the shell reply to ``msg_id`` (older replies of interrupted runs are skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if msg_id in self._replies:
                reply = self._replies.pop(msg_id)
                self._replies.clear()  # replies to older, interrupted runs are of no use any more
                return reply
            try:
                reply = self.kc.get_shell_msg(timeout=POLL)
            except queue.Empty:
                if not self.is_alive():
                    return None
                continue
            self._replies[reply.get("parent_header", {}).get("msg_id", "")] = reply.get("content", {})
        return None

    def _after_timeout(self, msg_id: str, got: Collector, timeout: float, start: float) -> RunResult:
        try:
            self.km.interrupt_kernel()
        except Exception:  # the kernel died meanwhile: it will not stop by itself
            pass
        stopped = self._wait_idle(msg_id, got, time.monotonic() + GRACE) and self.is_alive()
        if stopped:
            self._wait_reply(msg_id)
        else:
            self.shutdown()
        why = "interrupted" if stopped else f"ignored the interrupt for {GRACE:g} s and the kernel was killed"
        return RunResult("timeout", "TimeoutError", f"still running after {timeout:g} s ({why})", "",
                         got.output, time.monotonic() - start, kernel_lost=not stopped)

    def _dead(self, got: Collector, seconds: float) -> RunResult:
        code, tail = self.exit_code(), self.log_tail()
        detail = f"the kernel died (exit code {code})" if code is not None else "the kernel died"
        detail += _SIGNALS.get(code, "")
        if tail:
            detail += f"; it printed: {tail}"
        self.shutdown()
        return RunResult("dead", "DeadKernel", detail, "", got.output, seconds, kernel_lost=True)
