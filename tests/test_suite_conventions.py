"""The test suite's own rules, checked on its sources: a test module never imports
another test module (nor conftest.py): what they share is in tests/helpers/."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers.paths import TESTS


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
        if path.name == "conftest.py":
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


# --- the `services` marker -----------------------------------------------------------------

# What a test starts when it uses these: a real service, the daemon or the `hekapy`
# command as a process, the Elasticsearch double in a process of its own.
STARTERS_BY_MODULE = {
    "tests.services": {"influxdb", "haproxy", "collectd", "RabbitMQ", "rabbitmq"},
    "tests.fault_harness": None,  # everything: it drives the daemon
    "tests.dashboard_lab": None,
    "tests.helpers.collectors": {"HEKAPY", "start_collector", "HekapyProcesses"},
    "hekapy.benchmarks.es_double": {"start_process"},
}
# The same as a process started by hand.
STARTER_TEXTS = ("hekapy.collector.app.cli", "hekapy.benchmarks.es_double")


def starter_names(tree: ast.Module) -> set[str]:
    """The names a module binds to something that starts a service or a process."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in STARTERS_BY_MODULE:
            wanted = STARTERS_BY_MODULE[node.module]
            names.update(a.asname or a.name for a in node.names
                         if wanted is None or a.name in wanted)
    return names


def starts_something(node: ast.AST, starters: set[str]) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in starters:
            return True
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and any(
                t in sub.value for t in STARTER_TEXTS):
            return True
        # The `hekapy` console script by its path (… / "hekapy").
        if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Div) and isinstance(
                sub.right, ast.Constant) and sub.right.value == "hekapy":
            return True
    return False


def marked_services(decorators: list[ast.expr]) -> bool:
    return any("mark.services" in ast.unparse(d) for d in decorators)


def unmarked_service_tests(source: str) -> list[str]:
    """The tests of a module that start a service or a process (themselves, through a
    function, class, constant or fixture of the module) without the services marker."""
    tree = ast.parse(source)
    if any(isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                             for t in n.targets)
           and "mark.services" in ast.unparse(n.value) for n in tree.body):
        return []
    starters = starter_names(tree)
    defined: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined.update((t.id, node) for t in targets if isinstance(t, ast.Name))
    # What starts something, directly or through what it uses (to a fixed point).
    starting = {name for name, node in defined.items() if starts_something(node, starters)}
    uses = {name: {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} |
            ({a.arg for a in node.args.args}
             if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else set())
            for name, node in defined.items()}
    while grown := {n for n in defined if n not in starting and uses[n] & starting}:
        starting |= grown
    return sorted(name for name in starting if name.startswith("test_")
                  and not marked_services(defined[name].decorator_list))


def test_tests_that_start_services_or_processes_are_marked():
    offenders = {}
    for path in python_sources():
        if not path.name.startswith("test_") \
                or path == Path(__file__).resolve():  # its examples start nothing
            continue
        unmarked = unmarked_service_tests(path.read_text())
        if unmarked:
            offenders[str(path.relative_to(TESTS.parent))] = unmarked
    assert not offenders, ("mark these @pytest.mark.services (or the module: pytestmark = "
                           f"pytest.mark.services): {offenders}")


def test_the_marker_scan_finds_what_starts_through_a_helper_or_a_fixture():
    source = '''
import pytest
from tests.services import free_port, influxdb
from tests.helpers.collectors import HEKAPY

CLI = [*HEKAPY, "check"]

def unit_helper():
    return free_port()

async def start_db(tmp_path):
    async with influxdb(tmp_path) as db:
        return db

@pytest.fixture
def db(tmp_path):
    return start_db(tmp_path)

def test_unit():
    unit_helper()

def test_through_a_fixture(db):
    pass

def test_through_a_constant():
    print(CLI)

def test_by_hand():
    print(["python", "-m", "hekapy.collector.app.cli"])

@pytest.mark.services
def test_marked(db):
    pass
'''
    assert unmarked_service_tests(source) == [
        "test_by_hand", "test_through_a_constant", "test_through_a_fixture"]
    assert unmarked_service_tests("import pytest\npytestmark = pytest.mark.services\n"
                                  + source) == []
