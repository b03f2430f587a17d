"""Atomic writes: a reader, or a crash half-way, never sees a half-written file.

The data goes to a temporary file in the same folder, which is then renamed over the
target with ``os.replace`` (atomic on one file system). Every file the kit writes for
later use goes through here: vocabularies, checkpoints, scores, grade sheets, reports.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, Union


@contextmanager
def atomic_open(path: Union[str, os.PathLike]) -> Iterator[BinaryIO]:
    """Binary file to write ``path`` through; it appears at ``path`` only if the block succeeds.

    >>> with atomic_open("model.pt") as f:
    ...     torch.save(state, f)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Union[str, os.PathLike], data: Union[str, bytes]) -> Path:
    """Write ``data`` (text is encoded as UTF-8) to ``path`` atomically; return the path."""
    with atomic_open(path) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)
