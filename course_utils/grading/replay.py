"""The grader's side of deciding a test outside the student's kernel: run it again, on recorded results.

A test part that passed in the student's kernel passed in a process the student's code ran
in, which could have patched numpy, torch or the checks, or the interpreter itself. So the
grader runs the same part again here, in a fresh Python process of its own (one per graded
notebook, started by :mod:`.outside`), with the kit's real checks, where each of the
student's functions is a *replayer*: given the same inputs as in the kernel (same digest),
it hands back the result the kernel recorded (``recorder.py``), applies the same changes to
its arguments and to the random state, and raises what the function raised. The test's own
inputs and expected values are computed here. A part passes only if it passes in both.

A part is *undecided* here (and stays decided by the kernel alone) when the grader cannot
replay it: the test hands the student's code something whose behaviour cannot be compared
(a model class or a function written in the test, a data loader with hooks), or the student
returned something that is not data (a model, a custom object), or the test differentiates
through the student's result. Protocol: one JSON request per line on stdin, one JSON answer
per line on the original stdout; anything the test prints is thrown away.
"""

from __future__ import annotations

import builtins
import json
import os
import resource
import stat
import symtable
import sys
import zipfile
from typing import Any

import numpy as np

from .codec import STUDENT_MARK, Unhashable, call_digest, decode
from .effects import apply_change, apply_rng, seed_all
from .recorder import IMPORTABLE

MAX_RECORDING = 96 << 20  # bytes of one part's recording file (its arrays are capped at 64 MB)


class Undecided(BaseException):
    """The grader cannot replay this part (not an Exception: a test's ``except Exception`` does not catch it)."""


class Mismatch(BaseException):
    """The replay saw other inputs, or more calls, than the kernel recorded."""


def free_names(code: str, name: str = "<test>") -> list[str]:
    """Names a test part reads without defining them: the solution's and the notebook's (``X``, ``np``)."""
    try:
        top = symtable.symtable(code, name, "exec")
    except SyntaxError:
        return []
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    used: set[str] = set()

    def walk(table: Any) -> None:
        for s in table.get_symbols():
            if s.is_referenced() and (table is top or s.is_global()):
                used.add(s.get_name())
        for child in table.get_children():
            walk(child)

    walk(top)
    return sorted(n for n in used - defined if not hasattr(builtins, n))


def _read_recording(path: str) -> tuple[dict[str, Any], Any]:
    """The manifest and an array getter; no symbolic link, no special file, size capped, no pickle."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    f = os.fdopen(fd, "rb")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_RECORDING:
        f.close()
        raise ValueError("not a plain file of a sensible size")
    with zipfile.ZipFile(f) as z:  # declared sizes bound what is read back (no zip bomb)
        if sum(i.file_size for i in z.infolist()) > MAX_RECORDING:
            raise ValueError("too large once unpacked")
    f.seek(0)
    data = np.load(f, allow_pickle=False)
    manifest = json.loads(bytes(data["manifest"]).decode("utf-8"))
    cache: dict[int, np.ndarray] = {}

    def array(i: int) -> np.ndarray:
        if i not in cache:
            cache[i] = data[f"a{int(i)}"]
        return cache[i]

    return manifest, array


class Replay:
    """One part's replay: the namespace its test runs in, and what went wrong."""

    def __init__(self, manifest: dict[str, Any], arrays: Any):
        self.manifest, self.arrays = manifest, arrays
        self.seen: dict[str, int] = {}
        self.undecided, self.mismatch = "", ""
        self.grad_outputs: list[Any] = []
        self.differentiated = False

    def namespace(self, names: list[str], free: list[str]) -> dict[str, Any]:
        import course_utils.checks as checks

        ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins,
                              "display": lambda *a, **k: None}  # IPython's, which a test may call to show a value
        ns.update({k: getattr(checks, k) for k in dir(checks) if k.startswith("check_")})
        for name, bound in self.manifest.get("bound", {}).items():
            if name not in names and name not in free:
                continue
            kind = bound.get("kind")
            if kind == "function" and name in names:
                ns[name] = self._replayer(name)
            elif kind == "data":
                ns[name] = decode(bound["v"], self.arrays)
            elif kind == "module" and str(bound["v"]).split(".")[0] in IMPORTABLE:
                import importlib

                ns[name] = importlib.import_module(str(bound["v"]))
            elif name in free:  # the test reads it: a class, a model, a module the grader does not import
                self._fail(Undecided, str(bound.get("why") or f"`{name}` cannot be replayed"))
        return ns

    def _replayer(self, name: str) -> Any:
        calls = [c for c in self.manifest.get("calls", []) if c.get("name") == name]

        def replayed(*args: Any, **kwargs: Any) -> Any:
            i = self.seen.get(name, 0)
            self.seen[name] = i + 1
            if i >= len(calls):
                self._fail(Mismatch, f"the test called {name} more often here than in your kernel")
            entry = calls[i]
            if entry.get("in") is None:
                self._fail(Undecided, f"{name}: {entry.get('why') or 'its call was not recorded'}")
            try:
                mine, parts = call_digest(args, kwargs)
            except Unhashable as err:
                self._fail(Undecided, f"the test gives {name} {err}")
            if mine != entry["in"]:
                theirs = entry.get("args") or []
                which = [i + 1 for i, d in enumerate(parts) if i >= len(theirs) or d != theirs[i]]
                self._fail(Mismatch, f"{name} (call {i + 1}) was given other inputs than in your kernel (argument "
                                     f"{', '.join(map(str, which)) or '?'}): does your code change the test's data "
                                     "or the random state besides its own inputs?")
            self._apply(name, entry, args, kwargs)
            if "raised" in entry:
                kind, message = entry["raised"]
                error = getattr(builtins, str(kind), Exception)
                raise (error if isinstance(error, type) and issubclass(error, Exception) else Exception)(message)
            if "opaque" in entry:
                self._fail(Undecided, f"{name}: {entry['opaque']}")
            return decode(entry["out"], self.arrays, self._grad_output)

        replayed.__name__ = replayed.__qualname__ = name
        setattr(replayed, STUDENT_MARK, name)
        return replayed

    def _apply(self, name: str, entry: dict[str, Any], args: tuple, kwargs: dict) -> None:
        if "opaque" in entry and "out" not in entry and "raised" not in entry:
            self._fail(Undecided, f"{name}: {entry['opaque']}")
        for where, change in entry.get("changes", []):
            target = args[where] if isinstance(where, int) and where < len(args) else kwargs.get(where)
            try:
                apply_change(target, change, self.arrays)
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                self._fail(Undecided, f"{name}: its change to an argument cannot be replayed ({err})")
        if entry.get("rng"):
            apply_rng(entry["rng"], self.arrays)

    def _fail(self, kind: type, message: str) -> None:
        if kind is Mismatch:
            self.mismatch = self.mismatch or message
        else:
            self.undecided = self.undecided or message
        raise kind(message)

    def _grad_output(self, t: Any) -> None:
        """A gradient reaching a replayed result means the test differentiates through the student's code."""
        self.grad_outputs.append(t)
        t.register_hook(self._differentiated)

    def _differentiated(self, grad: Any) -> None:
        self.differentiated = True


_THREADS: list[int] = []  # torch's thread count when this process first imported it


def _apply_settings(settings: dict[str, Any]) -> None:
    """torch's global settings as the notebook had them (the defaults when it had not imported torch)."""
    if not settings and "torch" not in sys.modules:
        return
    import torch

    _THREADS[:] = _THREADS or [torch.get_num_threads()]
    torch.set_default_dtype(torch.float64 if settings.get("dtype") == "float64" else torch.float32)
    torch.set_grad_enabled(bool(settings.get("grad", True)))
    threads = int(settings.get("threads", _THREADS[0]))
    torch.set_num_threads(max(1, min(threads, os.cpu_count() or 1)))


def run_part(request: dict[str, Any]) -> dict[str, str]:
    """Replay one test part: ``{"status": "passed" | "failed" | "undecided", "message": ...}``."""
    try:
        manifest, arrays = _read_recording(request["record"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as err:
        return {"status": "undecided", "message": f"no usable recording from your kernel ({type(err).__name__})"}
    replay = Replay(manifest, arrays)
    undo = lambda: None  # noqa: E731
    try:
        namespace = replay.namespace(request["names"], request["free"])
        _apply_settings(manifest.get("settings") or {})
        undo = seed_all()
        exec(compile(request["code"], request["name"], "exec"), namespace)
        error = None
    except (Undecided, Mismatch):
        error = None
    except Exception as err:
        error = f"{type(err).__name__}: {err}"
    finally:
        undo()
    return _verdict(replay, error)


def _verdict(replay: Replay, error: str | None) -> dict[str, str]:
    if replay.mismatch:
        return {"status": "mismatch", "message": replay.mismatch}
    if replay.undecided:
        return {"status": "undecided", "message": replay.undecided}
    if replay.differentiated or (error and replay.grad_outputs):
        return {"status": "undecided", "message": "the test differentiates through your function's result"}
    if error:
        return {"status": "failed", "message": error}
    return {"status": "passed", "message": ""}


def main() -> None:
    """Serve requests until stdin closes. What tests print goes nowhere; answers go to the original stdout."""
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    memory = int(os.environ.get("COURSE_REPLAY_MEMORY", str(6 << 30)))
    resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    import course_utils.checks  # noqa: F401  (imported before the first test's clock starts)

    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        try:
            answer = run_part(json.loads(line))
        except Exception as err:  # a bug here must not look like the student's failure
            answer = {"status": "undecided", "message": f"the grader's replay failed ({type(err).__name__}: {err})"}
        out.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
