"""The per-message hot path, compiled.

`pip install` compiles the modules below with Cython (setup.py) from their own Python
source: there is one implementation, and the compiled module is that same code with
Python's semantics kept (`annotation_typing` off, so type hints are not enforced). Where
the build cannot compile (no C compiler, no Cython), or with `HEKAPY_PURE_BUILD=1` at
install time, the package installs and runs as pure Python: 6-9% more CPU per line in
the pipeline benchmark, nothing else differs.

`HEKAPY_PURE=1` in the environment makes hekapy import the Python source of these
modules even where compiled ones are installed: an operator's way to rule the compiled
path out, and how the tests check that both give the same bytes. A comma-separated list
of module names instead of 1 does it for those modules only.

`TYPED_MODULES` are different: typed Cython (.pyx) written for the common case of one
step, a second implementation beside a Python reference that stays the definition.
Code asks for one with `typed_module(name)` and runs the reference when it gets None:
the module was not built (no Cython or compiler), or HEKAPY_PURE names it (1 names them
all). Tests hold each typed module to its reference's bytes (docs/performance.md).

This file is read by setup.py before hekapy is installed: standard library only.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

HOT_MODULES = (
    "hekapy.collector.engine.message",
    "hekapy.collector.engine.matcher",
    "hekapy.collector.splitters.holding",
    "hekapy.collector.splitters.token",
    "hekapy.collector.engine.strftime",
    "hekapy.collector.engine.queue",
    "hekapy.collector.engine.acks",
    "hekapy.collector.engine.serialize",
    "hekapy.collector.engine.buffer",
    "hekapy.collector.engine.buffering",
    "hekapy.collector.engine.router",
    "hekapy.collector.engine.pipeline",
    "hekapy.collector.engine.contexts",
    "hekapy.collector.engine.hold_window",
    "hekapy.collector.inputs.logstreamer.logstreamer_input",
    "hekapy.collector.inputs.logstreamer.reader",
    "hekapy.collector.engine.wallclock",
    "hekapy.decoders.base",
    "hekapy.decoders.openstack_log",
    "hekapy.outputs.batching",
    "hekapy.outputs.elasticsearch.bulk",
    "hekapy.outputs.elasticsearch.client",
    "hekapy.outputs.elasticsearch.es_encoder",
    "hekapy.outputs.elasticsearch.es_json",
    "hekapy.outputs.elasticsearch.output",
    "hekapy.outputs.influxdb.line_protocol",
)

# Typed modules (.pyx) and, for each, where its Python reference is.
TYPED_MODULES = (
    "hekapy.outputs.elasticsearch.es_doc_writer",  # ESJsonEncoder.encode (es_json.py)
    "hekapy.decoders.oslo_line",  # match_line, match_context (openstack_log.py)
)

PURE_ENV = "HEKAPY_PURE"


def source_path(module: str) -> str:
    """The source file of a hot or typed module, relative to the source tree's root (the
    `hekapy.` namespace maps onto the tree's top-level folders)."""
    ext = ".pyx" if module in TYPED_MODULES else ".py"
    return module.removeprefix("hekapy.").replace(".", "/") + ext


def typed_module(name: str) -> ModuleType | None:
    """The typed module `name`, or None where its Python reference must run (not built,
    or HEKAPY_PURE names it)."""
    if name in pure_modules():
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def is_compiled(module: ModuleType) -> bool:
    return isinstance(getattr(module, "__loader__", None),
                      importlib.machinery.ExtensionFileLoader)


def status() -> dict[str, bool]:
    """Hot or typed module → whether it runs compiled (imports them all)."""
    out = {name: is_compiled(importlib.import_module(name)) for name in HOT_MODULES}
    out.update((name, typed_module(name) is not None) for name in TYPED_MODULES)
    return out


def summary() -> str:
    """What runs, for --version, the startup log and /status: "compiled" (the whole
    hot path), "pure Python", or how many of the hot modules are compiled."""
    compiled = status()
    done = sum(compiled.values())
    if done == len(compiled):
        return "compiled"
    pure = f" ({PURE_ENV} set)" if pure_requested() else ""
    if done == 0:
        return "pure Python" + pure
    return f"{done} of {len(compiled)} hot modules compiled{pure}"


def pure_modules() -> frozenset[str]:
    """The hot modules HEKAPY_PURE asks to import from source."""
    value = os.environ.get(PURE_ENV, "").strip()
    if value in ("", "0"):
        return frozenset()
    if value == "1":
        return frozenset(HOT_MODULES + TYPED_MODULES)
    return frozenset(name.strip() for name in value.split(",")) & \
        frozenset(HOT_MODULES + TYPED_MODULES)


def pure_requested() -> bool:
    return bool(pure_modules())


class _PureFinder(importlib.abc.MetaPathFinder):
    """Finds the hot modules' .py files before the import system finds the compiled
    extension beside them."""

    def __init__(self, modules: frozenset[str]) -> None:
        self.modules = modules

    def find_spec(self, fullname: str, path: object, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.modules:
            return None
        parent = sys.modules.get(fullname.rpartition(".")[0])
        if parent is None:
            return None
        for folder in getattr(parent, "__path__", ()):
            source = Path(folder) / (fullname.rpartition(".")[2] + ".py")
            if source.is_file():
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def use_pure_python(modules: frozenset[str] = frozenset(HOT_MODULES)) -> None:
    """From now on, import these hot modules from their Python source."""
    if not any(isinstance(f, _PureFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _PureFinder(modules))


if pure_requested():
    use_pure_python(pure_modules())
