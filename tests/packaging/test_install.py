"""`pip install .` never fails for want of a compiler: without one, the hot path installs
as pure Python and the build says so once (setup.py)."""

from __future__ import annotations

import os
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

pytestmark = pytest.mark.services


def copy_of_the_tree(dest: Path) -> Path:
    """The committed and working files (git ls-files), without build products."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(src.read_bytes())
    return dest


def test_install_without_a_compiler_is_pure_python_and_says_so(tmp_path):
    tree = copy_of_the_tree(tmp_path / "src")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    # CC=false: the compiler exists and fails, as a missing one does for the build.
    r = subprocess.run([str(env_dir / "bin" / "pip"), "install", "-v", "--no-deps", str(tree)],
                       capture_output=True, text=True, env={**os.environ, "CC": "false"},
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    said = [line for line in (r.stdout + r.stderr).splitlines()
            if "hekapy: no working C compiler" in line]
    assert len(said) == 1, said
    assert "-py3-none-any.whl" in r.stdout  # no compiled module in the wheel
    # The dependencies come from the test's own environment: hekapy from the new one.
    deps = sysconfig.get_paths()["purelib"]
    version = subprocess.run([str(env_dir / "bin" / "hekapy"), "--version"],
                             capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PYTHONPATH": deps, "HEKAPY_PURE": ""})
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip().endswith("(hot path: pure Python)"), version.stdout
