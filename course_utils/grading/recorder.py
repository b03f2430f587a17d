"""The kernel's side of deciding a test outside it: note what the student's code handed the test.

While one test part runs in the student's kernel, each function the exercise's solution
defines is called through a :class:`Recorder` wrapper, which notes for every call a digest
of its inputs, its result (or the exception it raised), what it changed in its arguments
and whether it drew from the global random generators. Names of the solution that are data
(``SPECIALS = [...]``) and the notebook's values the test reads (``X`` in a visible check)
are noted too. :meth:`Recorder.save` writes it all to one ``.npz`` file (JSON and arrays,
no pickle) that the grader reads in a process of its own (``replay.py``).

Nothing here changes what the student's function computes or what the test sees; a
problem while recording only makes the part "not decided outside the kernel".
"""

from __future__ import annotations

import functools
import json
import os
import sys
import types
from typing import Any, Callable

import numpy as np

from .codec import STUDENT_MARK, Encoder, Unhashable, Unserialisable, call_digest
from .effects import note_change, note_rng, rng_state, snapshot

# modules a test may use from the notebook's namespace that the grader imports itself (a visible check
# that uses the notebook's `np` or `torch`); any other module stays in the kernel
IMPORTABLE = ("numpy", "torch", "scipy", "math", "random", "PIL", "skimage", "sklearn", "pandas", "course_utils",
              "collections", "itertools", "functools", "statistics", "string", "re", "json")


# what a solution's name may be to be recorded call by call; any other callable (a model instance, an object
# with __call__) stays as it is in the kernel, where the test may use its attributes: not replayed
FUNCTIONS = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, functools.partial)


def builtin_base(err: BaseException) -> str:
    """The first built-in exception class of ``err``'s class (``ValueError`` for a subclass of it)."""
    import builtins

    for cls in type(err).__mro__:
        if getattr(builtins, cls.__name__, None) is cls:
            return cls.__name__
    return "Exception"


class Recorder:
    """Notes the calls of one test part. ``names``: the solution's names; ``free``: what else the
    test reads from the notebook's namespace; ``namespace``: the copy of it the test runs in."""

    def __init__(self, names: list[str], free: list[str], namespace: dict[str, Any]):
        self.enc = Encoder()
        self.calls: list[dict[str, Any]] = []
        self.bound: dict[str, dict[str, Any]] = {}
        self.depth = 0  # calls in progress: only the test's own calls are noted, not the student's inner ones
        self.settings = _settings()
        for name in names:
            if name in namespace:
                self._bind(name, namespace, student=True)
        for name in free:
            if name in namespace and name not in names:
                self._bind(name, namespace, student=False)

    def _bind(self, name: str, namespace: dict[str, Any], student: bool) -> None:
        value = namespace[name]
        if isinstance(value, type):
            self.bound[name] = {"kind": "opaque", "why": f"`{name}` is a class"}
        elif isinstance(value, types.ModuleType):
            top = value.__name__.split(".")[0]
            self.bound[name] = ({"kind": "module", "v": value.__name__} if top in IMPORTABLE else
                                {"kind": "opaque", "why": f"the test uses the module {value.__name__}"})
        elif student and isinstance(value, FUNCTIONS):
            namespace[name] = self.wrap(name, value)
            self.bound[name] = {"kind": "function"}
        elif callable(value):
            self.bound[name] = {"kind": "opaque", "why": f"the test uses `{name}` from your notebook"}
        else:
            try:
                self.bound[name] = {"kind": "data", "v": self.enc.encode(value)}
            except Unserialisable as err:
                self.bound[name] = {"kind": "opaque", "why": f"`{name}` is {err}"}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` as the test calls it: the same results, each call noted."""
        recorder = self

        @functools.wraps(fn)
        def student_function(*args: Any, **kwargs: Any) -> Any:
            if recorder.depth:
                return fn(*args, **kwargs)
            entry, states, rng = recorder._before(name, args, kwargs)
            recorder.depth += 1
            try:
                out = fn(*args, **kwargs)
            except Exception as err:
                entry["raised"] = [builtin_base(err), str(err)[:2000]]
                raise
            else:
                recorder._result(entry, out)
                return out
            finally:
                recorder.depth -= 1
                recorder._after(entry, args, kwargs, states, rng)

        setattr(student_function, STUDENT_MARK, name)
        return student_function

    def _before(self, name: str, args: tuple, kwargs: dict) -> tuple[dict[str, Any], Any, Any]:
        entry: dict[str, Any] = {"name": name}
        self.calls.append(entry)
        try:
            entry["in"], entry["args"] = call_digest(args, kwargs)
            states = [snapshot(a) for a in args], {k: snapshot(v) for k, v in kwargs.items()}
        except Unhashable as err:
            entry["in"], entry["why"], states = None, f"its inputs hold {err}", None
        except Exception as err:  # a recording problem is never the student's fault nor a test failure
            entry["in"], entry["why"], states = None, f"recording failed ({type(err).__name__})", None
        return entry, states, rng_state()

    def _result(self, entry: dict[str, Any], out: Any) -> None:
        try:
            entry["out"] = self.enc.encode(out)
        except Unserialisable as err:
            entry["opaque"] = f"it returned {err}"
        except Exception as err:
            entry["opaque"] = f"its result could not be recorded ({type(err).__name__})"

    def _after(self, entry: dict[str, Any], args: tuple, kwargs: dict, states: Any, rng: Any) -> None:
        try:
            changes = []
            if states is not None:
                for i, (a, before) in enumerate(zip(args, states[0])):
                    change = note_change(a, before, self.enc)
                    if change is not None:
                        changes.append([i, change])
                for k, before in states[1].items():
                    change = note_change(kwargs[k], before, self.enc)
                    if change is not None:
                        changes.append([k, change])
            entry["changes"] = changes
            entry["rng"] = note_rng(rng, self.enc)
        except (Unserialisable, Unhashable) as err:
            entry["opaque"] = f"{err}"
        except Exception as err:
            entry["opaque"] = f"its effects could not be recorded ({type(err).__name__})"

    def save(self, path: str) -> None:
        """Write the recording (replaced atomically): arrays ``a0``, ``a1``... and the JSON ``manifest``."""
        manifest = {"calls": self.calls, "bound": self.bound, "settings": self.settings}
        text = json.dumps(manifest, allow_nan=True).encode("utf-8")
        arrays = {f"a{i}": a for i, a in enumerate(self.enc.arrays)}
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as f:
            np.savez(f, manifest=np.frombuffer(text, dtype=np.uint8), **arrays)
        os.replace(tmp, path)


def _settings() -> dict[str, Any]:
    """Global settings of torch that change the numbers a test computes, as the notebook left them."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    return {"dtype": str(torch.get_default_dtype()).replace("torch.", ""), "grad": torch.is_grad_enabled(),
            "threads": torch.get_num_threads()}
