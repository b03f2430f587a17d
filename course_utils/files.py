"""Files: atomic writes, JSON read with an error that names the file, PNG bytes.

Atomic writes: a reader, or a crash half-way, never sees a half-written file. The data
goes to a temporary file in the same folder, which is then renamed over the target with
``os.replace`` (atomic on one file system). Every file the kit writes for later use goes
through here: vocabularies, checkpoints, scores, grade sheets, reports.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Union


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


def read_json(path: Union[str, os.PathLike], error: type[Exception] = ValueError) -> Any:
    """The JSON value in ``path``; a file that is not UTF-8 JSON raises ``error`` with one line naming it.

    ``error`` is the caller's own exception type (e.g. ``DatasetFormatError``), so the
    caller's ``except`` clause and message conventions keep working. A missing file raises
    ``FileNotFoundError`` as usual.
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise error(f"{path}: broken JSON ({err})") from None
    except UnicodeDecodeError as err:
        raise error(f"{path}: not UTF-8 text ({err})") from None


def png_bytes(image: Any, **savefig: Any) -> bytes:
    """The bytes of a PNG file showing ``image``, e.g. for an ``ipywidgets.Image``.

    ``image``: a PIL image, a uint8 array ``(H, W)`` or ``(H, W, 3)``, or a matplotlib
    figure (``savefig`` options such as ``dpi`` then apply).
    """
    buffer = io.BytesIO()
    if hasattr(image, "savefig"):  # a matplotlib figure
        image.savefig(buffer, format="png", **savefig)
    else:
        from PIL import Image  # imported here: the foundations load without Pillow

        (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()
