"""Where are we running, on what device, and with which settings?

Every notebook starts with ``ENV = setup()``, which

* detects the platform (Colab, Kaggle or a local machine),
* picks the device (CUDA, else Apple MPS, else CPU) and the mixed-precision dtype
  that device supports,
* seeds python, numpy and torch,
* chooses the data root and reads the fast-mode switch ``COURSE_FAST``,
* prints a short summary (and, on a Colab/Kaggle CPU runtime, how to get a GPU).

``python -m course_utils env`` prints the same summary from a shell.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, TypeVar

import numpy as np
import torch

T = TypeVar("T")

FAST_VAR = "COURSE_FAST"  # "1" = fast mode: small data, small models, few epochs
DATA_VAR = "COURSE_DATA"  # overrides the data root on every platform

GPU_HINT = {
    "colab": "No GPU: in Colab use 'Runtime > Change runtime type > T4 GPU', then run this cell again.",
    "kaggle": (
        "No GPU: in Kaggle open 'Settings > Accelerator > GPU T4 x2' (phone-verified account), "
        "then run this cell again."
    ),
}


# --------------------------------------------------------------------------- platform
def detect_platform(
    environ: Optional[Mapping[str, str]] = None,
    modules: Optional[Mapping[str, object]] = None,
    kaggle_dir: str = "/kaggle/working",
) -> str:
    """Return ``"colab"``, ``"kaggle"`` or ``"local"``.

    Colab is recognised by the ``google.colab`` module being imported or by the
    ``COLAB_RELEASE_TAG`` / ``COLAB_GPU`` variables (the variables also reach
    ``!python`` subprocesses, where the module is not imported). Kaggle is recognised
    by ``KAGGLE_KERNEL_RUN_TYPE`` or by its ``/kaggle/working`` folder.
    The arguments exist so tests can simulate each platform.
    """
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    if "google.colab" in modules or "COLAB_RELEASE_TAG" in environ or "COLAB_GPU" in environ:
        return "colab"
    if "KAGGLE_KERNEL_RUN_TYPE" in environ or Path(kaggle_dir).is_dir():
        return "kaggle"
    return "local"


# --------------------------------------------------------------------------- device
def pick_device(prefer: Optional[str] = None) -> torch.device:
    """CUDA if present, else Apple MPS, else CPU (``prefer`` forces one, e.g. ``"cpu"``)."""
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """True if a TCP connection to ``host:port`` opens within ``timeout`` seconds.

    Checked before any download so that an offline machine answers in milliseconds
    (no DNS) or at most ``timeout`` seconds (firewall), instead of hanging.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def amp_dtype_for(device_type: str, capability: Optional[tuple[int, int]] = None) -> Optional[torch.dtype]:
    """Mixed-precision dtype a device supports, or ``None`` (train in float32).

    * CUDA with compute capability >= 8.0 (Ampere, Hopper: A100, L4, H100) -> bfloat16,
      which needs no loss scaling;
    * older CUDA GPUs (T4 = 7.5, P100 = 6.0, V100 = 7.0) -> float16 with a GradScaler;
    * Apple MPS -> float16;
    * CPU -> None: autocast on CPU rarely speeds small models up, so the kit keeps float32.
    """
    if device_type == "cuda":
        if capability is None:
            capability = torch.cuda.get_device_capability()
        return torch.bfloat16 if capability >= (8, 0) else torch.float16
    if device_type == "mps":
        return torch.float16
    return None


@dataclass
class GPUInfo:
    """What ``nvidia-smi`` would tell a student: name, memory (GiB) and count."""

    name: str
    memory_gb: float
    count: int
    capability: tuple[int, int]

    def __str__(self) -> str:
        times = f" x{self.count}" if self.count > 1 else ""
        return f"{self.name}{times} ({self.memory_gb:.1f} GiB, compute {self.capability[0]}.{self.capability[1]})"


def gpu_info() -> Optional[GPUInfo]:
    """The first CUDA GPU's name, memory and capability, and how many there are; None without CUDA."""
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return GPUInfo(
        name=props.name,
        memory_gb=props.total_memory / 2**30,
        count=torch.cuda.device_count(),
        capability=(props.major, props.minor),
    )


# --------------------------------------------------------------------------- settings
def is_fast(environ: Optional[Mapping[str, str]] = None) -> bool:
    """True when ``COURSE_FAST=1`` (also accepts true/yes/on): shrink data, model and epochs."""
    environ = os.environ if environ is None else environ
    return environ.get(FAST_VAR, "").strip().lower() in ("1", "true", "yes", "on")


def data_root(platform: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> Path:
    """Folder for datasets, caches and checkpoints (not created here).

    ``COURSE_DATA`` wins everywhere; otherwise ``/content/course_data`` on Colab,
    ``/kaggle/working/course_data`` on Kaggle (``/kaggle/input`` is read-only), and
    ``$XDG_CACHE_HOME/course_kit`` (default ``~/.cache/course_kit``) on a local machine.
    """
    environ = os.environ if environ is None else environ
    if environ.get(DATA_VAR):
        return Path(environ[DATA_VAR]).expanduser()
    platform = platform or detect_platform(environ)
    if platform == "colab":
        return Path("/content/course_data")
    if platform == "kaggle":
        return Path("/kaggle/working/course_data")
    cache = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "course_kit"


# --------------------------------------------------------------------------- seeding
def seed_everything(seed: int = 0, deterministic: bool = False) -> torch.Generator:
    """Seed python, numpy and torch (CPU and every GPU); return a seeded torch.Generator.

    Pass the generator and :func:`seed_worker` to a DataLoader so that shuffling and
    the random augmentations inside workers are reproducible too::

        DataLoader(ds, shuffle=True, generator=g, worker_init_fn=seed_worker)

    ``deterministic=True`` also asks cuDNN for deterministic kernels (slower).
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: derive python/numpy seeds from torch's per-worker seed."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


# --------------------------------------------------------------------------- the summary
@dataclass
class Env:
    """Everything a notebook needs to know about where it runs."""

    platform: str
    device: torch.device
    gpu: Optional[GPUInfo]
    amp_dtype: Optional[torch.dtype]
    data_root: Path
    fast: bool
    seed: int
    generator: Optional[torch.Generator] = field(default=None, repr=False)

    def pick(self, full: T, fast: T) -> T:
        """``fast`` in fast mode, else ``full``: the one place where sizes differ.

        >>> EPOCHS = ENV.pick(full=10, fast=1)
        """
        return fast if self.fast else full

    def lines(self) -> list[str]:
        """The summary, one ``key: value`` per line."""
        dtype = str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "none (float32)"
        return [
            f"platform: {self.platform}",
            f"device: {self.device.type}",
            f"gpu: {self.gpu if self.gpu else 'none'}",
            f"amp_dtype: {dtype}",
            f"data_root: {self.data_root}",
            f"fast: {int(self.fast)}",
            f"torch: {torch.__version__}",
        ]


def get_env(seed: int = 0, device: Optional[str] = None) -> Env:
    """Detect everything without printing or seeding."""
    platform = detect_platform()
    dev = pick_device(device)
    gpu = gpu_info() if dev.type == "cuda" else None
    return Env(
        platform=platform,
        device=dev,
        gpu=gpu,
        amp_dtype=amp_dtype_for(dev.type, gpu.capability if gpu else None),
        data_root=data_root(platform),
        fast=is_fast(),
        seed=seed,
    )


def setup(seed: int = 0, device: Optional[str] = None, quiet: bool = False) -> Env:
    """Detect platform and device, seed everything, create the data root, print a summary.

    Returns an :class:`Env`; notebooks keep it as ``ENV`` and read ``ENV.device``,
    ``ENV.fast``, ``ENV.data_root`` and ``ENV.pick(full=..., fast=...)``.
    """
    env = get_env(seed=seed, device=device)
    env.generator = seed_everything(seed)
    env.data_root.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print("\n".join(env.lines()))
        if env.device.type == "cpu" and env.platform in GPU_HINT:
            print(GPU_HINT[env.platform])
        if env.fast:
            print("fast mode is on (COURSE_FAST=1): small data, small models, few epochs")
    return env


# --------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="force a device, e.g. cpu")


def run(args: argparse.Namespace) -> int:
    env = get_env(device=args.device)
    print("\n".join(env.lines()))
    if env.device.type == "cpu" and env.platform in GPU_HINT:
        print(GPU_HINT[env.platform])
    return 0
