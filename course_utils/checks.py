"""In-notebook checks for exercises: tell the student *what* is wrong.

Every exercise in the notebooks ends with a cell such as::

    check_close(conv2d(image, kernel), [[4, 3, 4], [2, 4, 3], [2, 3, 4]], name="conv2d")

A wrong answer raises :class:`CheckError` (an ``AssertionError``) whose message says
whether the type, the shape or the values are off, and where, so the student knows
what to fix; a right one prints a short confirmation. The hidden tests of the grader
use the same functions.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np


class CheckError(AssertionError):
    """Raised by a check that fails; the message is meant for a student."""


def _to_array(x: Any, name: str) -> np.ndarray:
    """numpy view of a tensor, array, list or number (float64 for comparisons)."""
    if x is None:
        raise CheckError(f"{name}: got None. Did the function forget to `return` its result?")
    if hasattr(x, "detach"):  # a torch tensor, possibly on a GPU
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise CheckError(f"{name}: expected numbers, got {type(x).__name__} ({err})") from None
    return arr


def ok(name: str) -> None:
    """Print the confirmation shown when a check passes."""
    print(f"✓ {name}: correct")


def check_shape(actual: Any, expected: Sequence[int], name: str = "result") -> None:
    """Fail unless ``actual`` (array or tensor) has shape ``expected``."""
    shape = tuple(getattr(actual, "shape", np.shape(actual)))
    if shape != tuple(expected):
        raise CheckError(f"{name}: shape {shape}, expected {tuple(expected)}")


def check_close(
    actual: Any,
    expected: Any,
    name: str = "result",
    atol: float = 1e-6,
    rtol: float = 1e-5,
    quiet: bool = False,
) -> None:
    """Fail unless ``actual`` matches ``expected`` in shape and, elementwise, within tolerance.

    The message names the first mismatching position, both values and the largest
    absolute error, e.g. ``conv2d: value at (1, 2) is 2.0, expected 3.0 (max abs error 1.0)``.
    """
    a, e = _to_array(actual, name), _to_array(expected, name)
    if a.shape != e.shape:
        raise CheckError(f"{name}: shape {a.shape}, expected {e.shape}")
    if np.isnan(a).any() and not np.isnan(e).any():
        where = tuple(int(i) for i in np.argwhere(np.isnan(a))[0])
        raise CheckError(f"{name}: NaN at {where}; look for a division by zero or log(0)")
    close = np.isclose(a, e, atol=atol, rtol=rtol, equal_nan=True)
    if not close.all():
        bad = np.argwhere(~close)
        first = tuple(int(i) for i in bad[0]) if a.ndim else ()
        where = f" at {first}" if a.ndim else ""
        err = float(np.nanmax(np.abs(a - e)))
        raise CheckError(
            f"{name}: value{where} is {a[first] if a.ndim else a.item():.6g}, expected "
            f"{e[first] if e.ndim else e.item():.6g} ({len(bad)} of {a.size} values off, "
            f"max abs error {err:.3g}, tolerance atol={atol:g} rtol={rtol:g})"
        )
    if not quiet:
        ok(name)


def check_equal(actual: Any, expected: Any, name: str = "result", quiet: bool = False) -> None:
    """Fail unless ``actual == expected`` (for ints, strings, lists, dicts...)."""
    if actual != expected:
        raise CheckError(f"{name}: got {actual!r}, expected {expected!r}")
    if not quiet:
        ok(name)


def check_true(condition: bool, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckError(message)


def check_function(
    student: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Iterable[tuple],
    name: Optional[str] = None,
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> None:
    """Compare ``student(*case)`` with ``reference(*case)`` on every case.

    The message says which case failed and why, so a function that only works on the
    example of the notebook is caught (``conv2d, case 3 of 5 (input shapes (7, 7), (3, 3))``).
    """
    name = name or getattr(student, "__name__", "function")
    cases = list(cases)
    for i, case in enumerate(cases, 1):
        shapes = ", ".join(str(tuple(np.shape(c))) if hasattr(c, "__len__") else repr(c) for c in case)
        label = f"{name}, case {i} of {len(cases)} (inputs {shapes})"
        check_close(student(*case), reference(*case), name=label, atol=atol, rtol=rtol, quiet=True)
    ok(name)
