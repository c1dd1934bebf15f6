"""Every source package of the tree (docs/design.md, "Layout") is installed under
`hekapy.`."""

from __future__ import annotations

import tomllib

from tests.helpers.paths import REPO

TOP = ("collector", "decoders", "filters", "outputs", "benchmarks", "conf")


def test_every_package_is_listed_in_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(project["tool"]["setuptools"]["packages"])
    found = set()
    for top in TOP:
        for init in (REPO / top).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO).parts
            found.add(".".join(("hekapy", *rel)))
    assert found - {"hekapy.conf"} <= listed
    assert "hekapy.conf" in listed


def test_builtin_plugins_register():
    from hekapy.collector.catalog import load_all
    reg = load_all()
    for name in ("TokenSplitter", "RegexSplitter", "PatternGroupingSplitter", "NullSplitter",
                 "ProcessInput", "PayloadRegexDecoder", "CounterFilter", "PayloadEncoder",
                 "JsonEncoder", "RstEncoder", "FileOutput", "LogOutput"):
        assert name in reg, name
