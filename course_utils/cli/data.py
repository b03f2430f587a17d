"""``python -m course_utils data ACTION``: make, inspect and fetch caption datasets.

* ``data synth --out DIR [--images N] [--lang en|fr] [--seed S] [--size PX]``: write the
  embedded synthetic dataset (skipped when DIR already holds the same one).
* ``data inspect PATH``: detect the format of a dataset folder or annotation file and print
  one figure per line (``images: 8091``, ``captions: 40455``, splits, dropped/repaired rows).
  Exit code 0; 1 when a full dataset differs from its published size; 2 when the path is
  missing, unknown or broken (one ``error:`` line).
* ``data fetch NAME [--root DIR]``: find NAME under /kaggle/input or DIR, else download,
  extract and verify it (flickr8k, karpathy, coco2014, coco2017). Offline: one line, exit 1.

Bad arguments (``--images 0``, ``--out`` naming a file) are one ``error:`` line, exit 2.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from course_utils.cli.args import fail, int_at_least, non_negative_int, output_dir
from course_utils.env import data_root


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = sub.add_parser("synth", help="write the embedded synthetic captioning dataset")
    s.add_argument("--out", type=output_dir, default=None, help="folder (default: DATA_ROOT/synth_LANG)")
    s.add_argument("--images", type=int_at_least(1), default=2000, help="number of images (default 2000)")
    s.add_argument("--lang", choices=["en", "fr"], default="en", help="caption language")
    s.add_argument("--seed", type=non_negative_int, default=0)
    s.add_argument("--size", type=int_at_least(32), default=None, help="image side in pixels (default 96)")
    i = sub.add_parser("inspect", help="detect a dataset's format and print its figures")
    i.add_argument("path", type=Path, help="dataset folder or annotation file")
    i.add_argument("--limit", type=non_negative_int, default=5, help="offending rows shown per kind (default 5)")
    f = sub.add_parser("fetch", help="locate (Kaggle) or download (Colab) a real dataset")
    f.add_argument("name", choices=["flickr8k", "flickr30k", "karpathy", "coco2014", "coco2017"])
    f.add_argument("--root", type=output_dir, default=None, help="download folder (default: DATA_ROOT)")
    for p in (s, i, f):
        p.epilog = parser.epilog


def _synth(args: argparse.Namespace) -> int:
    from course_utils.caption_data import synth

    out = args.out or data_root() / f"synth_{args.lang}"
    size = args.size or synth.DEFAULT_SIZE
    start = time.perf_counter()
    try:
        synth.generate(out, n_images=args.images, lang=args.lang, seed=args.seed, image_size=size)
    except (ValueError, FileExistsError) as err:
        return fail(str(err))
    except OSError as err:  # e.g. a read-only folder or a full disk
        return fail(f"{out}: cannot write the dataset ({err.strerror or err})")
    print(f"synthetic dataset: {out}")
    print(f"images: {args.images}")
    print(f"seconds: {time.perf_counter() - start:.1f}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from course_utils.caption_data.formats import load_dataset
    from course_utils.caption_data.records import DatasetFormatError

    try:
        data = load_dataset(args.path)
    except (DatasetFormatError, FileNotFoundError) as err:
        return fail(str(err))
    except OSError as err:  # unreadable file or folder
        return fail(f"{err.filename or args.path}: cannot read it ({err.strerror or err})")
    lines = data.summary()
    report_start = len(lines) - len(data.report.lines())
    print("\n".join(lines[:report_start] + data.report.lines(limit=args.limit)))
    return 1 if data.report.problems else 0


def _fetch(args: argparse.Namespace) -> int:
    from course_utils.caption_data.fetch import KAGGLE_INPUT, FetchError, fetch, locate

    root = args.root or data_root()
    found = locate(args.name, [KAGGLE_INPUT, root])
    if found:
        print(f"{args.name}: found at {found}")
        return 0
    try:
        folder = fetch(args.name, root)
    except FetchError as err:
        return fail(str(err), code=1)
    print(f"{args.name}: ready at {folder}")
    return 0


def run(args: argparse.Namespace) -> int:
    return {"synth": _synth, "inspect": _inspect, "fetch": _fetch}[args.action](args)
