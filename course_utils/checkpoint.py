"""Checkpoints: everything needed to resume training exactly, and nothing executable.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts:

* ``model``, ``optimizer``, ``scheduler`` (and ``scaler`` with float16 mixed precision):
  state dicts;
* ``config``: the dict that rebuilds the model (``course_utils.captioner.build_captioner``);
* ``vocab``: the vocabulary's word list (``itos``);
* ``epoch``, ``history``, ``trainer`` (early-stopping counters);
* ``rng``: the states of python's, numpy's and torch's generators (and CUDA's, and the
  data loader's), so that a resumed run draws the same dropout masks and batch order
  as an uninterrupted one.

It is written atomically (temporary file, then ``os.replace``): an interrupted save
never leaves a half-written file. It is read with ``torch.load(weights_only=True)``,
which refuses pickled objects other than tensors and plain containers, so a malicious
file cannot run code when loaded.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from .atomic import atomic_open

FORMAT = "course_utils.checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, refused or incompatible."""


def rng_state(generator: Optional[torch.Generator] = None) -> dict[str, Any]:
    """Python, numpy, torch (and CUDA, and ``generator``) RNG states as plain data."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), py_gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: Optional[torch.Generator] = None) -> None:
    """Restore what :func:`rng_state` saved."""
    version, internal, py_gauss = state["python"]
    random.setstate((version, tuple(internal), py_gauss))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def save_checkpoint(path: Union[str, Path], **contents: Any) -> Path:
    """Write ``contents`` (state dicts, config, vocab, epoch, ...) atomically to ``path``."""
    path = Path(path)
    with atomic_open(path) as f:
        torch.save({"format": FORMAT, **contents}, f)
    return path


def load_checkpoint(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; any problem is a one-line :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: refused: the file contains pickled objects other than tensors and plain data, "
            f"which could run code ({first})"
        ) from None
    except Exception as err:  # truncated zip, random bytes, ...: torch raises many kinds of errors
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({detail})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a course_utils checkpoint (no '{FORMAT}' format tag)")
    for key in ("model", "config"):
        if key not in data:
            raise CheckpointError(f"{path}: the checkpoint has no '{key}' entry")
    return data
