"""Confine one student's kernel: its own folder, nothing else writable or secret readable, no network.

On Linux with bubblewrap (``apt-get install bubblewrap``) each kernel runs as

    launcher (limits, own session, own user id when the grader is root)
      -> bwrap --ro-bind / / --tmpfs <every secret folder> --bind <its scratch> ... --unshare-all
        -> python -m ipykernel_launcher

so that it sees the file system read-only, with the submissions, the key, the grade sheet's
folder, the installed kit, the Jupyter runtime folder and the other kernels' scratch
folders replaced by empty ones; it may write only its own scratch folder and a private
``/tmp``; it has its own PID namespace (no other process is visible, and killing it kills
every process it started, ``setsid`` children included), its own network namespace (no
network; the grader talks to it over Unix sockets in its scratch folder), and limits on
memory, file size and (when the grader runs as root, under a user id of its own) the
number of processes.

Without bubblewrap (macOS, Colab, a container without user namespaces) kernels run as the
grader's user with only the limits and a process group: :func:`isolation` says so in one
line, which the grade sheet and the summary repeat. Why bubblewrap: it is the sandbox of
Flatpak, packaged by every distribution, and needs no daemon nor root.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

# Data memory per kernel (RLIMIT_DATA: heap and anonymous mappings). Not the address space (RLIMIT_AS):
# torch, OpenBLAS and their threads reserve far more address space than they use, and a 4 GiB
# RLIMIT_AS broke the kit's own notebooks ("failed to map segment from shared object").
MEMORY_MB = 6144
FILE_MB = 512  # largest file a kernel may write, its own log included
PROCESSES = 256  # processes per kernel, enforced when the grader is root (one user id per kernel)
FIRST_UID = 160_000  # kernels run as FIRST_UID + n when the grader is root; no such users exist

_BWRAP = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
          "--unshare-all", "--die-with-parent", "--new-session"]

# Sets the limits, drops to the kernel's own user id, then becomes the sandbox (bwrap), or else stays
# as the kernel's parent: a kernel's os.kill(os.getppid(), SIGKILL) then hits this process, not the grader.
_LAUNCHER = """\
import os, resource, signal, sys
memory, fsize, nproc, uid, stay = (int(x) for x in sys.argv[1:6])
resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
if uid >= 0:
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
child = os.fork() if stay else 0
if child == 0:
    if stay and sys.platform.startswith("linux"):
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with this launcher
    os.execvp(sys.argv[6], sys.argv[6:])
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, lambda s, f: os.kill(child, s))
_, status = os.waitpid(child, 0)
os._exit(os.waitstatus_to_exitcode(status) & 255)
"""


def python_binds() -> list[str]:
    """``--ro-bind`` options that keep this Python visible inside the sandbox.

    The sandbox mounts an empty ``/tmp``; a virtual environment made under ``/tmp`` (as CI's
    are) would vanish with it and the kernel could not start, so its folders are bound back,
    read-only.
    """
    folders = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, os.path.dirname(sys.executable))}
    binds: list[str] = []
    for folder in sorted(folders):
        if folder == "/tmp" or folder.startswith("/tmp/"):
            binds += ["--ro-bind", folder, folder]
    return binds


@functools.lru_cache(maxsize=1)
def bwrap_problem() -> str:
    """Why bubblewrap cannot confine kernels here ("" when it can): tried once, with the real options."""
    if not sys.platform.startswith("linux"):
        return f"no sandbox on {sys.platform} (bubblewrap is Linux only)"
    if os.environ.get("COURSE_GRADER_NO_SANDBOX"):
        return "the sandbox was turned off (COURSE_GRADER_NO_SANDBOX)"
    exe = shutil.which("bwrap")
    if not exe:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    try:
        done = subprocess.run([exe, *_BWRAP, *python_binds(), sys.executable, "-c", "pass"], capture_output=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bubblewrap does not run here ({err})"
    if done.returncode:
        return f"bubblewrap does not run here ({done.stderr.decode(errors='replace').strip()[:200]})"
    return ""


@functools.lru_cache(maxsize=1)
def separate_user_problem() -> str:
    """Why kernels cannot run under user ids of their own ("" when they can): tried once."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "the grader does not run as root"
    probe = [sys.executable, "-c", _LAUNCHER, str(MEMORY_MB << 20), str(FILE_MB << 20), str(PROCESSES),
             str(FIRST_UID), "0", sys.executable, "-c", "import ipykernel, numpy"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=60, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"Python does not start under another user id ({err})"
    if done.returncode:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
        return f"this Python is not usable by another user ({last[:160]})"
    return ""


def isolation() -> str:
    """One line for the teacher: how kernels are confined in this batch."""
    problem = bwrap_problem()
    if not problem:
        user = separate_user_problem()
        return ("isolated (bubblewrap: own scratch folder, secrets hidden, no network, own PID namespace, memory "
                "and file-size limits; " + ("own user id and process limit)" if not user else
                                            f"no process-count limit: {user})"))
    return (f"NOT ISOLATED: {problem}; kernels ran as the grader's user with memory and file-size limits only, "
            "so a hostile notebook could read or change files and reach the network (see docs/grading.md)")


@dataclass
class Confinement:
    """Where one kernel may write (``scratch``), what it must not see (``hide``), and its limits."""

    scratch: Path  # the kernel's own folder: working copy, data, home, sockets
    read_only: list[Path] = field(default_factory=list)  # inside scratch, but not writable (the kit's copy)
    hide: list[Path] = field(default_factory=list)  # folders replaced by empty ones
    writable: list[Path] = field(default_factory=list)  # outside scratch, shared on purpose (--data-root)
    memory_mb: int = MEMORY_MB
    slot: int = 0  # distinguishes the user ids of kernels running side by side
    marker: str = field(default_factory=lambda: secrets.token_hex(12))  # in the kernel's environment
    sandboxed: bool = field(init=False)

    def __post_init__(self) -> None:
        self.sandboxed = not bwrap_problem()

    @property
    def uid(self) -> int:
        """The kernel's own user id when the grader is root and Python works for another user (-1: the grader's)."""
        return FIRST_UID + self.slot if separate_user_problem() == "" else -1

    def prepare(self) -> None:
        """Hand the scratch folder to the kernel's user id (everything else stays the grader's)."""
        if self.uid < 0:
            return
        for folder, dirs, files in os.walk(self.scratch):
            for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                os.lchown(name, self.uid, self.uid)
        for path in self.read_only:  # readable, not writable, by the kernel's user
            for folder, dirs, files in os.walk(path):
                for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                    os.lchown(name, 0, 0)
                    os.chmod(name, 0o755 if os.path.isdir(name) else 0o644)

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` (the kernel's command) wrapped in the launcher and, where it works, bubblewrap."""
        if argv and argv[0] in ("python", "python3"):  # a kernelspec's bare "python": this Python, as jupyter_client
            argv = [sys.executable, *argv[1:]]  # would pick, not whatever PATH finds inside the sandbox
        limits = [str(self.memory_mb << 20), str(FILE_MB << 20), str(PROCESSES), str(self.uid),
                  "0" if self.sandboxed else "1"]
        launcher = [sys.executable, "-c", _LAUNCHER, *limits]
        if not self.sandboxed:
            return launcher + argv
        box = [shutil.which("bwrap") or "bwrap", *_BWRAP, *python_binds()]
        for path in self.hide:
            if path.is_dir():
                box += ["--tmpfs", str(path)]
            elif path.exists():
                box += ["--ro-bind", "/dev/null", str(path)]
        box += ["--bind", str(self.scratch), str(self.scratch)]
        for path in self.writable:
            box += ["--bind", str(path), str(path)]
        for path in self.read_only:
            box += ["--ro-bind", str(path), str(path)]
        # JPY_PARENT_PID=1: the kernel's parent is the namespace's init, which ipykernel would take for a
        # dead grader (1 turns that watch off); --die-with-parent ends the kernel with its launcher instead.
        box += ["--setenv", "HOME", str(self.scratch / "home"), "--setenv", "JPY_PARENT_PID", "1",
                "--chdir", str(self.scratch / "work")]
        return launcher + box + ["--"] + argv

    def env(self) -> dict[str, str]:
        """Environment entries: the kernel's own files (IPython, matplotlib, caches) stay in its scratch
        folder, and a marker finds its processes (see :meth:`kill_leftovers`)."""
        home = self.scratch / "home"
        return {"HOME": str(home), "IPYTHONDIR": str(home / ".ipython"), "MPLCONFIGDIR": str(home / ".matplotlib"),
                "XDG_CACHE_HOME": str(home / ".cache"), "JUPYTER_RUNTIME_DIR": str(self.scratch / "runtime"),
                "PYTHONNOUSERSITE": "1", "COURSE_GRADER_KERNEL": self.marker}

    def kill_leftovers(self) -> int:
        """Kill every process left by the kernel (a ``setsid`` child that left its process group); returns
        how many. They are found by user id when the kernel had its own, else by the environment marker
        (which a process can erase: see docs/grading.md). In the sandbox the PID namespace already took
        them down with the kernel."""
        if not Path("/proc").is_dir():
            return 0
        killed, mark = 0, f"COURSE_GRADER_KERNEL={self.marker}".encode()
        for pid in (p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()):
            try:
                if (Path(f"/proc/{pid}").stat().st_uid == self.uid if self.uid >= 0
                        else mark in Path(f"/proc/{pid}/environ").read_bytes()):
                    os.kill(int(pid), signal.SIGKILL)
                    killed += 1
            except OSError:  # gone meanwhile, or not ours
                pass
        return killed


def grader_secrets(*paths: Optional[os.PathLike | str]) -> list[Path]:
    """The folders a kernel must not see: the given ones, the installed kit and Jupyter's runtime folder."""
    from jupyter_core.paths import jupyter_runtime_dir

    kit = Path(__file__).resolve().parent.parent
    found = [Path(p).resolve() for p in paths if p] + [kit, Path(jupyter_runtime_dir()).resolve()]
    python = Path(sys.executable).resolve()
    # never hide the Python the kernel runs (a venv inside the submissions' parent, say)
    return [p for p in dict.fromkeys(found) if p != Path("/") and p not in python.parents]
