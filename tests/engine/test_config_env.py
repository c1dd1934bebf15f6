"""`%ENV[NAME]` in configurations: an unset variable is an error that names it, and
environment files in systemd's format."""

from __future__ import annotations

from pathlib import Path

import pytest

from hekapy.collector.engine.config import load_config, read_env_file

CONFIG = """
[hekad]
base_dir = "%ENV[HEKAPY_TEST_DATA]/state"

[es]
type = "ElasticSearchOutput"
message_matcher = "Type == 'log'"
server = "%ENV[HEKAPY_TEST_ES_URL]"
encoder = "ESJsonEncoder"

[ESJsonEncoder]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hekad.toml"
    path.write_text(text)
    return path


def test_an_unset_variable_is_named_with_file_section_and_key(tmp_path, monkeypatch):
    monkeypatch.delenv("HEKAPY_TEST_DATA", raising=False)
    monkeypatch.delenv("HEKAPY_TEST_ES_URL", raising=False)
    path = write(tmp_path, CONFIG)
    errors = [str(e) for e in load_config(path).errors]
    assert errors == [
        f"{path}: [hekad] base_dir: environment variable HEKAPY_TEST_DATA is not set "
        "(%ENV[HEKAPY_TEST_DATA]); set it, or give an environment file with --env-file",
        f"{path}: [es] server: environment variable HEKAPY_TEST_ES_URL is not set "
        "(%ENV[HEKAPY_TEST_ES_URL]); set it, or give an environment file with --env-file",
    ]  # and nothing that follows from them (the server is not an URL, …)


def test_set_variables_are_used_and_an_empty_one_is_a_value(tmp_path, monkeypatch):
    monkeypatch.setenv("HEKAPY_TEST_DATA", str(tmp_path))
    monkeypatch.setenv("HEKAPY_TEST_ES_URL", "http://127.0.0.1:9200")
    config = load_config(write(tmp_path, CONFIG))
    assert config.errors == []
    assert config.hekad.base_dir == f"{tmp_path}/state"
    monkeypatch.setenv("HEKAPY_TEST_ES_URL", "")
    errors = [str(e) for e in load_config(write(tmp_path, CONFIG)).errors]
    assert errors and not any("not set" in e for e in errors)


def test_an_unset_variable_outside_a_string_is_named_with_its_line(tmp_path, monkeypatch):
    monkeypatch.delenv("HEKAPY_TEST_POOL", raising=False)
    path = write(tmp_path, "[hekad]\n\npoolsize = %ENV[HEKAPY_TEST_POOL]\n")
    errors = [str(e) for e in load_config(path).errors]
    assert errors[0].startswith(f"{path}: not valid TOML")
    assert errors[1:] == [f"{path}: environment variable HEKAPY_TEST_POOL is not set "
                          "(%ENV[HEKAPY_TEST_POOL] on line 3)"]


def test_env_file_reads_systemd_environment_files(tmp_path):
    env = tmp_path / "env"
    env.write_text("# comment\n; comment too\n\nES_URL=http://es:9200\n"
                   "  SPACED =  a b  \nSINGLE='x \\n y'\nDOUBLE=\"say \\\"hi\\\"\"\n"
                   "LONG=one\\\n   two\nEMPTY=\n")
    assert read_env_file(env) == {"ES_URL": "http://es:9200", "SPACED": "a b",
                                  "SINGLE": "x \\n y", "DOUBLE": 'say "hi"',
                                  "LONG": "onetwo", "EMPTY": ""}


@pytest.mark.parametrize("line", ["no equals sign", "1BAD=x", "PASS WORD=secret"])
def test_env_file_errors_name_the_line_never_its_text(tmp_path, line):
    env = tmp_path / "env"
    env.write_text(f"OK=1\n{line}\n")
    with pytest.raises(ValueError) as e:
        read_env_file(env)
    assert str(e.value) == f"{env}, line 2: expected KEY=VALUE"


@pytest.mark.services
def test_check_reads_an_env_file_and_never_prints_its_secrets(tmp_path):
    import os
    import subprocess
    import sys
    hekapy = [str(Path(sys.executable).parent / "hekapy")]
    env = {k: v for k, v in os.environ.items()
           if k not in ("HEKAPY_TEST_DATA", "HEKAPY_TEST_ES_URL")}
    config = write(tmp_path, CONFIG)
    r = subprocess.run([*hekapy, "check", "-c", str(config)], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 2 and "HEKAPY_TEST_ES_URL is not set" in r.stderr
    env_file = tmp_path / "hekapy.env"
    env_file.write_text(f"HEKAPY_TEST_DATA={tmp_path}\n"
                        "HEKAPY_TEST_ES_URL=\"http://admin:s3cr3t@127.0.0.1:9200\"\n")
    r = subprocess.run([*hekapy, "check", "-c", str(config), "--env-file", str(env_file)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "s3cr3t" not in r.stdout + r.stderr
    env_file.write_text("HEKAPY_TEST_DATA\nPASSWORD=s3cr3t\n")
    r = subprocess.run([*hekapy, "check", "--env-file", str(env_file), "-c", str(config)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and f"{env_file}, line 1: expected KEY=VALUE" in r.stderr
    assert "s3cr3t" not in r.stdout + r.stderr
