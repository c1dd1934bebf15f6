"""The documentation in docs/: the plugin reference is current, every plugin's sample
section is a configuration `hekapy check` accepts, and nothing in the repository sends
a reader to files outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from hekapy.collector import catalog
from hekapy.collector.app.plugin_docs import REGENERATE, render, sample_sections, sample_text
from hekapy.collector.engine.config import load_config
from tests.helpers.collectors import HEKAPY
from tests.helpers.paths import REPO

# What a sample section refers to without defining it: the sections it needs beside it.
COMPANIONS = {
    "AMQPInput": '[notification_decoder]\ntype = "NotificationDecoder"\n',
    "ElasticSearchOutput": '[elasticsearch_encoder]\ntype = "ESJsonEncoder"\n',
    "FileOutput": '[JsonEncoder]\n',
    "HttpListenInput": '[collectd_decoder]\ntype = "CollectdDecoder"\n',
    "HttpOutput": '[JsonEncoder]\n',
    "LogOutput": '[PayloadEncoder]\n',
    "LogstreamerInput": '[openstack_decoder]\ntype = "OpenStackLogDecoder"\n',
    "MultiDecoder": '[aggregator_flag]\ntype = "ScribbleDecoder"\n'
                    '[aggregator_flag.message_fields]\naggregator = "present"\n',
    "UdpOutput": '[PayloadEncoder]\n',
}
# Keys a sample leaves out of its own sections because they are beside the point there.
MISSING_KEYS = {
    "HekaFramingSplitter": {"tcp_in": 'address = "127.0.0.1:5565"'},
}
# Lua scripts the sandbox samples name (under /etc/hekapy), written for the test.
SCRIPTS = {
    "/etc/hekapy/lua/my_app.lua": "function process_message() return 0 end\n",
    "/etc/hekapy/lua/line_encoder.lua":
        "function process_message() inject_payload('txt', '', read_message('Payload'))"
        " return 0 end\n",
    "/etc/hekapy/lua/http_counter.lua":
        "function process_message() return 0 end\nfunction timer_event(ns) end\n",
}


def test_plugins_md_is_what_the_plugins_say():
    written = (REPO / "docs" / "plugins.md").read_text()
    assert written == render(), f"docs/plugins.md is stale: run `{REGENERATE}`"


def test_plugins_md_lists_every_type_with_its_file():
    text = render()
    for name in catalog.type_names():
        assert f"\n### {name}\n" in text
        path = catalog.MODULES[name].removeprefix("hekapy.").replace(".", "/") + ".py"
        assert (REPO / path).is_file()
        assert f"| [{name}](#{name.lower()}) |" in text and f"`{path}`" in text


@pytest.mark.services
def test_check_sample_prints_the_reference_text():
    cls = catalog.plugin_class("LogstreamerInput")
    assert cls is not None
    r = subprocess.run([*HEKAPY, "check",
                        "--sample", "LogstreamerInput"],
                       capture_output=True, text=True, check=True)
    assert r.stdout == sample_text(cls) + "\n"
    # The class body's indentation is gone, the sample section keeps its own.
    assert r.stdout.startswith("Tails log files")
    assert "\nKeys: log_directory" in r.stdout and "\n    [nova]\n" in r.stdout


def test_sample_sections_are_the_indented_tables():
    text = ("Does things.\n  an indented line, not TOML\n\n    [a]\n    type = \"X\"\n"
            "      [a.config]\n      k = 1\n\n    [b]\n    type = \"Y\"\nAfter.\n\n"
            "Keys:\n  x  text\n        [not_a_section] continued prose\n")
    assert sample_sections(text) == [
        '[a]\ntype = "X"\n  [a.config]\n  k = 1\n\n[b]\ntype = "Y"']


def sample_config(type_name: str, tmp_path: Path) -> str:
    cls = catalog.plugin_class(type_name)
    assert cls is not None
    sections = sample_sections(sample_text(cls))
    assert sections, f"{type_name}: its documentation has no sample section"
    text = "\n\n".join(sections) + "\n\n" + COMPANIONS.get(type_name, "")
    for section, line in MISSING_KEYS.get(type_name, {}).items():
        text = text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)
    for script, source in SCRIPTS.items():
        if script in text:
            local = tmp_path / Path(script).name
            local.write_text(source)
            text = text.replace(f'"{script}"', f'"{local}"')
    return text


@pytest.mark.parametrize("type_name", catalog.type_names())
def test_every_sample_section_loads(type_name, tmp_path, monkeypatch):
    text = sample_config(type_name, tmp_path)
    for variable in re.findall(r"%ENV\[([^\]]+)\]", text):  # a secret kept out of the file
        monkeypatch.setenv(variable, "sample-value")
    path = tmp_path / "sample.toml"
    path.write_text(f'[hekad]\nbase_dir = "{tmp_path / "base"}"\n\n{text}')
    config = load_config(str(path))
    assert config.errors == [], f"{type_name}'s sample:\n{text}"
    assert config.warnings == [], f"{type_name}'s sample:\n{text}"
    # The sample shows the type itself (a SandboxDecoder section naming an LMA script
    # stands for that script's native decoder).
    built = {spec.cls.type_name for spec in config.plugins.values()} | set(config.defaults)
    assert type_name in built


# Paths of the material the project was researched from, which a clone does not have.
OUTSIDE = re.compile(r"\bspec/[a-z]|\bspec §|\bshared(?=/)|\bDESIGN\.md"
                     r"|(?<![A-Za-z0-9] )§\d")  # a bare section number: of which document?


def test_nothing_refers_to_files_outside_the_repository():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    found = []
    for name in filter(None, files):
        path = REPO / name
        if not path.is_file():  # deleted in the work tree, not yet committed
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        found += [f"{name}:{n}: {line.strip()}"
                  for n, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    assert not found, "references to files outside the repository:\n" + "\n".join(found)
