"""The versions the kit promises and tests, and what it installs on Colab and Kaggle.

* requirements.txt and pyproject.toml state the same bounds, and .ci/oldest.txt (CI's second
  environment: every lower bound pinned) is generated from them;
* the versions Colab and Kaggle ship satisfy every bound, so the setup cell's ``%pip install``
  replaces none of them (notably ipywidgets 7.7.1 and ipykernel 6.17.1 on Colab);
* grading and test tools are extras, not runtime dependencies;
* the environment the suite runs in really holds what it claims (CI's oldest one: the pins);
* a failed install in the setup cell ends in one line that says what to do.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python 3.11+, as in CI


def _load_oldest_tool():
    spec = importlib.util.spec_from_file_location("ci_oldest", ROOT / ".ci" / "oldest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


oldest = _load_oldest_tool()

# What the platforms ship today (the packages the kit uses), with where each number comes from:
# - Colab: googlecolab/backend-info, pip-freeze.gpu.txt at its newest commit (2026-08-19,
#   "Upgrade to Python 3.13"), the GPU runtime's `pip freeze`;
# - Kaggle: Kaggle/docker-python at its newest commit (2026-08-12): Dockerfile.tmpl builds on the
#   Colab runtime image of 2026-05-14 (backend-info's pip-freeze.gpu.txt of 2026-05-08 lists its
#   versions), and kaggle_requirements.txt pins ipywidgets==8.1.5 on top.
PLATFORMS = {
    "colab": {"torch": "2.11.0", "torchvision": "0.26.0", "numpy": "2.1.3", "pandas": "2.2.3",
              "pillow": "11.3.0", "matplotlib": "3.10.0", "scipy": "1.16.3", "ipywidgets": "7.7.1",
              "ipykernel": "6.17.1", "nbclient": "0.10.4", "nbformat": "5.11.1", "tqdm": "4.67.3",
              "nltk": "3.9.1", "pycocotools": "2.0.11", "scikit-image": "0.25.2", "scikit-learn": "1.6.1"},
    "kaggle": {"torch": "2.10.0", "torchvision": "0.25.0", "numpy": "2.0.2", "pandas": "2.2.2",
               "pillow": "11.3.0", "matplotlib": "3.10.0", "scipy": "1.16.3", "ipywidgets": "8.1.5",
               "ipykernel": "6.17.1", "nbclient": "0.10.4", "nbformat": "5.10.4",
               "scikit-image": "0.25.2", "scikit-learn": "1.6.1"},
}  # fmt: skip


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def requirements_txt() -> dict[str, Requirement]:
    return {oldest.normalise(r.name): r for r in map(Requirement, oldest.requirement_lines())}


def pyproject_requirements(with_extras: bool = True) -> dict[str, Requirement]:
    project = pyproject()
    lines = list(project["dependencies"])
    if with_extras:
        for extra in project.get("optional-dependencies", {}).values():
            lines += [line for line in extra if Requirement(line).name != project["name"]]  # not "course-utils[grade]"
    return {oldest.normalise(r.name): r for r in map(Requirement, lines)}


def test_requirements_txt_and_pyproject_state_the_same_bounds():
    txt, toml = requirements_txt(), pyproject_requirements()
    assert sorted(txt) == sorted(toml), "a package is in one file and not in the other"
    differ = {name: (str(txt[name].specifier), str(toml[name].specifier))
              for name in txt if txt[name].specifier != toml[name].specifier}  # fmt: skip
    assert not differ, f"requirements.txt and pyproject.toml disagree (txt, pyproject): {differ}"


def test_the_oldest_set_is_generated_from_the_lower_bounds():
    text = (ROOT / ".ci" / "oldest.txt").read_text(encoding="utf-8")
    assert text == oldest.oldest_text(), "run 'python .ci/oldest.py'"
    pins = dict(line.split("#")[0].strip().split("==") for line in text.splitlines() if line and line[0] != "#")
    bounds = {name: oldest.lower_bound(r) for name, r in pyproject_requirements().items()}
    assert pins == {**bounds, **oldest.MOVE_TOGETHER}
    for name in ("torch", "torchvision", "numpy", "pandas", "pillow", "ipywidgets"):
        assert name in pins


def test_a_requirement_without_a_lower_bound_is_refused():
    with pytest.raises(ValueError, match="lower bound"):
        oldest.lower_bound(Requirement("numpy<3"))
    assert oldest.lower_bound(Requirement("numpy>=1.24,<3")) == "1.24"


def test_the_oldest_check_fails_when_the_file_drifts(tmp_path, monkeypatch, capsys):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\nnumpy>=1.24  # arrays\nPillow>=9.5\n-e .\n", encoding="utf-8")
    monkeypatch.setattr(oldest, "ROOT", tmp_path)
    monkeypatch.setattr(oldest, "REQUIREMENTS", requirements)
    monkeypatch.setattr(oldest, "OLDEST", tmp_path / "oldest.txt")
    assert oldest.main(["--check"]) == 1  # missing
    assert oldest.main([]) == 0
    written = (tmp_path / "oldest.txt").read_text().splitlines()
    assert "numpy==1.24" in written and "pillow==9.5" in written
    requirements.write_text("numpy>=1.26\nPillow>=9.5\n", encoding="utf-8")  # a bound moved up
    assert oldest.main(["--check"]) == 1
    assert "differs" in capsys.readouterr().err


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_what_the_platform_ships_satisfies_every_bound(platform):
    """pip keeps an installed version that satisfies the requirement, so the setup cell's
    install replaces none of these (an upgraded ipykernel or ipywidgets needs a restart on Colab)."""
    wanted = pyproject_requirements()
    refused = {name: f"{version} not in {wanted[name].specifier}" for name, version in PLATFORMS[platform].items()
               if name in wanted and not wanted[name].specifier.contains(version)}  # fmt: skip
    assert not refused, f"installing the kit on {platform} would replace: {refused}"


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_what_the_platform_ships_lies_in_the_tested_range(platform):
    """The bottom of the tested range is .ci/oldest.txt; the top is what CI's main environment
    installs, the newest releases (at least as new as any platform's)."""
    pins = {name: oldest.lower_bound(r) for name, r in pyproject_requirements().items()}
    for name in ("torch", "torchvision", "numpy", "pandas", "pillow", "ipywidgets", "ipykernel", "matplotlib"):
        assert Version(pins[name]) <= Version(PLATFORMS[platform][name]), (platform, name)


def test_grading_and_test_tools_are_extras_not_runtime_dependencies():
    runtime = pyproject_requirements(with_extras=False)
    for name in ("nbformat", "nbclient", "ipykernel", "pytest", "ruff"):
        assert name not in runtime, f"{name} is needed only for grading and tests: put it in an extra"
    extras = pyproject()["optional-dependencies"]
    assert {"nbformat", "nbclient", "ipykernel"} <= {Requirement(x).name for x in extras["grade"]}
    assert "course-utils[grade]" in extras["test"]


def test_the_installed_versions_are_the_ones_this_environment_stands_for():
    """In CI's oldest environment (COURSE_CI_ENV=oldest) every package is exactly at its lower
    bound; anywhere else every installed version satisfies the requirements."""
    want_oldest = os.environ.get("COURSE_CI_ENV") == "oldest"
    wrong = {}
    for name, requirement in pyproject_requirements().items():
        installed = importlib.metadata.version(name)
        bound = oldest.lower_bound(requirement)
        ok = Version(installed) == Version(bound) if want_oldest else requirement.specifier.contains(installed)
        if not ok:
            wrong[name] = f"{installed} installed, want {'==' + bound if want_oldest else requirement.specifier}"
    assert not wrong, wrong


def test_a_failed_install_in_the_setup_cell_ends_in_one_line(tmp_path):
    """The setup cell run by IPython as on Colab, with the kit 'missing' and a kit source pip
    cannot install: pip's own error, then one line that says what to do, no traceback."""
    pytest.importorskip("IPython")
    from course_utils.tools.source import install_failed_message, setup_cell_source

    source = str(tmp_path / "no-such-kit.zip")
    cell = setup_cell_source(source).replace('find_spec("course_utils")', 'find_spec("course_utils_absent")')
    runner = textwrap.dedent("""
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        result = InteractiveShell.instance().run_cell(sys.stdin.read())
        sys.exit(0 if result.success else 3)
    """)
    proc = subprocess.run([sys.executable, "-c", runner], input=cell, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out
    assert install_failed_message(source) in out.splitlines(), out
    assert "Traceback" not in out and "SetupError" not in out, out
    assert "Settings > Internet" in install_failed_message(source)
