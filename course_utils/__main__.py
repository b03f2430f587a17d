"""Command line of the kit: ``python -m course_utils COMMAND ...``.

Each command lives in its own module, which exposes two functions:

* ``add_arguments(parser: argparse.ArgumentParser) -> None``
* ``run(args: argparse.Namespace) -> int``  (the exit code)

Modules are imported only when their command runs, so ``--help`` stays fast and a
broken optional dependency only affects the command that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

# (command, module, one-line help). Add a command by adding a row here.
COMMANDS = [
    ("env", "course_utils.env", "print platform, device, GPU, mixed-precision dtype, data root, fast mode"),
    ("data", "course_utils.cli.data", "caption datasets: 'synth' makes the embedded one, 'inspect' checks a folder"),
    ("demo", "course_utils.cli.demo", "the main job: train and evaluate the attention captioner on the embedded data"),
    ("caption", "course_utils.cli.caption", "caption images with a trained checkpoint"),
    ("predict", "course_utils.cli.predict", "top-5 ImageNet classes and class-activation map of images"),
    ("bench", "course_utils.tools.bench", "measure the kit's fast paths against seed-style baselines"),
    ("release", "course_utils.grading.release", "make student notebooks and a grader key from master notebooks"),
    ("grade", "course_utils.grading.grade", "grade a folder of student submissions into a CSV grade sheet"),
    ("sync", "course_utils.tools.source", "rewrite notebook setup cells and README links from the kit source"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils",
        description="The course kit's commands. 'python -m course_utils COMMAND --help' for details.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, _module, help_text in COMMANDS:
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    table = {name: (module, help_text) for name, module, help_text in COMMANDS}
    if argv[0] not in table:
        parser.print_usage(sys.stderr)
        print(f"error: unknown command {argv[0]!r}; choose from {', '.join(table)}", file=sys.stderr)
        return 2
    name, rest = argv[0], argv[1:]
    module_name, help_text = table[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            print(f"error: command {name!r} is not built yet in this version of the kit", file=sys.stderr)
            return 2
        raise
    cmd = argparse.ArgumentParser(prog=f"python -m course_utils {name}", description=help_text)
    module.add_arguments(cmd)
    args = cmd.parse_args(rest)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
