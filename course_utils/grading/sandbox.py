"""Confine one student's kernel: its own folder, nothing else writable or secret readable, no network.

On Linux with bubblewrap (``apt-get install bubblewrap``) each kernel runs as

    bwrap --ro-bind / / --tmpfs <every secret folder> --bind <its scratch> ... --unshare-...
      -> launcher (memory, file-size and process-count limits; own user id when the grader is root)
        -> python -m ipykernel_launcher

so that it sees the file system read-only, with the submissions, the key, the grade sheet's
folder, the installed kit, the Jupyter runtime folder and the other kernels' scratch
folders replaced by empty ones; it may write only its own scratch folder and a private
``/tmp``; it has its own PID namespace (no other process is visible, and killing it kills
every process it started, ``setsid`` children included), its own network namespace (no
network; the grader talks to it over Unix sockets in its scratch folder), and limits on
memory, file size and the number of processes. The process limit (``RLIMIT_NPROC``) counts
the processes of one user: run by an ordinary user, bubblewrap puts the kernel in a user
namespace of its own, where the count is the kernel's alone; run by root (whose processes
are never counted), bubblewrap makes no user namespace and the launcher drops to a user id
of the kernel's own (folders of Python that other users cannot enter, such as a ``/root``
of mode 700, are replaced inside the sandbox by a readable copy of their mount).

Without bubblewrap (macOS, Colab, a container without user namespaces) kernels run as the
grader's user with only the memory and file-size limits (and, when the grader is root and
Python is readable by other users, a user id and process limit of their own) and a process
group: :func:`isolation` says so in one line, which the grade sheet and the summary repeat.
Why bubblewrap: it is the sandbox of Flatpak, packaged by every distribution, and needs no
daemon nor root.
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

_BWRAP = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--die-with-parent",
          "--new-session"]
_UNSHARE = ["--unshare-all"]  # a user namespace too: there the process count is the kernel's own
# Run by root, bubblewrap would map root into the user namespace and no other user id could be taken:
# no user namespace then, and the launcher takes a user id of the kernel's own.
_UNSHARE_AS_ROOT = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]

# Sets the limits, drops to the kernel's own user id, then becomes the kernel (in the sandbox), or else
# stays as the kernel's parent: a kernel's os.kill(os.getppid(), SIGKILL) then hits this process, not the grader.
_LAUNCHER = """\
import os, resource, signal, sys
memory, fsize, nproc, uid, stay = (int(x) for x in sys.argv[1:6])
resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
if nproc > 0:
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
if uid >= 0:
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


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _closed_to_others(folder: str) -> str:
    """The highest folder above ``folder`` (itself included) that other users cannot enter, or ""."""
    parts = Path(folder).parts
    for i in range(2, len(parts) + 1):
        path = os.path.join(*parts[:i])
        try:
            if not os.stat(path).st_mode & 0o001:
                return path
        except OSError:
            return ""
    return ""


def python_binds() -> list[str]:
    """bubblewrap options that keep this Python visible inside the sandbox.

    The sandbox mounts an empty ``/tmp``; a virtual environment made under ``/tmp`` (as CI's
    are) would vanish with it and the kernel could not start, so its folder is bound back,
    read-only (the top one: ``/tmp/v`` for ``/tmp/v/newest``). When the grader is root and
    Python lives in a folder others cannot enter (pyenv in ``/root``, mode 700), that folder
    becomes an empty, enterable one in the sandbox, with Python's folder bound back into it
    (``/root/.pyenv``): the kernel's own user id can then run Python, and nothing else of
    root's home is visible.
    """
    folders = sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, os.path.dirname(sys.executable))})
    binds: list[str] = []
    closed = sorted({c for c in map(_closed_to_others, folders) if c}) if _is_root() else []
    for c in closed:
        binds += ["--tmpfs", c]
    for folder in folders:
        # under an emptied folder, bind the top folder on the way: the folders bwrap would make are mode 700
        inside = [c for c in [*closed, "/tmp"] if folder.startswith(c + "/")]
        if inside:
            top = os.path.join(inside[0], Path(folder).relative_to(inside[0]).parts[0])
            binds += [] if top in binds else ["--ro-bind", top, top]
    return binds


def bwrap_options() -> list[str]:
    """The sandbox's options common to every kernel (what :func:`bwrap_problem` tries). Run by root, the
    private ``/tmp`` and ``/dev/shm`` are made writable for everyone: the kernel's own user id writes its
    temporary files there, and its semaphores (``multiprocessing``, a ``DataLoader`` with workers)."""
    if not _is_root():
        return [*_BWRAP, *_UNSHARE, *python_binds()]
    shared_tmp = ["--chmod", "1777", "/tmp", "--chmod", "1777", "/dev/shm"] if _bwrap_knows("--chmod") else []
    return [*_BWRAP, *shared_tmp, *_UNSHARE_AS_ROOT, *python_binds()]


@functools.cache
def _bwrap_knows(option: str) -> bool:
    """Whether this bubblewrap has ``option`` (``--chmod`` came with 0.5)."""
    try:
        done = subprocess.run([shutil.which("bwrap") or "bwrap", "--help"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return option.encode() in done.stdout + done.stderr


def _launcher(nproc: int, uid: int, stay: bool, memory_mb: int = MEMORY_MB) -> list[str]:
    return [sys.executable, "-c", _LAUNCHER, str(memory_mb << 20), str(FILE_MB << 20), str(nproc), str(uid),
            "1" if stay else "0"]


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
        done = subprocess.run([exe, *bwrap_options(), sys.executable, "-c", "pass"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bubblewrap does not run here ({err})"
    if done.returncode:
        return f"bubblewrap does not run here ({done.stderr.decode(errors='replace').strip()[:200]})"
    return ""


@functools.lru_cache(maxsize=1)
def separate_user_problem() -> str:
    """Why kernels cannot run under user ids of their own ("" when they can): tried once, in the sandbox
    when there is one."""
    if not _is_root():
        return "the grader does not run as root"
    probe = _launcher(PROCESSES, FIRST_UID, stay=False) + [
        sys.executable, "-c", "import ipykernel, numpy, tempfile, multiprocessing; tempfile.TemporaryFile(); "
                              "multiprocessing.Lock()"]
    if not bwrap_problem():
        if not _bwrap_knows("--chmod"):
            return "this bubblewrap is older than 0.5 and cannot give another user a writable /tmp"
        probe = [shutil.which("bwrap") or "bwrap", *bwrap_options(), "--", *probe]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=60, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"Python does not start under another user id ({err})"
    if done.returncode:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
        return f"this Python is not usable by another user ({last[:160]})"
    return ""


def forget_probes() -> None:
    """Probe the machine again next time (after ``COURSE_GRADER_NO_SANDBOX`` changed, say)."""
    bwrap_problem.cache_clear()
    separate_user_problem.cache_clear()


def process_limit_problem() -> str:
    """Why the number of a kernel's processes is not capped ("" when it is, to PROCESSES)."""
    if not bwrap_problem() and not _is_root():
        return ""  # the sandbox's user namespace counts the kernel's processes alone
    if _is_root():  # root's processes are never counted: only a user id of the kernel's own gets a limit
        return separate_user_problem()
    return "without the sandbox, a limit would count every process of the grader's user, so none is set"


def isolation() -> str:
    """One line for the teacher: how kernels are confined in this batch."""
    problem, nproc = bwrap_problem(), process_limit_problem()
    limits = "memory, file-size and process-count limits" if not nproc else "memory and file-size limits"
    user = ", own user id" if _is_root() and not separate_user_problem() else ""
    if not problem:
        return (f"isolated (bubblewrap: own scratch folder, secrets hidden, no network, own PID namespace{user}, "
                f"{limits}" + (f"; no process-count limit: {nproc})" if nproc else ")"))
    who = "under user ids of their own" if user else "as the grader's user"
    return (f"NOT ISOLATED: {problem}; kernels ran {who} with {limits} only, so a hostile notebook could read or "
            "change files, reach the network and other kernels (see docs/grading.md)")


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
        nproc = 0 if process_limit_problem() else PROCESSES
        launcher = _launcher(nproc, self.uid, stay=not self.sandboxed, memory_mb=self.memory_mb)
        if not self.sandboxed:
            return launcher + argv
        box = [shutil.which("bwrap") or "bwrap", *bwrap_options()]
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
        return box + ["--"] + launcher + argv

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
