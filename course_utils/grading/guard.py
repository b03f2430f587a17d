"""The code the grader sends into a student's kernel: set it up, check it, run one test part.

A student's code runs in the same Python process as the tests, so it can try to change
how that process runs code: a custom exception handler that swallows failures
(``get_ipython().set_custom_exc``), input or AST transformers and ``pre_run_cell`` hooks
that rewrite or record the test code, a patched ``course_utils.checks`` or
``importlib.reload``, a replaced builtin. The grader answers in three steps:

* :data:`INIT_CODE` runs first in every fresh kernel: ``exit()`` / ``quit()`` raise
  ``SystemExit`` (an error of that cell, as in plain Python) instead of stopping the kernel;
* :data:`PREPARE_CODE` runs after the student's last cell: it removes custom exception
  handlers, transformers and event hooks, and forgets every ``course_utils`` module so the
  tests import the grader's own copy of the kit afresh;
* :func:`part_code` wraps each test part: it checks again (fail closed: any tampering left
  fails the part with a message saying what was found), then runs the test in a copy of
  the student's namespace. The test's text travels encoded and is never stored in the
  kernel's history, so a hook that records cells does not get it as plain text.

These are parts sent with ``silent=True`` (IPython then runs no ``pre_run_cell`` /
``post_run_cell`` hooks) and the grader reads the ``execute_reply`` status, which a custom
exception handler does not change. Code that takes over the interpreter itself (patches
``ipykernel`` or the C level) can still lie: docs/grading.md lists these limits.
"""

from __future__ import annotations

import base64
import builtins
import json
import types
import zlib

from IPython.core.inputtransformer2 import TransformerManager

INIT_CODE = """\
def __course_grader_init():
    import IPython
    shell = IPython.get_ipython()
    def ask_exit(*args, **kwargs):
        raise SystemExit("exit() and quit() do not stop a graded notebook")
    shell.ask_exit = ask_exit
__course_grader_init()
del __course_grader_init
"""

PREPARE_CODE = """\
def __course_grader_prepare():
    import sys, IPython
    from IPython.core.inputtransformer2 import TransformerManager
    shell = IPython.get_ipython()
    shell.set_custom_exc((), None)
    shell.input_transformers_post = []
    shell.ast_transformers = []
    shell.input_transformer_manager = TransformerManager()
    for event in ("pre_run_cell", "post_run_cell"):
        shell.events.callbacks[event] = []
    for name in [m for m in sys.modules if m == "course_utils" or m.startswith("course_utils.")]:
        del sys.modules[name]
__course_grader_prepare()
del __course_grader_prepare
"""

# Runs in the kernel for each test part; `problems` fail the part (fail closed).
_PART = """\
def __course_grader_part(blob, token, kit, builtin_names, type_names):
    import builtins, sys, zlib, base64, json, IPython
    shell = IPython.get_ipython()
    problems = []
    if shell.custom_exceptions:
        problems.append("a custom exception handler (set_custom_exc)")
    if shell.input_transformers_post or shell.ast_transformers:
        problems.append("an input or AST transformer")
    if any(shell.events.callbacks.get(e) for e in ("pre_run_cell", "post_run_cell")):
        problems.append("a pre_run_cell/post_run_cell hook")
    function_type = type(sys.intern)
    for n, owner, real in builtin_names:
        f = builtins.__dict__.get(n)
        if type(f) is not function_type or getattr(f.__self__, "__name__", "") != owner or f.__name__ != real:
            problems.append(f"the builtin {{n}}() was replaced")
    for n, real in type_names:
        t = builtins.__dict__.get(n)
        if not isinstance(t, type) or t.__flags__ & 512 or t.__name__ != real:
            problems.append(f"the builtin type {{n}} was replaced")
    if type(sys.modules) is not dict or type(sys.path) is not list:
        problems.append("sys.modules or sys.path was replaced")
    prefix = kit.rstrip("/") + "/"
    for m in [m for m in sys.modules if m == "course_utils" or m.startswith("course_utils.")]:
        if not builtins.str(getattr(sys.modules[m], "__file__", "") or "").startswith(prefix):
            problems.append(f"the module {{m}} does not come from the grader's copy of the kit")
    if problems:
        raise RuntimeError("__course_grader_tampered__: " + "; ".join(sorted(set(problems))[:3]))
    sys.path[:] = [kit] + [p for p in sys.path if p != kit]
    import course_utils.checks as checks
    if not checks.__file__.startswith(prefix):
        raise RuntimeError("__course_grader_tampered__: course_utils.checks does not come from the grader's kit")
    namespace = builtins.dict(shell.user_ns)
    namespace.update({{k: builtins.getattr(checks, k) for k in builtins.dir(checks) if k.startswith("check_")}})
    name, code = json.loads(zlib.decompress(base64.b64decode(blob)).decode("utf-8"))
    builtins.exec(builtins.compile(code, name, "exec"), namespace)
    shell.user_ns[TOKEN_NAME] = token
try:
    __course_grader_part({blob!r}, {token!r}, {kit!r}, {builtin_names!r}, {type_names!r})
finally:
    del __course_grader_part
"""

TAMPERED = "__course_grader_tampered__"
TOKEN_NAME = "__course_grader_token"  # set by a test part that ran to its end; read back as a user_expression


def _pristine_builtins() -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """Builtin functions (name, owning module, real name) and builtin types (name, real name) of a
    plain interpreter, as this (grader's) process sees them: ``open`` is ``io.open``, ``IOError``
    is ``OSError``. ``input`` is left out: ipykernel replaces it on purpose (to forward it to the browser).
    """
    functions = sorted((n, getattr(v.__self__, "__name__", ""), v.__name__) for n, v in vars(builtins).items()
                       if isinstance(v, types.BuiltinFunctionType) and n not in ("input", "breakpoint"))
    kinds = sorted((n, v.__name__) for n, v in vars(builtins).items()
                   if isinstance(v, type) and not v.__flags__ & 512)  # 512: Py_TPFLAGS_HEAPTYPE (a class statement)
    return functions, kinds


BUILTIN_FUNCTIONS, BUILTIN_TYPES = _pristine_builtins()


def part_code(code: str, name: str, kit: str, token: str) -> str:
    """The code sent for one test part; IPython syntax (``%magic``) is turned into Python here, in the grader.

    The part ends by setting :data:`TOKEN_NAME` to ``token``: the grader counts a part as
    passed only if it reads that token back (code rewritten by a transformer never sets it).
    """
    python = TransformerManager().transform_cell(code)
    payload = json.dumps([f"<test: {name}>", python])
    blob = base64.b64encode(zlib.compress(payload.encode("utf-8"))).decode("ascii")
    return _PART.replace("TOKEN_NAME", repr(TOKEN_NAME)).format(
        blob=blob, token=token, kit=kit, builtin_names=BUILTIN_FUNCTIONS, type_names=BUILTIN_TYPES)


def tampering(evalue: str) -> str:
    """What the tamper check found ("" when the error is not from it)."""
    return evalue.split(TAMPERED + ": ", 1)[1] if TAMPERED in evalue else ""
