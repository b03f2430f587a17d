"""What a call of a student function changes besides its result, and the random state of a test.

A test may go on with what the student's function did to its arguments (an array filled in
place, a generator it drew from, a model it switched to evaluation mode) and with the global
random state it consumed. The kernel notes those changes (:func:`note_change`,
:func:`note_rng`); the grader's replay applies them (:func:`apply_change`, :func:`apply_rng`),
so the rest of the test sees the same values on both sides. Changes the grader cannot
replay (an attribute of a custom object) raise :class:`~.codec.Unserialisable`.

:func:`seed_all` gives every test part the same random state in both places: tests that
draw unseeded numbers (``torch.randn(3, 4)``) build the same inputs in the kernel and in
the grader.
"""

from __future__ import annotations

import importlib.abc
import random
import sys
from typing import Any, Callable, Optional

import numpy as np

from .codec import Encoder, Unserialisable, decode, digest, rebuild_tensor

SEED = 0


def _torch() -> Any:
    return sys.modules.get("torch")


# --------------------------------------------------------------------------- arguments
def snapshot(obj: Any) -> Any:
    """What :func:`note_change` compares: a model's parts one by one, anything else as one digest."""
    torch = _torch()
    if torch is not None and isinstance(obj, torch.nn.Module):  # flags, values and gradients apart: freezing
        params = dict(obj.named_parameters())                    # a ResNet must not record its 100 MB of weights
        return {"training": {n: m.training for n, m in obj.named_modules()},
                "rg": {n: p.requires_grad for n, p in params.items()},
                "data": {n: digest(t.detach()) for n, t in obj.state_dict(keep_vars=True).items()},
                "grads": {n: None if p.grad is None else digest(p.grad.detach()) for n, p in params.items()},
                "plain": digest([{k: v for k, v in vars(m).items() if not k.startswith("_") and k != "training"}
                                 for m in obj.modules()])}
    return digest(obj)


def note_change(obj: Any, before: Any, enc: Encoder) -> Optional[dict[str, Any]]:
    """How ``obj`` changed since its :func:`snapshot` ``before`` (None: it did not)."""
    after = snapshot(obj)
    if after == before:
        return None
    torch = _torch()
    if isinstance(obj, np.ndarray):
        return {"t": "array", "v": enc.encode(obj)}
    if torch is not None and isinstance(obj, torch.Tensor):
        return _tensor_change(obj, enc)
    if type(obj) in (list, dict):
        return {"t": "replace", "v": enc.encode(obj)}
    if torch is not None and isinstance(obj, torch.Generator):
        return {"t": "generator", "v": enc.encode(obj.get_state())}
    if torch is not None and isinstance(obj, torch.nn.Module):
        if after["plain"] != before["plain"] or set(after["data"]) != set(before["data"]):
            raise Unserialisable("the changes your function makes to the attributes of a model")
        tensors, params = obj.state_dict(keep_vars=True), dict(obj.named_parameters())
        return {"t": "module", "training": after["training"], "rg": after["rg"],
                "data": {n: enc.encode(tensors[n].detach()) for n, d in after["data"].items()
                         if d != before["data"][n]},
                "grads": {n: None if params[n].grad is None else enc.encode(params[n].grad.detach())
                          for n, d in after["grads"].items() if d != before["grads"][n]}}
    raise Unserialisable(f"the changes your function makes to a {type(obj).__name__} it is given")


def _tensor_change(t: Any, enc: Encoder) -> dict[str, Any]:
    tree = enc.encode(t.detach())
    tree["rg"] = bool(t.requires_grad)
    tree["grad"] = enc.encode(t.grad.detach()) if t.is_leaf and t.grad is not None else None
    return {"t": "tensor", "v": tree}


def apply_change(target: Any, change: dict[str, Any], arrays: Callable[[int], np.ndarray]) -> None:
    """Make ``target`` (the grader's own argument) what the kernel's became; ValueError when it cannot."""
    kind = change.get("t")
    if kind == "array":
        new = decode(change["v"], arrays)
        if not isinstance(target, np.ndarray) or target.shape != np.shape(new) or not target.flags.writeable:
            raise ValueError("an array argument changed shape")
        np.copyto(target, new, casting="unsafe")
    elif kind == "tensor":
        _apply_tensor(target, change["v"], arrays)
    elif kind == "replace" and type(target) in (list, dict):
        new = decode(change["v"], arrays)
        if isinstance(target, list):
            target[:] = new
        else:
            target.clear()
            target.update(new)
    elif kind == "generator":
        target.set_state(decode(change["v"], arrays))
    elif kind == "module":
        modules, params = dict(target.named_modules()), dict(target.named_parameters())
        tensors = target.state_dict(keep_vars=True)
        for name, flag in change["training"].items():
            modules[name].training = bool(flag)
        for name, flag in change["rg"].items():
            params[name].requires_grad_(bool(flag))
        for name, tree in change["data"].items():
            _copy_into(tensors[name], rebuild_tensor(tree, arrays))
        for name, tree in change["grads"].items():
            params[name].grad = None if tree is None else rebuild_tensor(tree, arrays)
    else:
        raise ValueError(f"a change of kind {kind!r} to a {type(target).__name__}")


def _apply_tensor(target: Any, tree: dict[str, Any], arrays: Callable[[int], np.ndarray]) -> None:
    _copy_into(target, rebuild_tensor({**tree, "rg": False, "grad": None}, arrays))
    if target.is_leaf:
        target.requires_grad_(bool(tree.get("rg")))
    target.grad = rebuild_tensor(tree["grad"], arrays) if tree.get("grad") else None


def _copy_into(target: Any, new: Any) -> None:
    torch = _torch()
    if not isinstance(target, torch.Tensor) or target.shape != new.shape:
        raise ValueError("a tensor argument changed shape")
    with torch.no_grad():
        target.copy_(new)


# --------------------------------------------------------------------------- random state
def rng_state() -> tuple[Any, Any, Any]:
    """Python's, numpy's (legacy) and torch's global random states, to compare before and after a call."""
    torch = _torch()
    return random.getstate(), np.random.get_state(), torch.get_rng_state() if torch is not None else None


def note_rng(before: tuple[Any, Any, Any], enc: Encoder) -> Optional[dict[str, Any]]:
    """The global random states after a call, if it drew from them (None: it did not)."""
    py, npy, tch = rng_state()
    same_np = npy[0] == before[1][0] and np.array_equal(npy[1], before[1][1]) and npy[2:] == before[1][2:]
    same_torch = tch is None or (before[2] is not None and bool((tch == before[2]).all()))
    if py == before[0] and same_np and same_torch:
        return None
    return {"random": [py[0], list(py[1]), py[2]],
            "numpy": [npy[0], enc.encode(npy[1]), int(npy[2]), int(npy[3]), float(npy[4])],
            "torch": enc.encode(tch) if tch is not None else None}


def apply_rng(state: dict[str, Any], arrays: Callable[[int], np.ndarray]) -> None:
    version, values, gauss = state["random"]
    random.setstate((version, tuple(values), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, decode(keys, arrays), pos, has_gauss, cached))
    if state.get("torch") is not None:
        _import_torch().set_rng_state(decode(state["torch"], arrays))


def _import_torch() -> Any:
    import torch

    return torch


def seed_all() -> Callable[[], None]:
    """Seed Python's, numpy's and torch's global generators; returns what to call at the end of the part.

    When torch is not imported yet, it is seeded as soon as the test imports it (torch seeds
    itself from the clock otherwise), so the kernel and the grader agree without paying for
    an import that the test may not need.
    """
    random.seed(SEED)
    np.random.seed(SEED)
    torch = _torch()
    if torch is not None:
        torch.manual_seed(SEED)
        return lambda: None
    hook = _SeedOnImport()
    sys.meta_path.insert(0, hook)
    return lambda: sys.meta_path.remove(hook) if hook in sys.meta_path else None


class _SeedOnImport(importlib.abc.MetaPathFinder):
    """Finds ``torch`` with the other finders, and seeds it right after it is first imported."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "torch":
            return None
        for finder in [f for f in sys.meta_path if f is not self]:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None and spec.loader is not None:
                spec.loader = _SeedingLoader(spec.loader)
                return spec
        return None


class _SeedingLoader(importlib.abc.Loader):
    def __init__(self, inner: Any):
        self.inner = inner

    def __getattr__(self, name: str) -> Any:  # resources, get_filename...: the real loader's
        return getattr(self.inner, name)

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.inner.exec_module(module)
        module.manual_seed(SEED)
