"""Timing for ``bench``: both sides of a ratio in alternating rounds, and the arithmetic yardstick."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import torch


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


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of one large float32 matrix product ``(n, n) @ (n, n)``: about the most this
    machine's float32 arithmetic gives, the yardstick for the GFLOP/s of each side."""
    a = torch.randn(n, n, device=device)
    return 2 * n**3 * repeats / timed(lambda: a @ a, repeats, device, warmup=2) / 1e9


def count_flops(fn: Callable[[], Any]) -> float:
    """Floating-point operations of the matrix products and convolutions run by ``fn()``
    (``torch.utils.flop_counter``: element-wise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())
