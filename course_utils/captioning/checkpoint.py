"""Checkpoints: everything needed to resume training exactly, and nothing executable.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts:

* ``model``, ``optimizer``, ``scheduler`` (and ``scaler`` with float16 mixed precision):
  state dicts;
* ``config``: the dict that rebuilds the model (``course_utils.captioning.captioner.build_captioner``);
* ``vocab``: the vocabulary's word list (``itos``);
* ``epoch``, ``history``, ``early_stopping`` (the state of
  ``course_utils.vision.early_stopping.EarlyStopping``);
* ``rng``: the states of python's, numpy's and torch's generators (and the training
  device's, and the data loader's), so that a resumed run draws the same dropout masks
  and batch order as an uninterrupted one.

It is written atomically (temporary file, then ``os.replace``): an interrupted save
never leaves a half-written file. It is read with ``torch.load(weights_only=True)``,
which refuses pickled objects other than tensors and plain containers, so a malicious
file cannot run code when loaded.
"""

from __future__ import annotations

import collections
import contextlib
import pickle
import random
import re
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np
import torch

from course_utils.files import atomic_open

FORMAT = "course_utils.captioning.checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, refused or incompatible."""


def _device_rng(device: Optional[torch.device]) -> Optional[Any]:
    """The random-number module of ``device`` (``torch.cuda``, ``torch.mps``), or None for the CPU."""
    if device is None or device.type not in ("cuda", "mps"):
        return None
    module = getattr(torch, device.type)
    available = module.is_available() if device.type == "cuda" else torch.backends.mps.is_available()
    return module if available and hasattr(module, "get_rng_state") else None


def _which(device: torch.device) -> tuple:
    """Arguments naming ``device`` for ``torch.cuda``'s RNG functions (``torch.mps``'s take none)."""
    return (device,) if device.type == "cuda" else ()


def rng_state(generator: Optional[torch.Generator] = None, device: Optional[torch.device] = None) -> dict[str, Any]:
    """Python, numpy, torch (and ``device``'s, and ``generator``'s) RNG states as plain data.

    Only the training device's generator is saved (``cuda:1`` under torchrun), not one per
    visible GPU: the run may resume on a machine with another number of GPUs.
    """
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), py_gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    module = _device_rng(device)
    if module is not None:
        state["device"] = {"type": device.type, "state": module.get_rng_state(*_which(device))}
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def _saved_device_state(state: dict[str, Any], device: Optional[torch.device]) -> tuple[Optional[str], Any]:
    """``(device type, generator state)`` saved in ``state``; checkpoints before the kit saved the
    training device's state only hold ``cuda``: one state per GPU of the machine that wrote them."""
    if "device" in state:
        return state["device"]["type"], state["device"]["state"]
    if "cuda" in state:
        states = state["cuda"]
        if isinstance(states, torch.Tensor):
            return "cuda", states
        index = (device.index or 0) if device is not None and device.type == "cuda" else 0
        return "cuda", states[index] if index < len(states) else states[0]
    return None, None


def set_rng_state(
    state: dict[str, Any],
    generator: Optional[torch.Generator] = None,
    device: Optional[torch.device] = None,
    log: Callable[[str], None] = print,
) -> None:
    """Restore what :func:`rng_state` saved; ``device`` is where training goes on.

    When the checkpoint was written on another kind of device (a GPU run resumed on a CPU,
    say), that device's generator cannot be restored: one line says so and the run goes on
    (its dropout masks then differ from an uninterrupted run's).
    """
    version, internal, py_gauss = state["python"]
    random.setstate((version, tuple(internal), py_gauss))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    saved_type, saved = _saved_device_state(state, device)
    module = _device_rng(device)
    if module is not None and saved_type == device.type:
        module.set_rng_state(saved, *_which(device))
    elif saved_type is not None or module is not None:
        here = device.type if device is not None else "cpu"
        log(f"note: the checkpoint's random state is from {saved_type or 'cpu'}, this run is on {here}: "
            f"dropout after resuming will differ from an uninterrupted run")
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


@contextlib.contextmanager
def private_rng(device: Optional[torch.device] = None) -> Iterator[None]:
    """Run a block with its own random state: the caller's python, numpy, torch and ``device``
    generators are restored afterwards, as if the block had drawn no random number."""
    saved = rng_state(device=device)
    try:
        yield
    finally:
        set_rng_state(saved, device=device)


def save_checkpoint(path: Union[str, Path], **contents: Any) -> Path:
    """Write ``contents`` (state dicts, config, vocab, epoch, ...) atomically to ``path``."""
    path = Path(path)
    with atomic_open(path) as f:
        torch.save({"format": FORMAT, **contents}, f)
    return path


# What each field may hold. torch's safe loader accepts different objects from one
# version to the next (2.14 rebuilds a pickled ``Exception``), so the kit checks what it
# loaded itself, field by field, instead of trusting the loader.
PLAIN = (type(None), bool, int, float, str)
FIELDS: dict[str, str] = {
    "model": "state",  # state dict: names -> tensors (and plain values)
    "optimizer": "state",
    "scheduler": "state",
    "scaler": "state",
    "config": "config",  # names -> plain values, lists or dicts of them
    "train_config": "config",
    "vocab": "words",  # list of strings
    "epoch": "int",
    "history": "history",  # names -> lists of numbers
    "early_stopping": "config",
    "trainer": "config",  # early-stopping counters of checkpoints written before ``early_stopping``
    "rng": "state",
}
REQUIRED = ("model", "config")


def _plain(value: Any, tensors: bool, depth: int = 0) -> Optional[str]:
    """``None`` if ``value`` is plain data (and tensors, if allowed); else the offending type's name."""
    if isinstance(value, PLAIN) or (tensors and isinstance(value, torch.Tensor)):
        return None
    if depth > 20:
        return "structure nested too deep"
    if isinstance(value, (list, tuple)):
        items: Any = value
    elif type(value) in (dict, collections.OrderedDict):
        if any(not isinstance(k, (str, int)) for k in value):
            return "mapping with keys other than strings and integers"
        items = value.values()
    else:
        return type(value).__name__
    for item in items:
        bad = _plain(item, tensors, depth + 1)
        if bad:
            return bad
    return None


def _field_problem(kind: str, value: Any) -> Optional[str]:
    """Why ``value`` cannot be a field of ``kind`` (``None`` when it can)."""
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"is a {type(value).__name__}, not an int"
    if kind == "words":
        ok = isinstance(value, list) and all(isinstance(w, str) for w in value)
        return None if ok else "is not a list of strings"
    if not isinstance(value, dict):
        return f"is a {type(value).__name__}, not a dict"
    if any(not isinstance(k, str) for k in value) and kind != "state":
        return "is a dict with keys other than strings"
    if kind == "history":
        ok = all(isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) for v in value.values())
        return None if ok else "is not a dict of lists of numbers"
    bad = _plain(value, tensors=kind == "state")
    allowed = "tensors and plain data" if kind == "state" else "plain data"
    return None if bad is None else f"holds a {bad} object, not only {allowed}"


def _kind_of_file(path: Path) -> Optional[str]:
    """What a file that is not a PyTorch checkpoint looks like, or ``None`` if it may be one."""
    with path.open("rb") as f:
        head = f.read(32)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as z:
                return None if any(n.endswith("data.pkl") for n in z.namelist()) else "a zip archive"
        except zipfile.BadZipFile:
            return "a damaged zip archive (an interrupted download?)"
    if head.startswith(b"\x80"):
        return None  # a pickle: the legacy checkpoint format, read (and refused if unsafe) by torch
    for magic, name in ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"), (b"GIF8", "a GIF image"),
                        (b"version https://git-lfs", "a Git LFS pointer, not the file itself")):  # fmt: skip
        if head.startswith(magic):
            return name
    if not head:
        return "an empty file"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "an unknown binary file"


def load_checkpoint(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely and check every field the kit reads.

    ``torch.load(weights_only=True)`` refuses most code-running pickles; then each field
    is checked against :data:`FIELDS` (``config`` plain data, ``model`` a state dict,
    ``vocab`` a list of strings, ...). Any problem is a one-line :class:`CheckpointError`
    naming the file and, where it applies, the field.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        other = _kind_of_file(path)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror or err})") from None
    if other:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (this is {other})")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message goes on to advise weights_only=False: never pass that on.
        named = re.search(r"(?:Unsupported global|GLOBAL)[: ]+(?:GLOBAL )?([\w.]+)", str(err))
        what = f" (it names {named.group(1)})" if named else ""
        raise CheckpointError(
            f"{path}: refused: the file contains pickled objects other than tensors and plain data, "
            f"which could run code{what}"
        ) from None
    except Exception as err:  # truncated zip, random bytes, ...: torch raises many kinds of errors
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({detail})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a course_utils checkpoint (no '{FORMAT}' format tag)")
    for key in REQUIRED:
        if key not in data:
            raise CheckpointError(f"{path}: the checkpoint has no '{key}' entry")
    for key, value in data.items():
        problem = _field_problem(FIELDS.get(key, "state"), value) if key != "format" else None
        if problem:
            raise CheckpointError(f"{path}: refused: field '{key}' {problem}")
    return data
