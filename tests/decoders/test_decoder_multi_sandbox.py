"""MultiDecoder cascades, and SandboxDecoder sections of LMA's TOML mapped to native
decoders, checked through the config loader and a running pipeline."""

from __future__ import annotations

from hekapy.collector.engine.config import load_config
from hekapy.collector.engine.message import new_record_message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.decoders.openstack_log import OpenStackLogDecoder
from tests.helpers.plugins import CollectOutput, ScriptInput, config_from, write_config
from tests.helpers.wait import wait_for

OSLO = "2015-12-15 10:00:00.123 1234 INFO nova.api [-] hello\n"

MULTI = """
    [regex]
    type = "PayloadRegexDecoder"
    match_regex = '^custom (?P<Word>\\w+)'
    [regex.message_fields]
    Type = "custom"
    word = "%Word%"
    [openstack]
    type = "OpenStackLogDecoder"
    tz = "UTC"
    [multi]
    type = "MultiDecoder"
    subs = ["regex", "openstack"]
    cascade_strategy = "STRATEGY"
"""


def _build(tmp_path, text, name):
    cfg = config_from(tmp_path, text)
    return Pipeline(cfg).build_plugin(name, "Decoder")


def test_first_wins_tries_in_order(tmp_path):
    multi = _build(tmp_path, MULTI.replace("STRATEGY", "first-wins"), "multi")
    custom = multi.decode(new_record_message(1, "t", "nova_api", "h", "custom thing"))
    assert custom.type == "custom" and custom.fields[0].values == ["thing"]
    assert multi.decode(new_record_message(1, "t", "nova_api", "h", OSLO)) is None  # held
    assert multi.holding
    [held] = multi.flush()
    assert (held.type, held.payload) == ("log", "[-] hello\n")
    # The regex decoder failed on that line and did not leave its marks on it.
    assert [f.name for f in held.fields] == ["severity_label", "python_module",
                                             "programname"]


def test_multi_decoder_reports_its_subs_oldest_held_batch(tmp_path):
    multi = _build(tmp_path, MULTI.replace("STRATEGY", "first-wins"), "multi")
    assert multi.oldest_held_batch is None
    multi.batch = 5
    assert [d.batch for d in multi.subs] == [5, 5]
    multi.decode(new_record_message(1, "logfile", "nova_api", "h",
                                    "2015-12-15 10:00:00.123 1234 INFO nova.y [-] held\n"))
    multi.batch = 6
    assert multi.oldest_held_batch == 5
    assert multi.flush_stale(idle_before=5) == []
    [held] = multi.flush_stale(idle_before=6)
    assert held.payload == "[-] held\n" and multi.oldest_held_batch is None


def test_hold_timeout_and_max_message_size_reach_the_subs(tmp_path):
    # The input runner waits for a held message as long as the sub that holds it was
    # told (not the 1 s default), and the message size limit reaches the subs.
    text = MULTI.replace("STRATEGY", "first-wins").replace(
        'tz = "UTC"', 'tz = "UTC"\n    hold_timeout = "5s"')
    multi = _build(tmp_path, text, "multi")
    assert multi.hold_timeout == 5.0
    multi.max_message_size = 1234
    assert [d.max_message_size for d in multi.subs] == [1234, 1234]


def test_first_wins_fails_when_all_fail(tmp_path):
    import pytest

    from hekapy.collector.engine.plugin import DecodeError
    multi = _build(tmp_path, MULTI.replace("STRATEGY", "first-wins"), "multi")
    with pytest.raises(DecodeError, match="no sub-decoder succeeded"):
        multi.decode(new_record_message(1, "t", "nova_api", "h", "neither\n"))


def test_all_applies_every_decoder(tmp_path):
    text = MULTI.replace("STRATEGY", "all") + """
    [tag]
    type = "PayloadRegexDecoder"
    match_regex = '^(?P<First>\\S+)'
    [tag.message_fields]
    first = "%First%"
    """
    cfg = config_from(tmp_path, text.replace('subs = ["regex", "openstack"]',
                                             'subs = ["regex", "tag"]'))
    multi = Pipeline(cfg).build_plugin("multi", "Decoder")
    [m] = multi.decode(new_record_message(1, "t", "x", "h", "custom thing"))
    assert {f.name: f.values[0] for f in m.fields} == {"word": "thing", "first": "custom"}
    # One decoder failing is fine as long as one succeeds.
    [m] = multi.decode(new_record_message(1, "t", "x", "h", "other words"))
    assert {f.name: f.values[0] for f in m.fields} == {"first": "other"}


def test_multidecoder_references_are_checked(tmp_path):
    cfg = load_config(write_config(tmp_path, """
        [multi]
        type = "MultiDecoder"
        subs = ["missing", "multi"]
    """))
    errors = [str(e) for e in cfg.errors]
    assert any("[multi] subs: no decoder named 'missing'" in e for e in errors)
    assert any("[multi] subs: refers to itself" in e for e in errors)
    cfg = load_config(write_config(tmp_path, """
        [multi]
        type = "MultiDecoder"
        subs = []
    """))
    assert any("[multi] subs: needs at least one" in str(e) for e in cfg.errors)


LMA_TOML = """
[openstack_decoder]
type = "SandboxDecoder"
filename = "/usr/share/lma_collector/decoders/openstack_log.lua"
module_directory = "/usr/share/lma_collector_modules;/usr/share/heka/lua_modules"
  [openstack_decoder.config]
  tz = "UTC"

[src]
type = "ScriptInput"
decoder = "openstack_decoder"

[sink]
type = "CollectOutput"
message_matcher = "Type == 'log'"
"""


async def test_lma_sandbox_section_runs_the_native_decoder(tmp_path):
    cfg = config_from(tmp_path, LMA_TOML)
    spec = cfg.plugins["openstack_decoder"]
    assert spec.cls is OpenStackLogDecoder and spec.type_name == "SandboxDecoder"
    ScriptInput.script = [[OSLO]]
    ScriptInput.linger = False
    p = Pipeline(cfg)
    await p.start()
    sink = CollectOutput.instances["sink"]
    await wait_for(lambda: len(sink.messages) == 1, "decoded message")
    await p.stop()
    m = sink.messages[0]
    assert (m.logger, m.timestamp, m.pid) == ("openstack.nova", 1450173600123000000, 1234)


def test_sandbox_config_errors_name_the_key(tmp_path):
    cfg = load_config(write_config(tmp_path, """
        [a]
        type = "SandboxDecoder"
        filename = "openstack_log.lua"
          [a.config]
          colour = "blue"
        [a2]
        type = "SandboxDecoder"
        filename = "openstack_log.lua"
          [a2.config]
          tz = "Nowhere/City"
        [b]
        type = "SandboxDecoder"
        filename = "lua_decoders/my_own.lua"
        [c]
        type = "SandboxDecoder"
        filename = "generic_syslog.lua"
          [c.config]
          syslog_pattern = "%msg%"
    """))
    errors = [str(e) for e in cfg.errors]
    assert any("[a] config.colour: unknown key" in e for e in errors), errors
    assert any("[a2] tz:" in e and "Nowhere/City" in e for e in errors), errors
    assert any("[b] filename: 'my_own.lua' has no native decoder" in e for e in errors)
    assert any("[c] config.syslog_pattern" in e and "custom template" in e for e in errors)


def test_lma_syslog_templates_are_accepted(tmp_path):
    from hekapy.decoders.syslog import SyslogDecoder
    template = "%TIMESTAMP% %HOSTNAME% %syslogtag%%msg:::sp-if-no-1st-sp%%msg%\\n"
    cfg = config_from(tmp_path, f"""
        [system_decoder]
        type = "SandboxDecoder"
        filename = "/usr/share/lma_collector/decoders/generic_syslog.lua"
          [system_decoder.config]
          syslog_pattern = '<%PRI%>{template}'
          fallback_syslog_pattern = '{template}'
          tz = "UTC"
    """)
    assert cfg.plugins["system_decoder"].cls is SyslogDecoder
