"""The compiled hot path (collector/compiled.py, setup.py): installed, switchable off,
and byte for byte the same as the Python source it is compiled from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hekapy.collector import compiled
from tests.helpers.paths import REPO, TEST_TOOLS

DIGEST = TEST_TOOLS / "hot_path_digest.py"


def _python(code_or_args: list[str], pure: bool, env_extra: dict | None = None,
            **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != compiled.PURE_ENV}
    if pure:
        env[compiled.PURE_ENV] = "1"
    env.update(env_extra or {})
    return subprocess.run([sys.executable, *code_or_args], env=env, capture_output=True,
                          text=True, timeout=600, check=True, **kw)


def test_the_install_compiled_every_hot_module():
    # scripts/test installs a C compiler and Cython builds the hot path: a module left
    # pure (a failed optional build) would make every speed figure wrong without a word.
    pure = compiled.pure_modules()
    assert compiled.status() == {m: m not in pure
                                 for m in compiled.HOT_MODULES + compiled.TYPED_MODULES}


def test_every_hot_module_has_its_source_in_the_tree():
    for name in compiled.HOT_MODULES + compiled.TYPED_MODULES:
        assert (REPO / compiled.source_path(name)).is_file(), name


@pytest.mark.services
@pytest.mark.parametrize("pure", [False, True])
def test_pure_switch_and_version_say_what_runs(pure):
    status = json.loads(_python(["-c", "import json; from hekapy.collector import compiled; "
                                       "print(json.dumps(compiled.status()))"], pure).stdout)
    assert set(status.values()) == {not pure}
    version = _python(["-m", "hekapy.collector.app.cli", "--version"], pure).stdout
    assert ("pure Python (HEKAPY_PURE set)" in version) == pure
    assert ("(hot path: compiled)" in version) == (not pure)


def test_pure_switch_for_some_modules():
    some = "hekapy.decoders.openstack_log,hekapy.collector.engine.message"
    out = _python(["-c", "import json; from hekapy.collector import compiled; "
                         "print(json.dumps([compiled.status(), compiled.summary()]))"],
                  pure=False, env_extra={compiled.PURE_ENV: some}).stdout
    status, summary = json.loads(out)
    assert [m for m, done in status.items() if not done] == \
        ["hekapy.collector.engine.message", "hekapy.decoders.openstack_log"]
    assert summary == f"{len(status) - 2} of {len(status)} hot modules compiled " \
        "(HEKAPY_PURE set)"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    _python(["-m", "hekapy.benchmarks.corpus", str(d), "--mib", "6"], pure=False)
    return d


@pytest.mark.services
def test_compiled_and_pure_give_the_same_bytes(corpus):
    # Both at once: each is a separate process importing one way.
    runs = [subprocess.Popen([sys.executable, str(DIGEST), str(corpus)], env={
        **{k: v for k, v in os.environ.items() if k != compiled.PURE_ENV},
        **({compiled.PURE_ENV: "1"} if pure else {})}, stdout=subprocess.PIPE, text=True)
        for pure in (False, True)]
    fast, pure = (json.loads(p.communicate(timeout=600)[0]) for p in runs)
    assert fast["hot_path"] == "compiled" and pure["hot_path"].startswith("pure Python")
    assert fast["messages"] > 5_000 and fast["matches"] > 0 and fast["errors"] > 0
    assert fast["points"] > 3_000 and fast["points_refused"] > 0
    assert {k: v for k, v in fast.items() if k != "hot_path"} == \
        {k: v for k, v in pure.items() if k != "hot_path"}
