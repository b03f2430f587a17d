"""Every command, fed bad arguments: one ``error:`` line naming the argument or file, no
traceback, the exit code its ``--help`` documents (2: bad arguments, nothing done)."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import course_utils.tools.source as source
from course_utils.__main__ import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]

# (arguments, exit code, text the error line must contain). In the arguments, FILE is an
# existing plain file, MISSING a path that does not exist, MASTERS a folder holding one
# master notebook, IMAGE a real image, OWN a release folder holding a teacher's own file.
BAD = [
    ([], 2, "no command given"),
    (["nope"], 2, "unknown command 'nope'"),
    (["env", "--device", "foo"], 2, "argument --device: 'foo' is not a device"),
    (["env", "--device", "cuda:7"], 2, "argument --device: 'cuda:7'"),
    (["env", "extra"], 2, "unrecognized arguments: extra"),
    (["data"], 2, "ACTION"),
    (["data", "synth", "--out", "FILE"], 2, "argument --out: FILE: is a file, not a folder"),
    (["data", "synth", "--out", "FILE/sub"], 2, "lies inside FILE, which is a file"),
    (["data", "synth", "--images", "0"], 2, "argument --images: must be a whole number >= 1, got '0'"),
    (["data", "synth", "--images", "many"], 2, "argument --images: must be a whole number"),
    (["data", "synth", "--size", "8"], 2, "argument --size: must be a whole number >= 32"),
    (["data", "synth", "--lang", "de"], 2, "argument --lang: invalid choice: 'de'"),
    (["data", "inspect"], 2, "path"),
    (["data", "inspect", "MISSING"], 2, "MISSING: no such file or folder"),
    (["data", "inspect", "FILE"], 2, "FILE: unknown caption format"),
    (["data", "inspect", "FILE", "--limit", "-1"], 2, "argument --limit: must be a whole number >= 0"),
    (["data", "fetch", "nope"], 2, "argument name: invalid choice: 'nope'"),
    (["data", "fetch", "flickr8k", "--root", "FILE"], 2, "argument --root: FILE: is a file"),
    (["demo", "--epochs", "0"], 2, "argument --epochs: must be a whole number >= 1"),
    (["demo", "--images", "2"], 2, "argument --images: must be a whole number >= 10"),
    (["demo", "--beam", "0"], 2, "argument --beam"),
    (["demo", "--threads", "-1"], 2, "argument --threads: must be a whole number >= 0"),
    (["demo", "--figures", "-1"], 2, "argument --figures"),
    (["demo", "--out", "FILE"], 2, "argument --out: FILE: is a file"),
    (["demo", "--device", "tpu"], 2, "argument --device: 'tpu' is not a device"),
    (["caption"], 2, "required: images, --checkpoint"),
    (["caption", "IMAGE", "--checkpoint", "MISSING", "--beam", "0"], 2, "argument --beam: must be a whole number >= 1"),
    (["caption", "IMAGE", "--checkpoint", "MISSING", "--max-len", "0"], 2, "argument --max-len"),
    (["caption", "IMAGE", "--checkpoint", "MISSING", "--batch-size", "x"], 2, "argument --batch-size"),
    (["caption", "IMAGE", "--checkpoint", "MISSING", "--out", "FILE"], 2, "argument --out: FILE: is a file"),
    (["caption", "IMAGE", "--checkpoint", "MISSING"], 2, "MISSING: no such checkpoint file"),
    (["caption", "IMAGE", "--checkpoint", "FILE"], 2, "FILE"),
    (["caption", "IMAGE", "--checkpoint", "IMAGE"], 2, "IMAGE"),
    (["bench", "--threads", "-2"], 2, "argument --threads"),
    (["bench", "--vocab-size", "-5"], 2, "argument --vocab-size: must be a whole number >= 0"),
    (["bench", "--device", "foo"], 2, "argument --device"),
    (["release"], 2, "required: SRC_DIR, OUT_DIR"),
    (["release", "MISSING", "out"], 2, "MISSING: no such folder of master notebooks"),
    (["release", "MASTERS", "MASTERS"], 2, "must differ from the folder of masters"),
    (["release", "MASTERS", "FILE"], 2, "FILE: a file, not a folder"),
    (["release", "MASTERS", "out", "--workers", "0"], 2, "argument --workers: must be a whole number >= 1"),
    (["release", "MASTERS", "out", "--cell-timeout", "-1"], 2, "argument --cell-timeout: must be a number > 0"),
    (["release", "MASTERS", "OWN", "--no-check"], 2, "would replace 1 file(s) that no release wrote"),
    (["grade"], 2, "required: SUBMISSIONS_DIR, --key"),
    (["grade", "MISSING", "--key", "MISSING"], 2, "MISSING"),
    (["grade", "MISSING", "--key", "MISSING", "--workers", "0"], 2, "argument --workers"),
    (["grade", "MISSING", "--key", "MISSING", "--cell-timeout", "-1"], 2, "argument --cell-timeout"),
    (["grade", "MISSING", "--key", "MISSING", "--timeout", "nan"], 2, "argument --timeout: must be a number > 0"),
    (["sync", "extra"], 2, "unrecognized arguments: extra"),
]


@pytest.fixture
def paths(tmp_path, monkeypatch):
    """The placeholders of ``BAD``, made in a fresh folder that is also the working directory."""
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "data"))
    (tmp_path / "FILE").write_text("not what the command wants\n")
    Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "IMAGE.png")
    master = new_notebook(cells=[new_code_cell("x = 1")])
    (tmp_path / "MASTERS").mkdir()
    nbformat.write(master, str(tmp_path / "MASTERS" / "01_x.ipynb"))
    (tmp_path / "OWN" / "student").mkdir(parents=True)
    (tmp_path / "OWN" / "student" / "my_notes.md").write_text("a teacher's own file")
    names = {"FILE": "FILE", "MISSING": "MISSING", "MASTERS": "MASTERS", "OWN": "OWN", "IMAGE": "IMAGE.png"}
    return lambda args: [names.get(a, a) for a in args]


def _one_error_line(err: str, out: str) -> str:
    assert "Traceback" not in err + out
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.parametrize("args, code, message", BAD, ids=[" ".join(a) or "(none)" for a, _, _ in BAD])
def test_bad_arguments_in_process(paths, capsys, args, code, message):
    got = main(paths(args))
    out, err = capsys.readouterr()
    line = _one_error_line(err, out)
    assert got == code, err
    assert message.replace("IMAGE", "IMAGE.png") in line, line
    if args and args[0] not in ("nope",) and "no command" not in message:  # argparse errors: nothing else printed
        assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("args", [["caption", "IMAGE", "--checkpoint", "MISSING", "--beam", "0"],
                                  ["data", "synth", "--out", "FILE"], [], ["env", "--device", "foo"]],
                         ids=["caption --beam 0", "synth --out FILE", "(none)", "env --device foo"])  # fmt: skip
def test_bad_arguments_through_a_real_process(paths, tmp_path, args):
    """The same as a user sees it: nothing but the one line reaches stderr, exit code 2."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COURSE_DATA": str(tmp_path / "data"),
           "HOME": str(tmp_path)}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "course_utils", *paths(args)], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)  # fmt: skip
    _one_error_line(done.stderr, done.stdout)
    assert done.returncode == 2, done.stderr


def test_no_command_prints_the_help_and_exits_2(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "usage: python -m course_utils" in err and all(name in err for name, *_ in COMMANDS)


HELPS = [[name] for name, *_ in COMMANDS] + [["data", action] for action in ("synth", "inspect", "fetch")]


@pytest.mark.parametrize("argv", HELPS, ids=lambda a: " ".join(a))
def test_every_help_documents_the_exit_codes(capsys, argv):
    assert main([*argv, "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "exit codes: 0 done; 1 " in out and "2 bad arguments or unusable input" in out and "3 unexpected" in out


def test_an_unexpected_error_is_one_line_and_exit_3(monkeypatch, capsys):
    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(source, "run", broken)
    assert main(["sync"]) == 3
    line = _one_error_line(*reversed(capsys.readouterr()))
    assert line.startswith("error: sync: unexpected KeyError: 'a bug'") and "COURSE_DEBUG=1" in line
    monkeypatch.setenv("COURSE_DEBUG", "1")
    with pytest.raises(KeyError, match="a bug"):  # the developer gets the traceback
        main(["sync"])


def test_release_replaces_only_what_a_release_wrote(paths, tmp_path, capsys):
    """A re-release is quiet; a teacher's own or edited file needs --force, and is named."""
    assert main(["release", "MASTERS", "rel", "--no-check"]) == 0
    assert main(["release", "MASTERS", "rel", "--no-check"]) == 0  # its own earlier files: replaced
    student = tmp_path / "rel" / "student" / "01_x.ipynb"
    student.write_text(student.read_text() + " ")
    capsys.readouterr()
    assert main(["release", "MASTERS", "rel", "--no-check"]) == 2
    assert "student/01_x.ipynb" in _one_error_line(*reversed(capsys.readouterr()))
    assert main(["release", "MASTERS", "OWN", "--no-check", "--force"]) == 0
    assert not (tmp_path / "OWN" / "student" / "my_notes.md").exists()
