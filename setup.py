"""Compiles the per-message hot path (collector/compiled.py lists it) with Cython when
the build has Cython and a C compiler; without them hekapy installs as pure Python.
Everything else about the package is in pyproject.toml."""

import os
import runpy

from setuptools import Extension, setup

HOT = runpy.run_path("collector/compiled.py")
# Python's semantics, unchanged: type hints are not enforced, as in CPython.
DIRECTIVES = {"language_level": 3, "annotation_typing": False, "binding": True}


def hot_extensions() -> list:
    if os.environ.get("HEKAPY_PURE_BUILD", "") not in ("", "0"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("hekapy: Cython is missing; installing the pure-Python hot path")
        return []
    # optional: a module that fails to compile stays pure Python (a warning, no error).
    extensions = [Extension(name, [HOT["source_path"](name)], optional=True)
                  for name in HOT["HOT_MODULES"]]
    return cythonize(extensions, compiler_directives=DIRECTIVES, build_dir="build/cython",
                     quiet=True, nthreads=os.cpu_count() or 1)


setup(ext_modules=hot_extensions(),
      options={"build_ext": {"parallel": os.cpu_count() or 1}})
