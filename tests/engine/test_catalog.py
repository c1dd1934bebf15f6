"""collector/catalog.py: every built-in plugin is found from its Heka type name, in the
folder its suffix names and the module its name names (docs/design.md, "Where plugins
live"), and loading a configuration imports only the plugins it names."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from hekapy.collector import catalog
from hekapy.collector.engine.plugin import CATEGORIES, REGISTRY

FOLDERS = {
    "Input": "hekapy.collector.inputs.",
    "Splitter": "hekapy.collector.splitters.",
    "Decoder": "hekapy.decoders.",
    "Filter": "hekapy.filters.",
    "Encoder": "hekapy.outputs.",
    "Output": "hekapy.outputs.",
}
# Names that are one word, however they are capitalised.
WORDS = {"OpenStack": "Openstack", "ElasticSearch": "Elasticsearch"}


def snake(name: str) -> str:
    for word, one in WORDS.items():
        name = name.replace(word, one)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


@pytest.mark.parametrize("type_name", catalog.type_names())
def test_each_type_is_where_its_name_says(type_name):
    module = catalog.MODULES[type_name]
    category = next(c for c in CATEGORIES if type_name.endswith(c))
    if type_name.startswith("Sandbox"):
        assert module == f"hekapy.collector.sandbox.{snake(type_name)}"
    else:
        assert module.startswith(FOLDERS[category]), module
        stem = snake(type_name.removesuffix(category))
        # The module, or a package named after the plugin when it has several modules.
        parts = module.split(".")
        assert stem in (parts[-1], parts[-2]), (module, stem)
    cls = catalog.plugin_class(type_name)
    assert cls is not None and cls.__name__ == type_name and cls.type_name == type_name
    assert cls.__module__ == module and cls.category == category


def test_every_builtin_plugin_is_in_the_catalog():
    registry = catalog.load_all()
    # The commands' and the benchmarks' own plugins (e.g. the harness's input) register
    # too when their modules are imported: they are not configurable types.
    builtin = {name for name, cls in registry.items()
               if cls.__module__.startswith("hekapy.")
               and not cls.__module__.startswith(("hekapy.collector.app.",
                                                  "hekapy.benchmarks."))}
    assert builtin == set(catalog.MODULES)
    assert set(catalog.DEFAULT_PLUGIN_NAMES) <= set(catalog.MODULES)


def test_an_unknown_type_is_none():
    assert catalog.plugin_class("NoSuchOutput") is None
    assert "NoSuchOutput" not in REGISTRY


def test_a_configuration_imports_only_the_plugins_it_names(tmp_path):
    conf = tmp_path / "hekad.toml"
    conf.write_text(f'[hekad]\nbase_dir = "{tmp_path}"\n'
                    '[out]\ntype = "FileOutput"\nmessage_matcher = "TRUE"\n'
                    f'path = "{tmp_path / "out.log"}"\nencoder = "PayloadEncoder"\n'
                    '[PayloadEncoder]\n')
    code = ("import sys, json; from hekapy.collector.engine.config import load_config; "
            f"c = load_config({str(conf)!r}); assert not c.errors, c.errors; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('hekapy.') "
            "or m.split('.')[0] in ('lupa', 'aio_pika', 'aiohttp'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = set(__import__("json").loads(out))
    plugins = {m for m in loaded if m in catalog.MODULES.values()}
    # FileOutput and PayloadEncoder, and Heka's always-available defaults.
    assert plugins == {catalog.MODULES[t] for t in
                       ("FileOutput", "PayloadEncoder", *catalog.DEFAULT_PLUGIN_NAMES)}
    assert not {"lupa", "aio_pika", "hekapy.collector.sandbox.host"} & loaded
