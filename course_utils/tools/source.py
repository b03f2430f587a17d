"""Where the kit comes from: the one setting a teacher's fork changes.

``REPO`` (GitHub ``owner/name``) builds the Open-in-Colab and Kaggle links of the README,
and ``KIT_SOURCE`` is what notebooks ``pip install`` when the kit is missing: a git URL
(default), a folder on Google Drive (``/content/drive/MyDrive/course-kit``) or an uploaded
zip (``/content/course-kit.zip``) all work, since pip installs each of them.

After changing them, run ``python -m course_utils sync`` to rewrite the first cell of
every notebook and the README's syllabus table (``--check`` only reports differences;
the tests run it).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import nbformat

REPO = "pytorch-course-kit/course-kit"
BRANCH = "main"
KIT_SOURCE = f"git+https://github.com/{REPO}.git@{BRANCH}"

ROOT = Path(__file__).resolve().parents[2]
SETUP_TAG = "setup"  # cell tag of the setup cell every notebook starts with


def install_failed_message(kit_source: str = KIT_SOURCE) -> str:
    """The one line the setup cell shows when ``%pip`` could not install the kit (pip prints its
    own error above it, and IPython's ``%pip`` does not stop the cell when pip fails)."""
    return (
        f"error: could not install the course kit from {kit_source}: on Kaggle turn on Settings > Internet; "
        "otherwise check the network and KIT_SOURCE in course_utils/tools/source.py (a Drive folder must be "
        "mounted, a zip uploaded), then run this cell again"
    )


def setup_cell_source(kit_source: str = KIT_SOURCE) -> str:
    """The setup cell every notebook starts with (tagged ``setup``).

    When the kit is missing it installs ``kit_source`` with its runtime dependencies only:
    Colab and Kaggle already ship torch, numpy, ipywidgets, ipykernel..., and pip keeps every
    installed version that the kit's lower bounds accept. If the install fails, the cell stops
    with one line that says what to do (:func:`install_failed_message`), not a traceback.
    """
    return (
        "# Setup (same in every notebook): install the kit if missing, then detect\n"
        "# platform and GPU, seed everything and read fast mode (COURSE_FAST=1).\n"
        "import importlib\n"
        "import importlib.util\n"
        "\n"
        'if importlib.util.find_spec("course_utils") is None:\n'
        f'    %pip install -q "{kit_source}"\n'
        "    importlib.invalidate_caches()\n"
        'if importlib.util.find_spec("course_utils") is None:\n'
        "    class SetupError(Exception):\n"
        "        def _render_traceback_(self):  # Jupyter shows this one line instead of a traceback\n"
        "            return [str(self)]\n"
        f"    raise SetupError({install_failed_message(kit_source)!r})\n"
        "from course_utils.env import setup\n"
        "\n"
        "ENV = setup()"
    )


def colab_url(notebook: str, repo: str = REPO, branch: str = BRANCH) -> str:
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/{notebook}"


def kaggle_url(notebook: str, repo: str = REPO, branch: str = BRANCH) -> str:
    raw = f"https://github.com/{repo}/blob/{branch}/notebooks/{notebook}"
    return f"https://kaggle.com/kernels/welcome?src={raw}"


def notebook_paths(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _title(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, flags=re.M)
            if m:
                return m.group(1).strip()
    return path.stem


def syllabus_table(root: Path = ROOT) -> str:
    """Markdown table, one row per notebook, with Colab and Kaggle links."""
    rows = ["| # | notebook | Colab | Kaggle |", "|---|---|---|---|"]
    for path in notebook_paths(root):
        num, name = path.stem[:2], path.name
        rows.append(
            f"| {num} | [{_title(path)}](notebooks/{name}) "
            f"| [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(name)}) "
            f"| [![Open in Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)]({kaggle_url(name)}) |"
        )
    return "\n".join(rows)


README_START, README_END = "<!-- syllabus:start -->", "<!-- syllabus:end -->"


def sync(root: Path = ROOT, check: bool = False) -> list[str]:
    """Bring setup cells and README table in line with the settings; return what differed."""
    changed: list[str] = []
    want = setup_cell_source()
    for path in notebook_paths(root):
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if SETUP_TAG in c.get("metadata", {}).get("tags", [])]
        if len(cells) != 1 or nb.cells.index(cells[0]) > 2:
            changed.append(f"{path.name}: needs exactly one code cell tagged '{SETUP_TAG}' near the top")
            continue
        if cells[0].source != want:
            changed.append(f"{path.name}: setup cell differs")
            if not check:
                cells[0].source = want
                nbformat.write(nb, path)
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    if README_START in text and README_END in text:
        head, rest = text.split(README_START, 1)
        _, tail = rest.split(README_END, 1)
        new = f"{head}{README_START}\n{syllabus_table(root)}\n{README_END}{tail}"
        if new != text:
            changed.append("README.md: syllabus table differs")
            if not check:
                readme.write_text(new, encoding="utf-8")
    else:
        changed.append(f"README.md: missing {README_START} / {README_END} markers")
    return changed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="report differences, change nothing")


def run(args: argparse.Namespace) -> int:
    changed = sync(check=args.check)
    for line in changed:
        print(line)
    if args.check and changed:
        print("run 'python -m course_utils sync' to fix")
        return 1
    print("up to date" if not changed else f"rewrote {len(changed)} item(s)")
    return 0
