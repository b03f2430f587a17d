"""Peak memory of one training step, measured in a fresh process (``bench``)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import torch

from course_utils.captioning.attention import ShowAttendTell
from course_utils.cli.cpu import speed_up_cpu
from course_utils.tools.bench_data import (
    ENCODER_DIM,
    GRID,
    BenchData,
    Sizes,
    caption_loader,
    decoder_model,
    kit_loss,
    kit_optimizer,
    train_step,
)


# --------------------------------------------------------------------------- memory, in a fresh process
def _proc_status_mb(field: str) -> Optional[float]:
    """``VmRSS`` / ``VmHWM`` of this process in MB from ``/proc/self/status`` (Linux), else None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def memory_probe(batch: int, vocab_size: int, lengths: list[int], device: str) -> dict[str, Any]:
    """Run in a fresh process: one warm-up step, then measure one training step on cached-size features.

    CUDA: ``torch.cuda.max_memory_allocated`` during the step. CPU (Linux): the peak
    resident memory of the process during the step, after resetting the kernel's
    high-water mark (``/proc/self/clear_refs``); elsewhere the process's lifetime peak.
    """
    dev = torch.device(device)
    if dev.type == "cpu":
        speed_up_cpu()  # as the demo command does
    torch.manual_seed(0)
    model = decoder_model(ShowAttendTell, vocab_size).to(dev).train()
    optimizer = kit_optimizer(model)
    lens = torch.tensor([lengths[i % len(lengths)] for i in range(batch)])
    captions = torch.randint(4, vocab_size, (batch, int(lens.max())))
    captions[torch.arange(captions.shape[1])[None] >= lens[:, None]] = 0
    features = torch.randn(batch, GRID * GRID, ENCODER_DIM).half().float()  # as read from the float16 cache
    step = lambda: train_step(model, optimizer, (features, captions, lens), dev, kit_loss)
    step()  # warm-up: Adam's state and the allocator's pools exist from now on
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        before = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        step()
        torch.cuda.synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev)
        return {"peak_mb": peak / 2**20, "before_mb": before / 2**20, "what": "torch.cuda.max_memory_allocated"}
    reset = False
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
        reset = True
    before = _proc_status_mb("VmRSS")
    step()
    peak = _proc_status_mb("VmHWM") if reset else None
    if peak is None:
        import resource

        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
        return {"peak_mb": peak, "before_mb": before, "what": "peak RSS of the whole process (ru_maxrss)"}
    return {"peak_mb": peak, "before_mb": before, "what": "peak RSS of the process during the step (VmHWM)"}


def measure_memory(bench: BenchData, sizes: Sizes, vocab_size: int, device: torch.device) -> dict[str, Any]:
    """Run :func:`memory_probe` in a fresh Python so no earlier measure inflates the peak."""
    lengths = [len(ids) for _, ids in caption_loader(bench, sizes, features=bench.features).dataset.pairs]
    args = json.dumps([sizes.memory_batch, vocab_size, lengths[:512], str(device)])
    code = (
        "import json, sys; from course_utils.tools.bench_memory import memory_probe; "
        "print(json.dumps(memory_probe(*json.loads(sys.argv[1]))))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed: {done.stderr.strip().splitlines()[-1:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "value": result["peak_mb"], "batch": sizes.memory_batch}
