"""Interactive apps for the notebooks (ipywidgets)."""

from __future__ import annotations

import numpy as np

from course_utils.files import png_bytes

# --------------------------------------------------------------------------- filter explorer (notebook 02)


def filter_explorer(image: np.ndarray, max_size: int = 9, max_noise: float = 0.3, seed: int = 0):
    """Sliders for noise level and kernel size, a mean/median switch, and the three images side by side.

    ``image``: a grey photo ``(H, W)`` uint8. Shown: the clean image, the image with
    salt-and-pepper noise, and the filtered result, with the PSNR (dB) of the noisy and
    the filtered image against the clean one. Returns an ``ipywidgets.VBox``; its
    ``controls`` attribute holds the ``noise``, ``size`` and ``kind`` widgets, its
    ``view`` the image widget and ``info`` the text, so code (and tests) can move a
    slider and read the result.
    """
    import ipywidgets as widgets

    from course_utils.basics.arrays import psnr
    from course_utils.basics.filters import mean_filter, median_filter, salt_and_pepper, to_uint8

    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"filter_explorer expects a grey uint8 image (H, W), got {image.shape} {image.dtype}")
    noise = widgets.FloatSlider(
        value=min(0.05, max_noise),
        min=0.0,
        max=max_noise,
        step=0.01,
        description="noise",
        readout_format=".2f",
        continuous_update=False,
    )
    size = widgets.IntSlider(value=3, min=1, max=max_size, step=2, description="kernel size", continuous_update=False)
    kind = widgets.ToggleButtons(options=["median", "mean"], value="median", description="filter")
    view = widgets.Image(format="png")
    info = widgets.HTML()

    def update(_change=None) -> None:
        noisy = salt_and_pepper(image, noise.value, seed=seed)
        smooth = median_filter if kind.value == "median" else mean_filter
        filtered = to_uint8(smooth(noisy, size.value))
        gap = np.full((image.shape[0], 4), 255, dtype=np.uint8)  # white separator
        view.value = png_bytes(np.hstack([image, gap, noisy, gap, filtered]))
        info.value = (
            f"clean | noisy ({noise.value:.0%} of pixels) | {kind.value} {size.value}x{size.value}"
            f" &nbsp; PSNR noisy: {psnr(image, noisy):.1f} dB, filtered: {psnr(image, filtered):.1f} dB"
        )

    for control in (noise, size, kind):
        control.observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox([noise, size]), kind, view, info])
    box.controls = {"noise": noise, "size": size, "kind": kind}
    box.view, box.info = view, info
    return box
