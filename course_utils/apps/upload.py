"""Files uploaded through an ipywidgets ``FileUpload``: the one place the kit reads them.

Colab renders ipywidgets 7 (it pins 7.7.1) while Kaggle and a laptop have ipywidgets 8,
and the two store an upload differently in ``FileUpload.value``:

* ipywidgets 7: a dict ``{file name: {"metadata": {...}, "content": bytes}}``;
* ipywidgets 8: a tuple of dicts ``({"name": ..., "type": ..., "size": ..., "content": memoryview, ...}, ...)``.

:func:`read_upload` reads both, so the apps of notebooks 05 and 10 work on either;
:func:`load_image_bytes` passes the bytes through the same safe loader as files on disk;
:func:`load_or_report` says in the app why a file is not an image; and
:func:`simulate_upload` puts a file into a ``FileUpload`` the way the browser does, for the
installed ipywidgets (the notebooks run headless in the tests, where nobody clicks).
"""

from __future__ import annotations

import datetime
import html
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from PIL import Image

from course_utils.vision.image_io import ImageError, load_image


def read_upload(value: Any) -> list[tuple[str, bytes]]:
    """``(file name, bytes)`` of every file held by a ``FileUpload``'s ``value``, in upload order.

    Accepts ipywidgets 7's dict and ipywidgets 8's tuple (see the module docstring); an
    empty value (nothing uploaded yet, or the upload cleared) gives ``[]``.
    """
    if isinstance(value, Mapping):  # ipywidgets 7: name -> {"metadata": ..., "content": bytes}
        return [(str(name), bytes(item["content"])) for name, item in value.items()]
    # ipywidgets 8: a tuple of dicts; "content" is a memoryview, copied to bytes so that it
    # outlives the widget's buffer
    return [(str(item.get("name", "upload")), bytes(item["content"])) for item in value or ()]


def load_or_report(load: Callable[[], Image.Image], message: Any, view: Any, box: Any) -> Optional[Image.Image]:
    """The image ``load()`` reads, or None after showing its ``ImageError`` in ``message`` (an HTML
    widget) and clearing ``view`` and ``box.result``: both apps' answer to a file that is not an image."""
    try:
        return load()
    except ImageError as err:
        message.value = f"<b style='color:#b00'>error:</b> {html.escape(str(err))}"
        view.value, box.result = b"", None
        return None


def load_image_bytes(name: str, content: bytes) -> Image.Image:
    """An uploaded file as an RGB image, through the same safe loader as files on disk
    (``vision.image_io.load_image``: EXIF orientation, every mode to RGB, corrupt files refused).

    An :class:`ImageError` names the uploaded file (``name``), never the temporary copy.
    """
    # load_image reads a path (it decides the format from the content and checks it);
    # a temporary file lets uploads share that one loader instead of a second one for bytes.
    suffix = Path(name).suffix or ".img"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(content)
        try:
            return load_image(path)
        except ImageError as err:
            raise ImageError(str(err).replace(str(path), name)) from None


def simulate_upload(upload: Any, name: str, content: bytes, mime: str = "image/png") -> None:
    """Put one file into ``upload`` (an ipywidgets ``FileUpload``) as a browser upload does, so the
    widget's observers run as after a click; works with the installed ipywidgets, 7 or 8."""
    import ipywidgets

    if int(ipywidgets.__version__.split(".")[0]) >= 8:  # the front end sets value
        when = datetime.datetime.now(datetime.timezone.utc)
        upload.value = ({"name": name, "type": mime, "size": len(content), "content": memoryview(content),
                         "last_modified": when},)  # fmt: skip
    else:  # ipywidgets 7: value is read-only; the front end sends metadata and data, then bumps
        # _counter, and the widget rebuilds value from them
        upload.metadata = [{"name": name, "type": mime, "size": len(content), "lastModified": 0}]
        upload.data = [bytes(content)]
        upload._counter += 1
