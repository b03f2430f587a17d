"""Timing for ``bench``: both sides of a ratio in alternating rounds, and the arithmetic yardstick."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch.utils._pytree import tree_map


# --------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    """Wait for the GPU: CUDA calls return before the work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], repeats: int, device: torch.device, warmup: int = 1) -> float:
    """Seconds for ``repeats`` calls of ``fn`` after ``warmup`` untimed calls (first-call costs excluded)."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return time.perf_counter() - start


def side_by_side(sides: dict[str, tuple[Callable[[], Any], int, Callable[[], Any]]], rounds: int,
                 device: torch.device) -> dict[str, float]:  # fmt: skip
    """Seconds per call of each side, measured in alternating rounds: kit, baseline, kit, ...

    ``sides``: name -> (function, timed calls per round, warm-up function). A change in
    machine load (other programs on shared cores) then hits both sides alike. Each round
    starts with an untimed warm-up call of the side, because the other side has just
    evicted its memory: after ResNet-50's large activations are freed, the first decoder
    step pays page faults that a real training loop, running the decoder alone, never sees.
    """
    total = {name: 0.0 for name in sides}
    for _ in range(rounds):
        for name, (fn, calls, warm) in sides.items():
            warm()
            total[name] += timed(fn, calls, device, warmup=0)
    return {name: total[name] / (rounds * calls) for name, (_, calls, _) in sides.items()}


def cycle(loader: Any) -> Iterator:
    """Batches of ``loader`` forever (a new epoch when one ends)."""
    while True:
        yield from loader


def yardstick(device: torch.device, n: int = 2048) -> tuple[Callable[[], Any], float]:
    """One large float32 matrix product ``(n, n) @ (n, n)`` and its GFLOP: about the most this
    machine's float32 arithmetic gives, the yardstick for the GFLOP/s of each side."""
    a = torch.randn(n, n, device=device)
    return lambda: a @ a, 2 * n**3 / 1e9


def matmul_gflops(device: torch.device, repeats: int = 5) -> float:
    """GFLOP/s of the :func:`yardstick` product, timed once (the machine lines of a report)."""
    product, gflop = yardstick(device)
    return gflop * repeats / timed(product, repeats, device, warmup=2)


def count_flops(fn: Callable[[], Any]) -> float:
    """Floating-point operations of the matrix products and convolutions run by ``fn()``
    (``torch.utils.flop_counter``: element-wise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


# --------------------------------------------------------------------------- matrix products alone
@dataclass(frozen=True)
class Operand:
    """Where a matrix product's operand lay: its memory (by address), shape, strides, offset and type."""

    storage: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int
    dtype: torch.dtype
    device: torch.device

    def extent(self) -> int:
        """Elements of memory the operand spans from the start of its storage."""
        return self.offset + 1 + sum((n - 1) * s for n, s in zip(self.shape, self.stride)) if all(self.shape) else 0


def _operand(x: Any) -> Any:
    if not isinstance(x, torch.Tensor):
        return x
    return Operand(x.untyped_storage().data_ptr(), tuple(x.shape), tuple(x.stride()), x.storage_offset(), x.dtype,
                   x.device)  # fmt: skip


def record_products(fn: Callable[[], Any]) -> list[tuple[Any, tuple, dict]]:
    """The matrix products ``fn()`` runs, backward included (``mm``, ``addmm``, ``bmm``, ``baddbmm``:
    what ``count_flops`` counts in a decoder), in order, each as ``(op, args, kwargs)`` with every
    tensor replaced by its :class:`Operand`.

    A ``TorchDispatchMode`` (the mechanism ``torch.utils.flop_counter`` is built on) sees every
    operation below autograd, so the products of the backward pass are seen too.
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    products = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default}
    calls: list[tuple[Any, tuple, dict]] = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN202
            kwargs = kwargs or {}
            if func in products:
                calls.append((func, tree_map(_operand, args), tree_map(_operand, kwargs)))
            return func(*args, **kwargs)

    with Recorder():
        fn()
    return calls


def materialize(calls: list[tuple[Any, tuple, dict]]) -> list[tuple[Any, tuple, dict]]:
    """The recorded products with real tensors again: random numbers laid out as the originals were.
    Operands that shared memory in ``fn()`` (a weight read at every word, and the transposed view of
    it that the backward pass reads) share one buffer again, so the products find the same data in
    the caches as they did."""
    size: dict[tuple[int, torch.dtype, torch.device], int] = {}

    def need(x: Any) -> Any:
        if isinstance(x, Operand):
            key = (x.storage, x.dtype, x.device)
            size[key] = max(size.get(key, 0), x.extent())
        return x

    for _, args, kwargs in calls:
        tree_map(need, (args, kwargs))
    buffers = {key: torch.empty(n, dtype=key[1], device=key[2]).uniform_(-1, 1) for key, n in size.items()}

    def view(x: Any) -> Any:
        if isinstance(x, Operand):
            return buffers[(x.storage, x.dtype, x.device)].as_strided(x.shape, x.stride, x.offset)
        return x

    return [(func, tree_map(view, args), tree_map(view, kwargs)) for func, args, kwargs in calls]


def replay_products(calls: list[tuple[Any, tuple, dict]]) -> Callable[[], None]:
    """A function that runs the recorded products again, alone (:func:`materialize`). Timing it gives
    the most a computation made of these products could reach with no other work: the bound printed
    beside ``decoder_matmul_share``."""
    ready = materialize(calls)

    def replay() -> None:
        for func, args, kwargs in ready:
            func(*args, **kwargs)

    return replay
