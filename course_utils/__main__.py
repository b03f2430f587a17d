"""Command line of the kit: ``python -m course_utils COMMAND ...``.

Each command lives in its own module, which exposes two functions:

* ``add_arguments(parser: argparse.ArgumentParser) -> None``
* ``run(args: argparse.Namespace) -> int``  (the exit code)

Modules are imported only when their command runs, so ``--help`` stays fast and a
broken optional dependency only affects the command that needs it.

Bad input never ends in a traceback: argument errors are one ``error:`` line and exit
code 2 (``course_utils.cli.args.CommandParser``), and anything a command did not expect
is one ``error:`` line and exit code 3 (``COURSE_DEBUG=1`` re-raises it, with its
traceback, for whoever fixes the bug). The exit codes are listed in every ``--help``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable, Optional, Sequence

from course_utils.cli.args import (
    INTERNAL,
    INTERRUPTED,
    USAGE,
    CommandParser,
    device,
    exit_codes,
    positive_float,
    positive_int,
)

# (command, module, one-line help). Add a command by adding a row here.
COMMANDS = [
    ("env", "course_utils.env", "print platform, device, GPU, mixed-precision dtype, data root, fast mode"),
    ("data", "course_utils.cli.data", "caption datasets: 'synth' makes the embedded one, 'inspect' checks a "
     "folder, 'fetch' finds or downloads a real one"),
    ("demo", "course_utils.cli.demo", "the main job: train and evaluate the attention captioner on the embedded data"),
    ("caption", "course_utils.cli.caption", "caption images with a trained checkpoint"),
    ("predict", "course_utils.cli.predict", "top-5 ImageNet classes and class-activation map of images"),
    ("bench", "course_utils.tools.bench", "measure the kit's fast paths against plain baselines"),
    ("release", "course_utils.grading.release", "make student notebooks and a grader key from master notebooks"),
    ("grade", "course_utils.grading.grade", "grade a folder of student submissions into a CSV grade sheet"),
    ("sync", "course_utils.tools.source", "rewrite notebook setup cells and README links from the kit source"),
]  # fmt: skip

# What exit code 1 means for each command (shown in its --help; 0, 2, 3 and 130 mean the same everywhere).
EXIT_ONE = {
    "data": "inspect: a full dataset differs from its published size or a split file is missing; "
            "fetch: the dataset cannot be had (offline?)",
    "caption": "some images could not be read (each named on stderr; the others were captioned)",
    "release": "masters with broken markers (nothing written), or a student version that fails to run",
    "grade": "the grader failed on some notebooks (named on stderr; the others were graded)",
    "sync": "--check found differences",
}  # fmt: skip

# Options of commands that sit below the command line in the layout (env is a foundation,
# grading an earlier lesson: tests/test_layout.py), so they cannot import course_utils.cli.args
# for their type= functions; their values are checked here, with the same messages.
CHECKED_OPTIONS: dict[str, dict[str, Callable[[str], object]]] = {
    "env": {"device": device},
    "release": {"workers": positive_int, "cell_timeout": positive_float},
    "grade": {"workers": positive_int, "cell_timeout": positive_float, "timeout": positive_float},
}


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="python -m course_utils",
        description="The course kit's commands. 'python -m course_utils COMMAND --help' for details.",
        epilog=exit_codes("the command ran but found problems, named on stderr (see each command's --help)"),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, _module, help_text in COMMANDS:
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def command_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    """The parser of command ``name`` (its arguments added by its module) and the module."""
    table = {row[0]: row[1:] for row in COMMANDS}
    module_name, help_text = table[name]
    module = importlib.import_module(module_name)
    cmd = CommandParser(prog=f"python -m course_utils {name}", description=help_text,
                        epilog=exit_codes(EXIT_ONE.get(name, "(not used)")))  # fmt: skip
    module.add_arguments(cmd)
    return cmd, module


def parse(cmd: argparse.ArgumentParser, name: str, rest: list[str]) -> argparse.Namespace:
    """``cmd.parse_args(rest)``, then the checks of ``CHECKED_OPTIONS``; exits 2 on a bad argument."""
    args = cmd.parse_args(rest)
    for dest, check in CHECKED_OPTIONS.get(name, {}).items():
        value = getattr(args, dest, None)
        if value is not None:
            try:
                check(str(value))
            except argparse.ArgumentTypeError as err:
                cmd.error(f"argument --{dest.replace('_', '-')}: {err}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv[:1] in (["-h"], ["--help"]):
        parser.print_help()
        return 0
    if not argv:
        parser.print_help(sys.stderr)
        print("error: no command given: choose one of the commands above", file=sys.stderr)
        return USAGE
    names = [row[0] for row in COMMANDS]
    if argv[0] not in names:
        print(f"error: unknown command {argv[0]!r}; choose from {', '.join(names)} "
              "(see 'python -m course_utils --help')", file=sys.stderr)  # fmt: skip
        return USAGE
    name, rest = argv[0], argv[1:]
    try:
        cmd, module = command_parser(name)
        args = parse(cmd, name, rest)
        return int(module.run(args) or 0)
    except SystemExit as stop:  # argparse: --help (0) or a bad argument (2, its one line already printed)
        return stop.code if isinstance(stop.code, int) else USAGE
    except KeyboardInterrupt:
        print(f"error: {name}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as err:  # a bug: one line, unless the developer asks for the traceback
        if os.environ.get("COURSE_DEBUG"):
            raise
        first = (str(err).strip().splitlines() or [""])[0][:300]
        print(f"error: {name}: unexpected {type(err).__name__}: {first} (a bug in the kit; run again with "
              "COURSE_DEBUG=1 for the traceback)", file=sys.stderr)  # fmt: skip
        return INTERNAL


if __name__ == "__main__":
    sys.exit(main())
