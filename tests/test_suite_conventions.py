"""The test suite's own rules, checked on its sources: a test module never imports
another test module (nor conftest.py): what they share is in tests/helpers/."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers.paths import TESTS

# Modules being rewritten elsewhere that still import another test module or conftest;
# each leaves this list when it moves into its folder.
NOT_YET_MOVED = {
    "fuzz_runner.py", "test_hostile_files.py", "test_logstreamer_renamed_out.py",
    "test_replay.py", "test_replay_amqp.py", "test_replay_lifecycle.py",
    "test_replay_mapping.py", "test_replay_progress.py", "test_replay_undecodable.py",
}


def python_sources() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "data" not in p.relative_to(TESTS).parts)


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, top-level or in a function, relative ones resolved;
    `from package import name` counts `package.name` too (it may be a module)."""
    package = module_name(path).rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def is_test_module(name: str) -> bool:
    """A module pytest collects for its tests, or the conftest pytest loads itself."""
    parts = name.split(".")
    return parts[0] == "tests" and (parts[-1].startswith("test_") or parts[-1] == "conftest")


def test_no_test_module_imports_another_or_conftest():
    offenders = {}
    for path in python_sources():
        if path.name in NOT_YET_MOVED or path.name == "conftest.py":
            continue
        bad = sorted(m for m in imported_modules(path) if is_test_module(m))
        if bad:
            offenders[str(path.relative_to(TESTS.parent))] = bad
    assert not offenders, f"import these from tests/helpers/ instead: {offenders}"


def test_the_scan_sees_the_imports_it_must_refuse(tmp_path, monkeypatch):
    # The check above passing means nothing if the scan misses an import form.
    package = tmp_path / "tests" / "inputs"
    package.mkdir(parents=True)
    sample = package / "test_x.py"
    sample.write_text("import tests.engine.test_a\n"
                      "from tests.conftest import write_config\n"
                      "from tests.engine import test_b\n"
                      "from . import test_c\n"
                      "from .. import conftest\n"
                      "def f():\n    from tests.test_d import helper\n"
                      "from tests.helpers.wait import wait_for\n")
    monkeypatch.setattr("tests.test_suite_conventions.TESTS", tmp_path / "tests")
    assert sorted(m for m in imported_modules(sample) if is_test_module(m)) == [
        "tests.conftest", "tests.engine.test_a", "tests.engine.test_b", "tests.inputs.test_c",
        "tests.test_d"]
