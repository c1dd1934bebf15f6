"""Every built-in plugin's documentation: what `hekapy check --sample TYPE` prints, and
docs/plugins.md, which is that text for every type of collector/catalog.py.

    python -m hekapy.collector.app.plugin_docs > docs/plugins.md

The plugins document themselves (the class docstring: keys and a sample section; the
declared options: every key with its default), so the reference cannot drift from the
code; tests/app/test_docs.py fails when docs/plugins.md is older than the plugins.
"""

from __future__ import annotations

import inspect
import re
import sys

from hekapy.collector import catalog, compiled
from hekapy.collector.engine.plugin import CATEGORIES, Plugin

REGENERATE = "python -m hekapy.collector.app.plugin_docs > docs/plugins.md"

# A sample section starts, after a blank line, with an indented TOML table header.
_SECTION_START = re.compile(r"^ {4,}\[[^\]]+\]\s*$")


def _doc(cls: type[Plugin]) -> str:
    """The plugin's own text, without the indentation of the class body its docstring
    was written in (the indentation before the closing quotes; none for a module
    docstring the class took over): the sample sections keep theirs."""
    text = cls.sample()
    indent = re.search(r"\n( *)$", cls.__doc__ or "")
    if not indent or not indent.group(1):
        return text
    margin = re.compile(rf"^ {{0,{len(indent.group(1))}}}", re.MULTILINE)
    first, _, rest = text.partition("\n")
    return first + ("\n" + margin.sub("", rest) if rest else "")


def sample_text(cls: type[Plugin]) -> str:
    """The plugin's docstring (its keys and a sample section), then every key it takes
    with its default: the text of `hekapy check --sample TYPE`."""
    doc = _doc(cls) or f"{cls.type_name}: no documentation"
    lines = [doc, "", "All keys (default):"]
    options = cls.all_options()
    for key in sorted(options):
        option = options[key]
        required = " required" if option.required else ""
        default = cls.defaults.get(key, option.default)  # the plugin's own default wins
        lines.append(f"  {key} = {default!r}{required}  {option.doc}".rstrip())
    return "\n".join(lines)


def sample_sections(text: str) -> list[str]:
    """The indented TOML sample sections of a `sample_text`, dedented: each block that
    starts with an indented `[table]` line after a blank line and runs while lines stay
    indented (blank lines included)."""
    blocks: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if _SECTION_START.match(lines[i]) and (i == 0 or not lines[i - 1].strip()):
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                block.append(lines[i])
                i += 1
            blocks.append(inspect.cleandoc("\n".join(block)))
        else:
            i += 1
    return blocks


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in `text`."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render() -> str:
    """docs/plugins.md: a table of every type with its file, then each type's text."""
    classes = {name: catalog.plugin_class(name) for name in catalog.type_names()}
    by_category: dict[str, list[str]] = {category: [] for category in CATEGORIES}
    for name, cls in classes.items():
        assert cls is not None, name
        by_category[cls.category].append(name)
    out = [
        "# Plugins",
        "",
        "Every built-in plugin type, with the file that holds it and what",
        "`hekapy check --sample TYPE` prints for it: what it does, its keys and a sample",
        "section, then every key with its default. Generated from the plugins themselves;",
        f"do not edit by hand: `{REGENERATE}` writes it again",
        "(tests/app/test_docs.py fails when it is stale). Where each kind of plugin lives and",
        'why: docs/design.md, "Where plugins live".',
        "",
        "| type | category | file |",
        "|---|---|---|",
    ]
    for category, names in by_category.items():
        for name in names:
            module = catalog.MODULES[name]
            out.append(f"| [{name}](#{name.lower()}) | {category} "
                       f"| `{compiled.source_path(module)}` |")
    for category, names in by_category.items():
        if not names:
            continue
        out += ["", f"## {category}s"]
        for name in names:
            cls = classes[name]
            assert cls is not None
            text = sample_text(cls)
            fence = _fence(text)
            out += ["", f"### {name}", "",
                    f"`{compiled.source_path(catalog.MODULES[name])}`", "",
                    f"{fence}text", text, fence]
    return "\n".join(out) + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
