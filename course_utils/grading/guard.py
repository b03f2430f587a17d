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
from typing import Optional

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
def __course_grader_part(blob, token, kit, builtin_names, type_names, forbidden, names, record, free):
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
    mine = [namespace.get(n) for n in names]
    from course_utils.grading.effects import seed_all
    recorder = None
    if record:  # the grader decides this part again outside the kernel, from what the recorder notes
        from course_utils.grading.recorder import Recorder
        recorder = Recorder(names, free, namespace)
    unseed = seed_all()  # the same random numbers here and in the grader's replay
    watch = __course_grader_watch(forbidden, name, kit, mine) if forbidden else None
    try:
        builtins.exec(builtins.compile(code, name, "exec"), namespace)
    finally:
        if watch is not None:
            still = sys.getprofile() is watch[0]
            sys.setprofile(None)
        unseed()
    if watch is not None and (watch[1] or not still):
        calls = ", ".join(sorted(watch[1])) or "the grader's call watch was removed"
        raise RuntimeError("__course_grader_forbidden__: " + calls)
    if recorder is not None:
        try:
            recorder.save(record)
        except Exception:  # no recording: the grader will say the part could not be decided outside
            pass
    shell.user_ns[TOKEN_NAME] = token
def __course_grader_watch(forbidden, test_file, kit, mine):
    # Profile every call while the test runs: a forbidden callable reached from the student's code
    # (directly, through an alias, a wrapper or a closure) is recorded; one the test calls itself is not.
    import os, sys, sysconfig, types
    code_keys, c_objects, descriptors, numpy_names = {{}}, {{}}, {{}}, {{}}
    for dotted in forbidden:
        parts, obj = dotted.split("."), None
        for i in range(len(parts), 0, -1):
            try:
                obj = __import__(".".join(parts[:i]), fromlist=["_"])
            except ImportError:
                continue
            try:
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                obj = None
            break
        target = getattr(obj, "__func__", obj)
        while isinstance(target, types.FunctionType) and isinstance(getattr(target, "__wrapped__", None),
                                                                     types.FunctionType):
            # a decorator's wrapper (torch.no_grad, functools.wraps) may share its code with every function it
            # decorates: watch the function it wraps, which is called from the wrapper, itself library code
            target = target.__wrapped__
        if type(target).__name__ == "_ArrayFunctionDispatcher":  # numpy >= 1.25 wraps np.histogram, np.bincount, ...
            # the dispatcher object is not a C function to the profiler: watch what it calls instead, from the
            # caller's own frame: its Python implementation, or its relevant-arguments function (named like it,
            # in numpy) that comes first when the implementation is C
            numpy_names[target.__name__] = dotted
            target = target._implementation
        if isinstance(target, types.FunctionType):
            c = target.__code__
            code_keys[(c.co_filename, c.co_firstlineno, c.co_name)] = dotted
        elif type(target).__name__ == "method_descriptor":
            descriptors[(target.__objclass__, target.__name__)] = dotted
        elif target is not None:
            c_objects[id(target)] = (target, dotted)
    numpy_dir = os.path.dirname(sys.modules["numpy"].__file__) + os.sep if numpy_names else "?"
    library = tuple({{sys.prefix, sys.base_prefix, sys.exec_prefix, kit.rstrip("/") + "/",
                     *sysconfig.get_paths().values()}})
    found = set()
    for obj in mine:  # the student's own names bound to a forbidden callable: `conv2d = reference`
        for _ in range(5):
            c = getattr(getattr(obj, "__func__", obj), "__code__", None)
            key = (c.co_filename, c.co_firstlineno, c.co_name) if isinstance(c, types.CodeType) else None
            hit = c_objects.get(id(obj))
            if key in code_keys or (hit and hit[0] is obj):
                found.add(code_keys.get(key) or hit[1])
            obj = getattr(obj, "__wrapped__", None) or getattr(obj, "func", None) or getattr(obj, "pyfunc", None)
            if obj is None:
                break

    def from_student(frame):
        while frame is not None:
            f = frame.f_code.co_filename
            if f == test_file:
                return False
            # numpy < 1.25 compiles its dispatch wrappers (np.histogram, np.bincount, ...) under this name
            if not (f.startswith(library) or f.startswith("<frozen") or f == "<__array_function__ internals>"):
                return True
            frame = frame.f_back
        return False

    def profile(frame, event, arg):
        if event == "call":
            c = frame.f_code
            dotted = code_keys.get((c.co_filename, c.co_firstlineno, c.co_name))
            if dotted is None and c.co_name in numpy_names and c.co_filename.startswith(numpy_dir):
                dotted = numpy_names[c.co_name]
            if dotted and from_student(frame.f_back):
                found.add(dotted)
        elif event == "c_call":
            hit = c_objects.get(id(arg))
            dotted = hit[1] if hit and hit[0] is arg else None
            owner = getattr(arg, "__self__", None)
            if dotted is None and descriptors and owner is not None:
                for (cls, meth), name in descriptors.items():
                    if getattr(arg, "__name__", "") == meth and isinstance(owner, cls):
                        dotted = name
            if dotted and from_student(frame):
                found.add(dotted)

    sys.setprofile(profile)
    return profile, found
try:
    __course_grader_part({blob!r}, {token!r}, {kit!r}, {builtin_names!r}, {type_names!r}, {forbidden!r},
                         {names!r}, {record!r}, {free!r})
finally:
    del __course_grader_part, __course_grader_watch
"""

TAMPERED = "__course_grader_tampered__"
FORBIDDEN = "__course_grader_forbidden__"
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


def test_source(code: str) -> str:
    """A test part as Python: IPython syntax (``%magic``) turned into Python here, in the grader."""
    return TransformerManager().transform_cell(code)


def test_file(name: str) -> str:
    """The file name a test part is compiled under, in the kernel and in the grader's replay."""
    return f"<test: {name}>"


def part_code(code: str, name: str, kit: str, token: str, forbidden: Optional[list[str]] = None,
              names: Optional[list[str]] = None, record: str = "", free: Optional[list[str]] = None) -> str:
    """The code sent for one test part.

    The part ends by setting :data:`TOKEN_NAME` to ``token``: the grader counts a part as
    passed only if it reads that token back (code rewritten by a transformer never sets it).
    ``forbidden`` (dotted names) are watched while the test runs: a call reached from the
    student's code, or a student's name among ``names`` bound to one of them, fails the part.
    With ``record`` (a path the kernel can write), the calls of the student's ``names`` and the
    notebook values the test reads (``free``) are recorded there for the grader's replay.
    """
    payload = json.dumps([test_file(name), test_source(code)])
    blob = base64.b64encode(zlib.compress(payload.encode("utf-8"))).decode("ascii")
    return _PART.replace("TOKEN_NAME", repr(TOKEN_NAME)).format(
        blob=blob, token=token, kit=kit, builtin_names=BUILTIN_FUNCTIONS, type_names=BUILTIN_TYPES,
        forbidden=list(forbidden or []), names=list(names or []), record=record, free=list(free or []))


def forbidden_calls(evalue: str) -> str:
    """The forbidden callables the student's code called during a test ("" when none)."""
    return evalue.split(FORBIDDEN + ": ", 1)[1] if FORBIDDEN in evalue else ""


def tampering(evalue: str) -> str:
    """What the tamper check found ("" when the error is not from it)."""
    return evalue.split(TAMPERED + ": ", 1)[1] if TAMPERED in evalue else ""
