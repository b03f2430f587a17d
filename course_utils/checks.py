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


def as_array(x: Any, name: str) -> np.ndarray:
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


def check_output_shape(model: Callable[[Any], Any], inputs: Any, expected: Sequence[int], name: str = "output",
                       quiet: bool = False) -> Any:
    """Run ``model(inputs)`` and fail unless the output has shape ``expected``; returns the output.

    A forward pass that raises (a layer given a size it was not built for, typically the
    ``in_features`` of the dense layer after a flatten) fails with a message naming the input shape.
    """
    try:
        output = model(inputs)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckError(f"{name}: the forward pass fails on an input of shape {tuple(inputs.shape)} ({first}); "
                         "a layer receives a size it was not built for: compare each layer's in_channels / "
                         "in_features with the previous layer's output (e.g. the flatten size)") from None
    check_shape(output, expected, name=f"{name} for an input of shape {tuple(inputs.shape)}")
    if not quiet:
        ok(name)
    return output


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
    a, e = as_array(actual, name), as_array(expected, name)
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


# --------------------------------------------------------------------------- caption data (notebook 07)
def plain(x: Any) -> Any:
    """Tensors and arrays as (nested) lists, tuples as lists: values compared with ``==``."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    return x


def short(x: Any, limit: int = 120) -> str:
    """``repr(x)``, cut to ``limit`` characters for a message."""
    text = repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _difference(actual: Any, expected: Any) -> str:
    """Where two plain values first differ, in words: length, position, or value."""
    if isinstance(actual, list) and isinstance(expected, list):
        for i, (a, e) in enumerate(zip(actual, expected)):
            if a != e:
                return f"first difference at position {i}: {short(a, 60)} instead of {short(e, 60)}"
        return f"{len(actual)} items instead of {len(expected)}"
    return f"got {short(actual)}, expected {short(expected)}"


def check_same_output(
    student: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Iterable[tuple],
    name: Optional[str] = None,
) -> None:
    """Compare ``student(*case) == reference(*case)`` exactly, for every case.

    The counterpart of :func:`check_function` for results that are not arrays of floats:
    lists of tokens, token ids, tuples, strings, dicts (tensors are compared as lists).
    The message shows the failing input and the first position where the outputs differ.
    """
    name = name or getattr(student, "__name__", "function")
    cases = list(cases)
    for i, case in enumerate(cases, 1):
        got, want = plain(student(*case)), plain(reference(*case))
        if got is None and want is not None:
            raise CheckError(
                f"{name}, case {i} of {len(cases)} (input {short(case, 80)}): got None, expected {short(want)} "
                "(did the function forget to `return`?)"
            )
        if type(got) is not type(want):
            raise CheckError(
                f"{name}, case {i} of {len(cases)} (input {short(case, 80)}): returned a "
                f"{type(got).__name__}, expected a {type(want).__name__}"
            )
        if got != want:
            raise CheckError(
                f"{name}, case {i} of {len(cases)} (input {short(case, 80)}): {_difference(got, want)}\n"
                f"  got      {short(got)}\n  expected {short(want)}"
            )
    ok(name)


def check_vocabulary(
    itos: Sequence[str],
    token_lists: Iterable[Sequence[str]],
    min_freq: int,
    specials: Sequence[str] = ("<pad>", "<start>", "<end>", "<unk>"),
    name: str = "vocabulary",
) -> None:
    """Check a vocabulary (``itos``: id -> word) against the rule it should follow.

    Special tokens come first, in order (so ``<pad>`` has id 0); then every word that
    appears at least ``min_freq`` times in ``token_lists``, each once, and no other word.
    Word order after the specials is a convention and is not checked.
    """
    from collections import Counter

    if not isinstance(itos, (list, tuple)) or not all(isinstance(w, str) for w in itos):
        raise CheckError(f"{name}: expected a list of words (str), got {short(itos)}")
    specials = list(specials)
    if list(itos[: len(specials)]) != specials:
        raise CheckError(
            f"{name}: the first {len(specials)} entries must be the special tokens {specials} in that order "
            f"(so that {specials[0]!r} gets id 0), got {list(itos[: len(specials)])}"
        )
    counts = Counter(tok for tokens in token_lists for tok in tokens)
    seen: set[str] = set()
    for i, word in enumerate(itos):
        if word in seen:
            raise CheckError(f"{name}: {word!r} appears twice (second time at id {i}); each word needs one id")
        seen.add(word)
    for word in itos[len(specials):]:
        if counts[word] < min_freq:
            raise CheckError(
                f"{name}: {word!r} appears {counts[word]} time(s) in the captions but is in the vocabulary; "
                f"the threshold keeps words with count >= {min_freq}"
            )
    missing = sorted((w for w, c in counts.items() if c >= min_freq and w not in seen), key=lambda w: -counts[w])
    if missing:
        raise CheckError(
            f"{name}: {len(missing)} word(s) with count >= {min_freq} are missing, e.g. "
            f"{missing[0]!r} ({counts[missing[0]]} times)"
        )
    ok(name)


def check_padded_batch(
    captions: Any,
    lengths: Any,
    sequences: Sequence[Sequence[int]],
    pad_id: int = 0,
    name: str = "padded batch",
) -> None:
    """Check ``captions (batch, max_len)`` and ``lengths (batch,)`` made from ``sequences``.

    Both must be ``torch.long`` tensors (embeddings and the loss need integer ids); row
    ``i`` holds ``sequences[i]`` followed by ``pad_id`` up to the longest sequence of the
    batch, and ``lengths[i] == len(sequences[i])``.
    """
    import torch

    for label, t in (("captions", captions), ("lengths", lengths)):
        if not isinstance(t, torch.Tensor):
            raise CheckError(f"{name}: {label} is a {type(t).__name__}, expected a torch tensor")
        if t.dtype != torch.long:
            raise CheckError(f"{name}: {label} has dtype {t.dtype}; token ids and lengths must be torch.long")
    want_lengths = [len(s) for s in sequences]
    expected_shape = (len(sequences), max(want_lengths, default=0))
    if tuple(captions.shape) != expected_shape:
        raise CheckError(
            f"{name}: captions has shape {tuple(captions.shape)}, expected {expected_shape} "
            "(batch, length of the longest caption in this batch)"
        )
    if lengths.tolist() != want_lengths:
        raise CheckError(f"{name}: lengths {lengths.tolist()}, expected {want_lengths}")
    for i, seq in enumerate(sequences):
        row = captions[i].tolist()
        if row[: len(seq)] != list(seq):
            raise CheckError(f"{name}: row {i} starts with {row[: len(seq)]}, expected the sequence {list(seq)}")
        if any(v != pad_id for v in row[len(seq):]):
            raise CheckError(f"{name}: row {i} is {row}; after the sequence every position must be {pad_id} (<pad>)")
    ok(name)


def load_student_weights(student: Any, reference: Any, name: str = "weights") -> None:
    """Copy the parameters of the ``student``'s module into the package's ``reference`` module.

    Both are ``torch.nn.Module``; parameter names and shapes must match (the exercise
    gives the names in ``__init__``). Used to compare a hand-written module with the
    package's version on the same weights. A mismatch raises :class:`CheckError` naming
    the missing, unexpected or mis-shaped parameters.
    """
    import torch

    if not isinstance(student, torch.nn.Module):
        raise CheckError(f"{name}: expected a torch.nn.Module, got {type(student).__name__}")
    mine, theirs = student.state_dict(), reference.state_dict()
    missing = sorted(set(theirs) - set(mine))
    extra = sorted(set(mine) - set(theirs))
    shapes = [f"{k} {tuple(mine[k].shape)} instead of {tuple(theirs[k].shape)}"
              for k in sorted(set(mine) & set(theirs)) if mine[k].shape != theirs[k].shape]  # fmt: skip
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected {', '.join(extra)}")
    if shapes:
        problems.append(f"wrong shape: {'; '.join(shapes)}")
    if problems:
        raise CheckError(f"{name}: the module's parameters do not match the package's ({' | '.join(problems)}); "
                         "keep the layer names and sizes given in __init__")  # fmt: skip
    reference.load_state_dict(mine)


# --------------------------------------------------------------------------- gradients (notebooks 03, 06)
def numerical_gradient(f: Callable[[], float], x: Any, index: tuple, h: float = 1e-6) -> float:
    """Centred difference ``(f(x + h e_i) - f(x - h e_i)) / 2h`` at one position ``index`` of ``x``.

    ``x`` (a float64 tensor or array) is changed in place and restored, so ``f`` reads it
    as it is; centred differences are accurate to O(h**2), one-sided ones only to O(h).
    """
    old = float(x[index])
    x[index] = old + h
    plus = float(f())
    x[index] = old - h
    minus = float(f())
    x[index] = old
    return (plus - minus) / (2 * h)


def check_gradient(
    f: Callable[[], float],
    x: Any,
    analytic: Any,
    name: str = "gradient",
    samples: Optional[int] = 12,
    seed: int = 0,
    h: float = 1e-6,
    tol: float = 1e-6,
    atol: float = 1e-8,
) -> None:
    """Compare an analytic gradient of the scalar ``f()`` with respect to ``x`` with a numerical one.

    As CS231n's gradient check: at ``samples`` positions of ``x`` chosen with ``seed`` (every
    position when ``samples`` is None), the relative error
    ``|a - n| / max(|a| + |n|, 1e-8)`` must stay under ``tol`` (or ``|a - n|`` under ``atol``,
    for gradients so close to 0 that rounding in ``f`` dominates). Use float64 (in float32,
    rounding alone gives errors near 1e-3). ``analytic`` has the shape of ``x``.
    """
    check_shape(analytic, tuple(np.shape(x)), name=f"{name} (shape of the gradient = shape of the variable)")
    a = as_array(analytic, name)
    if hasattr(x, "dtype") and str(x.dtype) not in ("float64", "torch.float64"):
        raise CheckError(f"{name}: the variable has dtype {x.dtype}; a gradient check needs float64")
    positions = list(np.ndindex(a.shape))
    if samples is not None and samples < len(positions):
        rng = np.random.default_rng(seed)
        positions = [positions[i] for i in rng.choice(len(positions), samples, replace=False)]
    for index in positions:
        num = numerical_gradient(f, x, index, h)
        err = abs(a[index] - num) / max(abs(a[index]) + abs(num), 1e-8)
        if not (err < tol or abs(a[index] - num) < atol):  # "not" also catches NaN
            raise CheckError(
                f"{name}: at {index} the analytic gradient is {a[index]:.6g} but the numerical one is {num:.6g} "
                f"(relative error {err:.2g}, tolerance {tol:g})"
            )
    ok(f"{name} (matches the numerical gradient at {len(positions)} positions)")
