"""Several processes training one model: what :func:`course_utils.captioning.train.fit` needs from
``torch.distributed`` when it is launched with ``torchrun --nproc_per_node=N script.py``.

Each process (a *rank*) holds a full copy of the model and sees ``1/N`` of every epoch;
DistributedDataParallel averages the gradients, so the copies take the same steps. What
is not a gradient must be kept equal by hand: BatchNorm's running statistics
(:func:`sync_buffers`). Rank 0 alone evaluates, prints and writes files. Without torchrun
everything here is a no-op and ``fit`` runs in one process.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler, Subset

from course_utils.env import pick_device


@dataclass
class Placement:
    """Where this process trains: its device, its rank among ``world_size`` processes."""

    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that evaluates, prints and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def distributed_info() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` as set by ``torchrun`` (``(0, 1, 0)`` otherwise)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


@contextlib.contextmanager
def placement(device: Optional[str] = None) -> Iterator[Placement]:
    """This process's :class:`Placement`; under torchrun, inside the process group.

    The group (NCCL on GPUs, gloo on CPUs) is joined here and left at the end, by every rank
    at once, unless the caller had already joined it: then it stays the caller's to use and to
    destroy.
    """
    rank, world, local_rank = distributed_info()
    where = pick_device(device)
    if world > 1 and where.type == "cuda":
        where = torch.device("cuda", local_rank)  # one GPU per process
        torch.cuda.set_device(where)  # NCCL's collectives run on the current GPU
    if world == 1 or dist.is_initialized():
        yield Placement(where, rank, world)
        return
    dist.init_process_group(backend="nccl" if where.type == "cuda" else "gloo")
    yield Placement(where, rank, world)  # an error leaves from here, without waiting: torchrun stops the others
    # Leave together: a rank whose work ends early (rank 1 while rank 0 evaluates) would otherwise tear
    # its group down alone, and gloo's teardown can then hang for good (seen with torch 2.1).
    dist.barrier()
    dist.destroy_process_group()


@contextlib.contextmanager
def rank_zero_first(place: Placement) -> Iterator[None]:
    """Rank 0 runs the block while the other ranks wait; then they run it and find its work done.

    For data preparation under torchrun: generating a dataset or building a feature cache
    writes files, and ranks writing the same folders at once would clash. Rank 0 writes
    them; the others, let in once it is done, read them (``generate`` and
    ``FeatureCache.build`` reuse what is there). Without torchrun the block just runs.
    """
    if place.distributed and not place.is_main:
        dist.barrier()  # wait until rank 0 has prepared
    yield
    if place.distributed and place.is_main:
        dist.barrier()  # rank 0 is done: let the others in


def wrap(model: nn.Module, place: Placement) -> nn.Module:
    """The model that trains: DistributedDataParallel around ``model`` under torchrun, else ``model``."""
    if not place.distributed:
        return model
    device_ids = [place.device.index] if place.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def train_sampler(dataset: Dataset, place: Placement, seed: int) -> Optional[DistributedSampler]:
    """Each rank's share of the shuffled training set (None in one process: the loader shuffles)."""
    if not place.distributed:
        return None
    return DistributedSampler(dataset, place.world_size, place.rank, shuffle=True, seed=seed)


def shard(dataset: Dataset, place: Placement) -> Dataset:
    """Every ``world_size``-th item from ``rank`` on: this rank's part of the validation set."""
    return Subset(dataset, range(place.rank, len(dataset), place.world_size)) if place.distributed else dataset


def sync_buffers(model: nn.Module, place: Placement) -> None:
    """Copy rank 0's buffers (BatchNorm running means and variances) to every rank.

    DDP broadcasts them before each training forward, but each rank's last batch still
    moves its own statistics: without this the ranks would validate, and rank 0 save,
    different models.
    """
    if place.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


def sum_over_ranks(values: list[float], place: Placement) -> list[float]:
    """Each value added up over the ranks (sums of losses and token counts: each rank saw a part)."""
    if not place.distributed:
        return values
    on = place.device if place.device.type == "cuda" else "cpu"  # NCCL reduces GPU tensors, gloo CPU ones
    total = torch.tensor(values, dtype=torch.float64, device=on)
    dist.all_reduce(total)
    return total.tolist()
