"""Compiles the per-message hot path (collector/compiled.py lists it) with Cython when
the build has Cython and a working C compiler; without them hekapy installs as pure
Python, says so once, and runs the same code (slower: see collector/compiled.py).
Everything else about the package is in pyproject.toml."""

import os
import runpy
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HOT = runpy.run_path("collector/compiled.py")
# Python's semantics, unchanged: type hints are not enforced, as in CPython.
DIRECTIVES = {"language_level": 3, "annotation_typing": False, "binding": True}
# The typed modules (.pyx) declare their own directives and C types.
TYPED_DIRECTIVES = {"language_level": 3}


# pip runs this file once per build step; only the steps that build say anything.
BUILDING = any(step in sys.argv for step in ("bdist_wheel", "editable_wheel", "build_ext",
                                             "build", "install", "develop"))


def say(message: str) -> None:
    if BUILDING:
        print(f"hekapy: {message}", file=sys.stderr)


def compiler_works() -> bool:
    """Whether the C compiler the build would use (CC, else the interpreter's) compiles
    against Python's headers."""
    import sysconfig

    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write("#include <Python.h>\nint main(void) { return 0; }\n")
        try:
            compiler.compile([source], output_dir=tmp,
                             include_dirs=[sysconfig.get_paths()["include"]])
        except Exception:
            return False
    return True


def hot_extensions() -> list:
    if not BUILDING:  # metadata only
        return []
    if os.environ.get("HEKAPY_PURE_BUILD", "") not in ("", "0"):
        say("HEKAPY_PURE_BUILD is set: installing the pure-Python hot path")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        say("Cython is missing: installing the pure-Python hot path")
        return []
    if not compiler_works():
        say("no working C compiler (or no Python headers: python3-dev): installing the "
            "pure-Python hot path; `hekapy --version` says which runs")
        return []
    extensions = [Extension(name, [HOT["source_path"](name)]) for name in HOT["HOT_MODULES"]]
    typed = [Extension(name, [HOT["source_path"](name)]) for name in HOT["TYPED_MODULES"]]
    return [*cythonize(extensions, compiler_directives=DIRECTIVES, build_dir="build/cython",
                       quiet=True, nthreads=os.cpu_count() or 1),
            *cythonize(typed, compiler_directives=TYPED_DIRECTIVES, build_dir="build/cython",
                       quiet=True, nthreads=os.cpu_count() or 1)]


class BuildHotPath(build_ext):
    """build_ext that never fails the install: a module that does not compile stays
    pure Python."""

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:  # CompileError, LinkError, a compiler that crashed
            say(f"{ext.name} did not compile ({type(e).__name__}); it stays pure Python")


setup(ext_modules=hot_extensions(), cmdclass={"build_ext": BuildHotPath},
      options={"build_ext": {"parallel": os.cpu_count() or 1}})
