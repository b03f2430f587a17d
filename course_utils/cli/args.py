"""What every command shares: one-line argument errors, checked numbers and paths, exit codes.

A bad argument must cost the user one line, not a traceback: ``CommandParser`` prints
``error: <message> (see 'python -m course_utils CMD --help')`` and exits with code 2,
and the ``type=`` functions below turn a bad value into such a message *before* the
command starts (``--beam 0`` is refused at once, not after the checkpoint has loaded).

Exit codes, the same for every command (each ``--help`` says what 1 means for it):

* 0: done;
* 1: done, but something was wrong and is named on stderr (an image skipped, a size that
  differs from the published one, a student version that fails to run, ...);
* 2: bad arguments or unusable input: nothing was done;
* 3: an unexpected error inside the kit (a bug: ``COURSE_DEBUG=1`` shows the traceback);
* 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, NoReturn, Union

OK, PROBLEMS, USAGE, INTERNAL, INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = ("exit codes: 0 done; 1 {one}; 2 bad arguments or unusable input, nothing done; "
              "3 unexpected error in the kit (COURSE_DEBUG=1 shows the traceback); 130 interrupted")  # fmt: skip


def exit_codes(one: str) -> str:
    """The ``--help`` epilog of a command, with what exit code 1 means for it."""
    return EXIT_CODES.format(one=one)


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one ``error:`` line on stderr, then exit code 2.

    argparse prints the whole usage block first; for a long command that hides the one
    line that matters, so the usage is left to ``--help``. Sub-parsers (``data synth``)
    are made with the same class, so they behave alike.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"error: {message} (see '{self.prog} --help')\n")


def _number(kind: Callable[[str], Union[int, float]], minimum: float, what: str) -> Callable[[str], Union[int, float]]:
    """A ``type=`` function: ``kind(text)``, refused unless it is at least ``minimum``."""

    def check(text: str) -> Union[int, float]:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value != value or value < minimum:  # value != value: NaN
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    check.__name__ = what  # argparse names the type in some messages
    return check


def int_at_least(minimum: int) -> Callable[[str], int]:
    """``type=`` for a whole number >= ``minimum``, e.g. ``int_at_least(10)``."""
    return _number(int, minimum, f"a whole number >= {minimum}")  # type: ignore[return-value]


positive_int = int_at_least(1)  # beam sizes, epochs, batch sizes, workers
non_negative_int = int_at_least(0)  # counts that may be zero; 0 = "auto" for --threads
positive_float = _number(float, 1e-9, "a number > 0")  # seconds


def device(text: str) -> str:
    """``type=`` for ``--device``: a device torch knows and this machine has (``cpu``, ``cuda:0``, ``mps``)."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device (try cpu, cuda, cuda:0 or mps)") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has no CUDA GPU (use cpu)")
        if dev.index is not None and dev.index >= count:
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {count} CUDA GPU(s), cuda:0 to "
                                             f"cuda:{count - 1}")  # fmt: skip
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: Apple MPS is not available here (use cpu)")
    elif dev.type != "cpu":
        raise argparse.ArgumentTypeError(f"{text!r}: the kit runs on cpu, cuda or mps")
    return text


def output_dir(text: str) -> Path:
    """``type=`` for a folder the command writes into: it may not exist yet, but must not be a file."""
    path = Path(text).expanduser()
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                where = "is a file" if p == path else f"lies inside {p}, which is a file"
                raise argparse.ArgumentTypeError(f"{text}: {where}, not a folder")
            break
    return path


def existing_path(text: str) -> Path:
    """``type=`` for an input file or folder that must exist."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file or folder")
    return path


def fail(message: str, code: int = USAGE) -> int:
    """Print ``error: message`` on stderr and return ``code``: ``return fail(f"{path}: ...")``."""
    print(f"error: {message}", file=sys.stderr)
    return code
