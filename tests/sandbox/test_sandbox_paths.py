"""The sandbox plugins and [hekad] (docs/compatibility.md, "Lua sandbox"): a relative `filename` or
`module_directory` is read under the configured share_dir (not Heka's default
/usr/share/heka), for SandboxDecoder, SandboxFilter and SandboxEncoder alike; and
preserve_data works for decoders and encoders too: the pipeline's stop saves their
globals (a decoder after its input drained, an encoder after its output finished),
per instance, and the next start restores them."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from hekapy.collector.engine.config import load_config
from hekapy.collector.engine.contexts import InputContext
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.plugin import Input, register
from tests.helpers.plugins import CollectOutput, config_from, write_config
from tests.helpers.wait import wait_for


@register
class RecordsInput(Input):
    """Delivers `RecordsInput.records` once, with Logger = the input's name (so that a
    test can tell which input, and which decoder instance, a message went through)."""

    records: ClassVar[list[str]] = []

    async def run(self, ctx: InputContext) -> None:
        await ctx.deliver_records([r.encode() for r in self.records], 1, logger=self.name)

DECODER = """
local util = require "shared_util"
function process_message()
    write_message("Fields[tag]", util.tag())
    return 0
end
"""
ENCODER = """
local fmt = require "encoder_fmt"
function process_message()
    add_to_payload(fmt.line(read_message("Payload")))
    inject_payload("txt", "line")
    return 0
end
"""
FILTER = """
function process_message() return 0 end
"""


def share_tree(tmp: Path) -> Path:
    """share_dir with Heka's layout: scripts under lua_*, modules under lua_modules,
    plus a module directory of our own."""
    share = tmp / "share"
    for sub, name, text in (
            ("lua_decoders", "tagging.lua", DECODER),
            ("lua_encoders", "fmt.lua", ENCODER),
            ("lua_filters", "noop.lua", FILTER),
            ("lua_modules", "shared_util.lua",
             "local M = {}\nfunction M.tag() return 'from share_dir' end\nreturn M\n"),
            ("extra_modules", "encoder_fmt.lua",
             "local M = {}\nfunction M.line(p) return '[' .. p .. ']\\n' end\nreturn M\n")):
        (share / sub).mkdir(parents=True, exist_ok=True)
        (share / sub / name).write_text(text)
    return share


def paths_config(tmp: Path, share: Path, out: Path) -> str:
    return f"""
        [hekad]
        share_dir = "{share}"
        base_dir = "{tmp / 'state'}"
        [src]
        type = "RecordsInput"
        decoder = "dec"
        [dec]
        type = "SandboxDecoder"
        filename = "lua_decoders/tagging.lua"
        [noop]
        type = "SandboxFilter"
        filename = "lua_filters/noop.lua"
        message_matcher = "TRUE"
        [enc]
        type = "SandboxEncoder"
        filename = "lua_encoders/fmt.lua"
        module_directory = "extra_modules;lua_modules"
        [file]
        type = "FileOutput"
        path = "{out}"
        message_matcher = "TRUE"
        encoder = "enc"
        [sink]
        type = "CollectOutput"
        message_matcher = "TRUE"
    """


async def test_relative_filename_and_module_directory_are_under_share_dir(tmp_path):
    share = share_tree(tmp_path)
    out = tmp_path / "lines.log"
    cfg = config_from(tmp_path, paths_config(tmp_path, share, out))
    RecordsInput.records = ["one", "two"]
    p = Pipeline(cfg)
    dec = p.inputs[0][1].decoder
    filt = p.filters[0][0]
    enc = p.outputs[0][1].encoder
    assert dec.sandbox.path == str(share / "lua_decoders" / "tagging.lua")
    assert filt.sandbox.path == str(share / "lua_filters" / "noop.lua")
    assert enc.sandbox.path == str(share / "lua_encoders" / "fmt.lua")
    await p.start()
    sink = CollectOutput.instances["sink"]
    try:
        await wait_for(lambda: len(sink.messages) >= 2, "both records")
    finally:
        await p.stop()
    # The decoder's module came from <share_dir>/lua_modules (the default directory),
    # the encoder's from a relative module_directory under share_dir.
    assert [m.get_field("tag") for m in sink.messages] == ["from share_dir"] * 2
    assert out.read_text() == "[one]\n[two]\n"


def test_hekapy_check_resolves_under_share_dir_too(tmp_path):
    """`hekapy check` builds every plugin from the loaded config: the same paths."""
    share = share_tree(tmp_path)
    text = paths_config(tmp_path, share, tmp_path / "lines.log")
    assert load_config(write_config(tmp_path, text)).errors == []
    missing = load_config(write_config(tmp_path, text.replace("tagging.lua", "gone.lua"),
                                       name="missing.toml"))
    (err,) = missing.errors
    assert err.section == "dec" and err.key == "filename"
    assert str(share / "lua_decoders" / "gone.lua") in err.message


COUNTING_DECODER = """
count = 0
function process_message()
    count = count + 1
    write_message("Fields[count]", count)
    return 0
end
"""
COUNTING_ENCODER = """
encoded = 0
function process_message()
    encoded = encoded + 1
    add_to_payload(string.format("%d %s\\n", encoded, read_message("Payload")))
    inject_payload("txt", "line")
    return 0
end
"""


def preserve_config(tmp: Path, share: Path, out: Path) -> str:
    return f"""
        [hekad]
        share_dir = "{share}"
        base_dir = "{tmp / 'state'}"
        [src_a]
        type = "RecordsInput"
        decoder = "counting"
        [src_b]
        type = "RecordsInput"
        decoder = "counting"
        [src_multi]
        type = "RecordsInput"
        decoder = "multi"
        [multi]
        type = "MultiDecoder"
        subs = ["counting"]
        [counting]
        type = "SandboxDecoder"
        filename = "counting_decoder.lua"
        preserve_data = true
        [numbering]
        type = "SandboxEncoder"
        filename = "counting_encoder.lua"
        preserve_data = true
        [file]
        type = "FileOutput"
        path = "{out}"
        message_matcher = "Logger == 'src_a'"
        encoder = "numbering"
        [sink]
        type = "CollectOutput"
        message_matcher = "TRUE"
    """


async def _run(cfg_text: str, tmp: Path, records: list[str]) -> dict[str, list[float]]:
    """One pipeline run: every input delivers `records`; the counts each input's decoder
    instance wrote, by input."""
    RecordsInput.records = records
    CollectOutput.instances.clear()
    p = Pipeline(config_from(tmp, cfg_text))
    await p.start()
    sink = CollectOutput.instances["sink"]
    try:
        await wait_for(lambda: len(sink.messages) >= 3 * len(records), "every record")
    finally:
        await p.stop()
    counts: dict[str, list[float]] = {}
    for m in sink.messages:
        counts.setdefault(m.logger, []).append(m.get_field("count"))
    return counts


async def test_decoder_and_encoder_preserve_data_across_stop_and_start(tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    (share / "counting_decoder.lua").write_text(COUNTING_DECODER)
    (share / "counting_encoder.lua").write_text(COUNTING_ENCODER)
    out = tmp_path / "numbered.log"
    text = preserve_config(tmp_path, share, out)

    first = await _run(text, tmp_path, ["a", "b", "c"])
    # Each input has a decoder instance of its own (a MultiDecoder's sub-decoder too).
    assert first == {name: [1.0, 2.0, 3.0] for name in ("src_a", "src_b", "src_multi")}
    saved = tmp_path / "state" / "sandbox_preservation"
    # One file per instance, named as Heka names decoder and encoder runners.
    assert sorted(p.name for p in saved.iterdir()) == [
        "file-numbering.data", "src_a-counting.data", "src_b-counting.data",
        "src_multi-counting.data"]
    assert '_G["encoded"] = 3' in (saved / "file-numbering.data").read_text()
    assert '_G["count"] = 3' in (saved / "src_multi-counting.data").read_text()

    second = await _run(text, tmp_path, ["d", "e"])
    # Each decoder instance goes on from its own 3.
    assert second == {name: [4.0, 5.0] for name in ("src_a", "src_b", "src_multi")}
    # The encoder numbered a, b, c in the first run and goes on with 4, 5.
    assert out.read_text().splitlines() == ["1 a", "2 b", "3 c", "4 d", "5 e"]
