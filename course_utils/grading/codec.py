"""Values that cross the kernel's boundary: a digest of a call's inputs, its outputs as JSON and arrays.

The grader decides a test outside the student's process (``replay.py``): the kernel records
what each call of a student function returned (:class:`Encoder`: JSON plus numpy arrays,
never pickle) and a digest of what it was given (:func:`digest`); the grader runs the same
test in a process of its own, where the student's function is replaced by one that hands
back the recorded outputs, for the same inputs only. Both sides run this module, so a
digest computed in the kernel and one computed by the grader agree when the inputs do.

Inputs the grader cannot compare safely raise :class:`Unhashable`: an object whose class
was defined in the notebook or the test (``__main__``: its methods could do anything when
the student calls them), a callable of ``__main__``, a model with hooks, a C object. Outputs
that are not data (a model, a generator, a custom object) raise :class:`Unserialisable`.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import sys
import types
from typing import Any, Callable, Optional

import numpy as np

MAX_ARRAY_BYTES = 64 << 20  # what one test part may record, arrays and text together
MAX_NODES = 200_000  # values in one recording (a list of a million floats belongs in an array)
MAX_DEPTH = 12  # nesting of containers and objects
STUDENT_MARK = "__course_student__"  # set on recorders and replayers: the same "function" on both sides


class Unhashable(Exception):
    """Inputs the grader cannot compare between the kernel and its own process."""


class Unserialisable(Exception):
    """An output that is not data the grader can rebuild (a model, a custom object, too large)."""


def _torch() -> Any:
    return sys.modules.get("torch")  # never imported here: a notebook without torch does not pay for it


def _main_defined(obj: Any) -> bool:
    """True for classes and functions written in the notebook or the test (module ``__main__``)."""
    return getattr(obj, "__module__", None) == "__main__"


def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


# --------------------------------------------------------------------------- digests
def digest(obj: Any) -> str:
    """sha256 of ``obj``'s canonical form (type, shape, dtype and bytes of every array in it)."""
    h = hashlib.sha256()
    _feed(h, obj, 0, [])
    return h.hexdigest()


def call_digest(args: tuple, kwargs: dict) -> tuple[str, list[str]]:
    """The digest of a whole call and of each argument (positional ones, then keywords by name)."""
    parts = [digest(a) for a in args] + [digest((k, v)) for k, v in kwargs.items()]
    return hashlib.sha256(" ".join(parts).encode()).hexdigest(), parts


def _feed(h: Any, obj: Any, depth: int, stack: list[int]) -> None:
    if depth > MAX_DEPTH:
        raise Unhashable("values nested too deeply")
    torch = _torch()
    kind = type(obj)
    h.update(f"<{kind.__module__}.{kind.__qualname__}>".encode())
    if obj is None or kind in (bool, int, str, complex) or isinstance(obj, (int, str)):
        h.update(repr(obj).encode())
    elif isinstance(obj, float):
        h.update(struct.pack("<d", obj))
    elif isinstance(obj, (bytes, bytearray)):
        h.update(bytes(obj))
    elif isinstance(obj, np.ndarray) or isinstance(obj, np.generic):
        _feed_array(h, np.asarray(obj))
    elif torch is not None and isinstance(obj, torch.Tensor):
        _feed_tensor(h, obj, depth, stack)
    elif id(obj) in stack:  # a cycle: say where it points back to
        h.update(f"cycle{stack.index(id(obj))}".encode())
    else:
        stack.append(id(obj))
        try:
            _feed_container(h, obj, depth, stack, torch)
        finally:
            stack.pop()


def _feed_array(h: Any, a: np.ndarray) -> None:
    if a.dtype.hasobject:
        raise Unhashable("an array of Python objects")
    a = a if a.flags.c_contiguous else a.copy(order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(memoryview(a.reshape(-1).view(np.uint8)))


def _tensor_array(t: Any) -> np.ndarray:
    """A CPU numpy copy of a dense tensor; dtypes numpy lacks (bfloat16) as float32, which holds them exactly."""
    torch = _torch()
    if t.layout != torch.strided or t.is_quantized:
        raise Unhashable(f"a {t.layout} tensor")
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    if t.is_conj():
        t = t.resolve_conj()
    return t.contiguous().numpy()


def _feed_tensor(h: Any, t: Any, depth: int, stack: list[int]) -> None:
    h.update(f"{t.dtype}{tuple(t.shape)}{t.requires_grad}".encode())
    _feed_array(h, _tensor_array(t))
    if t.is_leaf and t.grad is not None:
        h.update(b"grad")
        _feed_tensor(h, t.grad, depth + 1, stack)


def _feed_container(h: Any, obj: Any, depth: int, stack: list[int], torch: Any) -> None:
    mark = getattr(obj, STUDENT_MARK, None)
    if isinstance(mark, str):  # a student's function handed to another: the same on both sides
        h.update(mark.encode())
    elif isinstance(obj, (list, tuple)):
        h.update(str(len(obj)).encode())
        for v in obj:
            _feed(h, v, depth + 1, stack)
    elif isinstance(obj, dict):
        h.update(str(len(obj)).encode())
        for k, v in obj.items():
            _feed(h, k, depth + 1, stack)
            _feed(h, v, depth + 1, stack)
    elif isinstance(obj, (set, frozenset)):  # no order: sort the digests of the items
        h.update("".join(sorted(digest(v) for v in obj)).encode())
    elif isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        _feed_callable(h, obj, depth, stack)
    elif isinstance(obj, types.ModuleType):
        h.update(obj.__name__.encode())
    elif torch is not None and isinstance(obj, (torch.dtype, torch.device, torch.Size)):
        h.update(str(obj).encode())
    elif torch is not None and isinstance(obj, torch.Generator):
        h.update(str(obj.device).encode())
        _feed_tensor(h, obj.get_state(), depth, stack)
    elif torch is not None and isinstance(obj, torch.nn.Module):
        _feed_module(h, obj, depth, stack)
    else:
        _feed_object(h, obj, depth, stack)


def _feed_callable(h: Any, obj: Any, depth: int, stack: list[int]) -> None:
    if isinstance(obj, types.MethodType):
        h.update(obj.__func__.__name__.encode())
        _feed(h, obj.__self__, depth + 1, stack)
        return
    if _main_defined(obj):  # written in the test or notebook: calling it could record or change anything
        raise Unhashable(f"{getattr(obj, '__qualname__', obj)!s} (written in the test or the notebook)")
    h.update(_name(obj).encode())


def _feed_module(h: Any, m: Any, depth: int, stack: list[int]) -> None:
    """A model: its class, mode, every parameter and buffer (values, requires_grad, gradient)."""
    for name, sub in m.named_modules():
        if _main_defined(type(sub)):
            raise Unhashable(f"a model of class {type(sub).__qualname__} (written in the test or the notebook)")
        hooks = [f for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
                 for f in getattr(sub, attr, {}).values()]
        if any(_main_defined(f) or not isinstance(f, types.FunctionType) for f in hooks):
            raise Unhashable(f"a model with hooks ({name or type(sub).__qualname__})")
        h.update(f"{name}:{_name(type(sub))}:{sub.training}".encode())
        plain = {k: v for k, v in vars(sub).items() if not k.startswith("_") and k != "training"}
        _feed(h, plain, depth + 1, stack)
    for name, t in m.state_dict(keep_vars=True).items():
        h.update(name.encode())
        _feed_tensor(h, t, depth + 1, stack)


def _feed_object(h: Any, obj: Any, depth: int, stack: list[int]) -> None:
    kind = type(obj)
    if _main_defined(kind):
        raise Unhashable(f"an object of class {kind.__qualname__} (written in the test or the notebook)")
    fields = getattr(obj, "__dict__", None)
    slots = [s for c in kind.__mro__ for s in getattr(c, "__slots__", ()) if isinstance(s, str)]
    if not isinstance(fields, dict) and not slots:
        raise Unhashable(f"an object of class {_name(kind)}")
    state = dict(sorted((fields or {}).items()))
    state.update({s: getattr(obj, s) for s in slots if hasattr(obj, s) and s not in ("__dict__", "__weakref__")})
    _feed(h, state, depth + 1, stack)


# --------------------------------------------------------------------------- outputs
class Encoder:
    """Turns outputs into JSON trees; the arrays they hold go to :attr:`arrays` (saved as .npz)."""

    def __init__(self, max_bytes: int = MAX_ARRAY_BYTES):
        self.arrays: list[np.ndarray] = []
        self.bytes, self.nodes, self.max_bytes = 0, 0, max_bytes

    def _count(self, size: int) -> None:
        self.bytes += size
        self.nodes += 1
        if self.bytes > self.max_bytes or self.nodes > MAX_NODES:
            raise Unserialisable(f"more than {self.max_bytes >> 20} MB of results in one test")

    def _array(self, a: np.ndarray) -> int:
        if a.dtype.hasobject:
            raise Unserialisable("an array of Python objects")
        self._count(a.nbytes)
        self.arrays.append(a.copy(order="C"))  # a copy: the array may be a live buffer the test changes later
        return len(self.arrays) - 1

    def encode(self, obj: Any, depth: int = 0) -> Any:
        """A JSON tree for ``obj``; raises :class:`Unserialisable` for anything that is not data."""
        if depth > MAX_DEPTH:
            raise Unserialisable("values nested too deeply")
        torch, kind = _torch(), type(obj)
        if obj is None or kind in (bool, int, float, str):
            self._count(len(obj) if kind is str else 8)
            return obj
        if isinstance(obj, np.ndarray) and not obj.dtype.hasobject:
            return {"t": "array", "i": self._array(np.asarray(obj))}
        if isinstance(obj, np.generic):
            return {"t": "scalar", "i": self._array(np.asarray(obj))}
        if torch is not None and isinstance(obj, torch.Tensor):
            return self._tensor(obj)
        if kind in (bytes, bytearray):
            self._count(len(obj))
            return {"t": kind.__name__, "v": base64.b64encode(obj).decode("ascii")}
        if kind is complex:
            return {"t": "complex", "v": [obj.real, obj.imag]}
        for base in (bool, int, float, str):  # IntEnum, a str subclass...: their plain value
            if isinstance(obj, base):
                return self.encode(base(obj), depth)
        if torch is not None and isinstance(obj, torch.Size):
            return {"t": "size", "v": list(obj)}
        if torch is not None and isinstance(obj, (torch.dtype, torch.device)):
            return {"t": type(obj).__name__, "v": str(obj)}
        if isinstance(obj, tuple):
            items = [self.encode(v, depth + 1) for v in obj]
            fields = getattr(kind, "_fields", None)
            if kind is not tuple and isinstance(fields, tuple) and len(fields) == len(obj):
                return {"t": "namedtuple", "name": kind.__name__, "fields": list(fields), "v": items}
            return {"t": "tuple", "v": items}
        if isinstance(obj, list):
            return {"t": "list", "v": [self.encode(v, depth + 1) for v in obj]}
        if isinstance(obj, dict):
            return {"t": "dict", "v": [[self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in obj.items()]}
        if isinstance(obj, (set, frozenset)):
            return {"t": "set" if isinstance(obj, set) else "frozenset",
                    "v": [self.encode(v, depth + 1) for v in obj]}
        raise Unserialisable(f"a {_name(kind)} object")

    def _tensor(self, t: Any) -> dict[str, Any]:
        try:
            data = _tensor_array(t)
        except Unhashable as err:
            raise Unserialisable(str(err)) from None
        tree = {"t": "tensor", "i": self._array(data), "dtype": str(t.dtype).replace("torch.", ""),
                "rg": bool(t.requires_grad)}
        if t.is_leaf and t.grad is not None:
            tree["grad"] = self._tensor(t.grad)
        return tree


def decode(tree: Any, arrays: Callable[[int], np.ndarray], on_grad: Optional[Callable[[Any], None]] = None) -> Any:
    """The value :meth:`Encoder.encode` made ``tree`` from. ``arrays(i)`` gives the i-th array;
    ``on_grad`` sees every tensor rebuilt with ``requires_grad`` (the grader watches them)."""
    if not isinstance(tree, dict):
        return tree
    t, v = tree.get("t"), tree.get("v")
    if t == "array":
        return arrays(tree["i"]).copy()
    if t == "scalar":
        return arrays(tree["i"])[()]
    if t == "tensor":
        return rebuild_tensor(tree, arrays, on_grad)
    if t in ("bytes", "bytearray"):
        data = base64.b64decode(v)
        return data if t == "bytes" else bytearray(data)
    if t == "complex":
        return complex(*v)
    if t in ("size", "dtype", "device"):
        torch = _import_torch()
        return torch.Size(v) if t == "size" else getattr(torch, v.replace("torch.", "")) if t == "dtype" \
            else torch.device(v)
    items = [decode(x, arrays, on_grad) for x in v] if t in ("tuple", "list", "set", "frozenset", "namedtuple") \
        else None
    if t == "namedtuple":
        import collections

        return collections.namedtuple(str(tree["name"]), [str(f) for f in tree["fields"]])(*items)
    if t in ("tuple", "list", "set", "frozenset"):
        return {"tuple": tuple, "list": list, "set": set, "frozenset": frozenset}[t](items)
    if t == "dict":
        return {decode(k, arrays, on_grad): decode(x, arrays, on_grad) for k, x in v}
    raise ValueError(f"unknown recorded value {t!r}")


def rebuild_tensor(tree: dict[str, Any], arrays: Callable[[int], np.ndarray],
                   on_grad: Optional[Callable[[Any], None]] = None) -> Any:
    torch = _import_torch()
    t = torch.from_numpy(arrays(tree["i"]).copy()).to(getattr(torch, tree["dtype"]))
    if tree.get("rg"):
        t.requires_grad_(True)
        if on_grad:
            on_grad(t)
    if tree.get("grad") is not None:
        t.grad = rebuild_tensor(tree["grad"], arrays)
    return t


def _import_torch() -> Any:
    import torch

    return torch
