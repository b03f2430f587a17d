"""A stand-in accelerator that computes: CPU numbers behind tensors that say they are elsewhere.

``tests/test_devices.py`` puts models on PyTorch's ``meta`` device to play a GPU: mixing
devices fails there as on CUDA, but meta tensors hold no numbers, so every path that
decides with data (``nonzero``, ``topk`` results used as indices, a loop that stops at
``<end>``) cannot run on it: the ``caption`` command, beam search, the feature cache.

:func:`accelerator` fills that gap. Inside it, a tensor sent to the ``meta`` device
becomes an :class:`OnAccelerator`: it reports ``device.type == "meta"`` and really holds a
CPU tensor, so every operation computes real values, and a ``TorchDispatchMode`` checks
each operation (forward and backward) the way CUDA does:

* tensors on the accelerator meeting CPU tensors in one operation raise ``RuntimeError
  ("Expected all tensors to be on the same device")``, except where CUDA accepts it:
  0-dim CPU tensors (Python-number-like scalars), CPU index tensors, and copies;
* ``.numpy()``, ``np.asarray``, matplotlib and friends refuse an accelerator tensor
  (PyTorch itself raises "can't convert meta device type tensor to numpy");
* ``.cpu()`` / ``.to("cpu")`` bring real values back, ``.to("meta")`` or a factory with
  ``device=<the accelerator>`` (``torch.zeros(..., device=x.device)``, ``torch.tensor(...,
  device=...)``) puts them there;
  ``.item()``, ``.tolist()``, ``float()``, ``bool()`` read values, as on a GPU.

Usage::

    with accelerator() as device:
        model = build_model().to(device)
        out = my_function(model, cpu_input)   # raises where the code mixes devices
        assert_on_cpu(out)                    # from test_devices
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

DEVICE = torch.device("meta")
aten = torch.ops.aten

# Operations that CUDA runs with tensors of both devices: copies between them.
COPIES = {"copy_", "_copy_from", "_copy_from_and_resize", "_to_copy", "lift_fresh", "lift_fresh_copy"}
# Advanced indexing: a device tensor accepts CPU index tensors (CUDA moves them itself), a
# CPU tensor refuses device ones.
INDEXING = {"index", "_unsafe_index", "index_put", "index_put_", "_index_put_impl_", "_unsafe_index_put"}
# Arguments that PyTorch wants on the CPU whatever the device: the lengths and batch sizes of
# packed sequences. (operation, overload) -> position.
CPU_ARGUMENTS = {("_pack_padded_sequence", "default"): 1, ("_pad_packed_sequence", "default"): 1,
                 ("lstm", "data"): 1, ("gru", "data"): 1, ("rnn_tanh", "data"): 1, ("rnn_relu", "data"): 1}  # fmt: skip
CPU_OUTPUTS = {"_pack_padded_sequence": 1, "_pad_packed_sequence": 1}  # batch sizes, lengths: output position


class OnAccelerator(torch.Tensor):
    """A CPU tensor ``elem`` that reports the stand-in device (``meta``)."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor) -> OnAccelerator:
        r = torch.Tensor._make_wrapper_subclass(  # type: ignore[attr-defined]
            cls, elem.size(), strides=elem.stride(), storage_offset=elem.storage_offset(), dtype=elem.dtype,
            layout=elem.layout, device=DEVICE, requires_grad=elem.requires_grad,
        )  # fmt: skip
        r.elem = elem
        return r

    def __repr__(self) -> str:  # printing reads values, as a GPU tensor's repr does
        return f"OnAccelerator({self.elem!r})"

    def tolist(self) -> Any:  # PyTorch refuses .tolist() on subclasses; a GPU tensor reads its values
        return self.elem.tolist()

    def numpy(self, *args: Any, **kwargs: Any) -> Any:  # what PyTorch says of a CUDA tensor
        raise TypeError("can't convert meta device type tensor to numpy. Use Tensor.cpu() to copy the tensor "
                        "to host memory first.")  # fmt: skip

    def __reduce_ex__(self, protocol: int) -> Any:  # torch.save of a device tensor: its values
        return (_restore, (self.elem.detach().clone(),))

    __torch_function__ = torch._C._disabled_torch_function_impl

    @classmethod
    def __torch_dispatch__(cls, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        return _run(func, args, kwargs or {})


def _restore(elem: torch.Tensor) -> torch.Tensor:
    return elem


class DeviceMixing(RuntimeError):
    pass


def _is_accel_device(device: Any) -> bool:
    return device is not None and torch.device(device).type == DEVICE.type


def _run(func: Any, args: tuple, kwargs: dict) -> Any:
    """Check the devices of one aten operation, run it on the CPU values, wrap what belongs on the device."""
    name = func.__name__.split(".")[0]
    exempt: list = []  # tensors exempt from the same-device rule
    cpu_arg = CPU_ARGUMENTS.get((name, func._overloadname))
    if cpu_arg is not None and len(args) > cpu_arg:
        exempt.append(args[cpu_arg])
    if name in INDEXING and len(args) > 1:  # (self, indices, ...): the indices follow their own rule
        exempt += [i for i in args[1] if isinstance(i, torch.Tensor)]
        if not isinstance(args[0], OnAccelerator) and any(isinstance(i, OnAccelerator) for i in exempt):
            raise DeviceMixing(f"indices should be either on cpu or on the same device as the indexed tensor (cpu); "
                               f"in {name}")  # fmt: skip
    flat = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
    if any(t.is_meta and not isinstance(t, OnAccelerator) for t in flat):
        raise DeviceMixing(f"{name}: a real meta tensor (no values) met the stand-in accelerator")
    on_device = [t for t in flat if isinstance(t, OnAccelerator)]
    checked = [t for t in flat if not any(t is e for e in exempt)]
    on_cpu = [t for t in checked if not isinstance(t, OnAccelerator) and t.dim() > 0]  # 0-dim: a scalar
    if on_device and on_cpu and name not in COPIES:
        raise DeviceMixing(
            f"Expected all tensors to be on the same device, but found at least two devices, meta and cpu! "
            f"(in {name}: {len(on_device)} on the accelerator, CPU shapes {[tuple(t.shape) for t in on_cpu]})"
        )

    target = kwargs.get("device")
    wrap_result = bool(on_device)
    if target is not None:
        wrap_result = _is_accel_device(target)
        if wrap_result:
            kwargs = {**kwargs, "device": torch.device("cpu")}
    if name == "_to_copy" and target is None and on_device:
        wrap_result = True

    wrappers = {id(t.elem): t for t in on_device}
    out = func(*tree_map(_unwrap, args), **tree_map(_unwrap, kwargs))

    def wrap(x: Any) -> Any:
        if not isinstance(x, torch.Tensor):
            return x
        if id(x) in wrappers:  # an in-place operation returns its input: give back the same wrapper
            return wrappers[id(x)]
        return OnAccelerator(x) if wrap_result else x

    if name in CPU_OUTPUTS and isinstance(out, tuple):
        stays = CPU_OUTPUTS[name]
        return tuple(x if i == stays else wrap(x) for i, x in enumerate(out))
    return tree_map(wrap, out)


def _unwrap(x: Any) -> Any:
    return x.elem if isinstance(x, OnAccelerator) else x


class _Mode(TorchDispatchMode):
    """Sees every operation, plain CPU ones too, so that ``.to("meta")`` and factories land on the device."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        return _run(func, args, kwargs or {})


def _building(real: Any) -> Any:
    """``torch.tensor`` / ``torch.as_tensor`` with ``device=<the stand-in>``: built on the CPU, then
    moved. (PyTorch builds them below the dispatch modes, which would leave a meta tensor
    without values.)"""

    def build(data: Any, *args: Any, device: Any = None, requires_grad: bool = False, **kwargs: Any) -> Any:
        if device is None or not _is_accel_device(device):
            return real(data, *args, device=device, **kwargs, **({"requires_grad": True} if requires_grad else {}))
        return real(data, *args, **kwargs).to(DEVICE).requires_grad_(requires_grad)

    return build


@contextlib.contextmanager
def accelerator() -> Iterator[torch.device]:
    """The stand-in accelerator for the block: yields the device to move models and tensors to."""
    real = {name: getattr(torch, name) for name in ("tensor", "as_tensor")}
    try:
        for name, fn in real.items():
            setattr(torch, name, _building(fn))
        with _Mode():
            yield DEVICE
    finally:
        for name, fn in real.items():
            setattr(torch, name, fn)
