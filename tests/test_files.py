"""The file helpers of the foundations: atomic writes, JSON with a named error, PNG bytes."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from course_utils.files import png_bytes, read_json, write_atomic  # noqa: E402


class DatasetError(Exception):
    pass


def test_read_json_names_the_file_and_raises_the_callers_error(tmp_path):
    good = write_atomic(tmp_path / "ok.json", '{"a": [1, 2]}')
    assert read_json(good) == {"a": [1, 2]}
    broken = write_atomic(tmp_path / "broken.json", '{"a": [1, 2')
    with pytest.raises(ValueError, match=r"broken.json: broken JSON"):
        read_json(broken)
    with pytest.raises(DatasetError, match=r"broken.json: broken JSON"):
        read_json(broken, DatasetError)
    latin = write_atomic(tmp_path / "latin.json", '"caf\xe9"'.encode("latin-1"))
    with pytest.raises(DatasetError, match=r"latin.json: not UTF-8 text"):
        read_json(latin, DatasetError)
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "missing.json")


@pytest.mark.parametrize("kind", ["array", "grey", "pil", "figure"])
def test_png_bytes_of_arrays_images_and_figures(kind):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[:, :4] = 255
    image = {"array": rgb, "grey": rgb[..., 0], "pil": Image.fromarray(rgb)}.get(kind)
    if kind == "figure":
        image, ax = plt.subplots(figsize=(1, 1))
        ax.imshow(rgb)
    data = png_bytes(image, dpi=40) if kind == "figure" else png_bytes(image)
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "PNG"
    if kind != "figure":  # lossless: the same pixels come back
        assert np.array_equal(np.asarray(decoded), np.asarray(image))
    else:
        assert decoded.size == (40, 40)
        plt.close(image)
