"""Two process-wide settings that make PyTorch faster on CPUs, measured by ``bench``.

* **Flush subnormal floats to zero.** Values below about 1e-38 (from saturated softmax
  and sigmoid units) take about 100 times longer per operation on x86 CPUs; a decoder
  training step ran up to 3 times slower, at random, depending on the data.
* **Keep freed memory for the next step.** PyTorch asks the C library (glibc ``malloc``
  on Linux) for every tensor. By default glibc hands large freed blocks back to the
  operating system, so the next training step gets fresh pages, and the kernel zeroes
  each 4 KiB page on first touch: about 8,800 page faults per step of the attention
  captioner (batch 32, 12,509-word output layer), which then took 230 ms instead of 160 ms.
  ``mallopt`` tells glibc to keep up to ``keep_mb`` of freed memory and to serve blocks up
  to 32 MiB (its maximum) from it; larger blocks still come straight from the system.

``train.fit`` applies both on CPUs; ``bench`` applies them to both sides of every ratio.
Neither changes results beyond rounding of values too small to matter.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import Optional

import torch

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's <malloc.h>
MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc refuses larger values on 64-bit systems


def flush_denormals() -> bool:
    """Treat subnormal floats as zero on this CPU; False where the CPU cannot (not x86 with SSE3)."""
    return torch.set_flush_denormal(True)


def keep_freed_memory(keep_mb: int = 1024) -> bool:
    """Ask glibc to keep up to ``keep_mb`` MiB of freed memory for reuse (no-op elsewhere).

    Returns True when glibc accepted both settings, False on macOS, Windows or a Linux
    with another C library (musl), where nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # no C library found, or one without mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, keep_mb * 2**20))


def speed_up_cpu() -> dict[str, bool]:
    """Apply both settings; returns which ones took effect, e.g. ``{"flush_denormals": True, ...}``."""
    return {"flush_denormals": flush_denormals(), "keep_freed_memory": keep_freed_memory()}


def busy_cores(interval: float = 0.3) -> Optional[float]:
    """How many cores other programs use right now: CPU time over the next ``interval`` seconds.

    Not the load average: that is a 1-minute mean, still high just after ``pip install``
    finished (the README chains the two), when the cores are in fact free. psutil reads
    ``/proc/stat`` (or the system's equivalent) before and after; None where it is missing.
    """
    try:
        import psutil
    except ImportError:
        return None
    return psutil.cpu_percent(interval=interval) / 100 * (os.cpu_count() or 1)


def choose_threads(requested: int, busy: Optional[float] = None) -> str:
    """Set torch's CPU thread count and say why, in words for the printed ``threads:`` line.

    ``requested > 0`` is obeyed. Otherwise torch keeps its default (one thread per core),
    except on a small CPU whose cores other programs use *right now* (``busy``, measured
    by ``busy_cores`` when not given, above half the cores): torch's threads would then
    wait for each other at every operation (measured on 2 busy cores: one epoch took 69 s
    with 2 threads and 16 s with 1), so it uses 1.
    """
    cores = os.cpu_count() or 1
    if requested > 0:
        torch.set_num_threads(requested)
        return f"{requested} (as requested)"
    busy = busy_cores() if busy is None else busy
    if busy is not None and cores <= 4 and busy > 0.5 * cores:
        torch.set_num_threads(1)
        return f"1 (other programs are using {busy:.1f} of the {cores} cores now; --threads {cores} to use them all)"
    return f"{torch.get_num_threads()} ({cores} cores)"
