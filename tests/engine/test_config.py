"""The TOML loader: Heka's file rules, key spellings, defaults and error messages."""

from __future__ import annotations

import pytest

from hekapy.collector.engine.config import ConfigInvalid, load_config
from hekapy.collector.engine.plugin import OptionError, parse_duration
from tests.helpers.plugins import write_config


def errors_of(path) -> list[str]:
    return [str(e) for e in load_config(path).errors]


def test_hekad_defaults(tmp_path):
    cfg = load_config(write_config(tmp_path, "[hekad]\n"), strict=True)
    h = cfg.hekad
    assert (h.poolsize, h.plugin_chansize, h.max_message_loops) == (100, 30, 4)
    assert (h.base_dir, h.share_dir) == ("/var/cache/hekad", "/usr/share/heka")
    assert h.max_message_size == 65536 and h.max_pack_idle == 120.0
    assert h.hostname  # the OS hostname when not configured


def test_type_inferred_from_section_name_and_category_from_suffix(tmp_path):
    cfg = load_config(write_config(tmp_path, """
        [PayloadEncoder]
        append_newlines = false
        [out]
        type = "LogOutput"
        message_matcher = "TRUE"
        encoder = "PayloadEncoder"
    """), strict=True)
    assert cfg.plugins["PayloadEncoder"].category == "Encoder"
    assert cfg.plugins["PayloadEncoder"].cfg.append_newlines is False
    assert cfg.plugins["out"].category == "Output"


def test_default_plugins_need_no_section(tmp_path):
    cfg = load_config(write_config(tmp_path, """
        [cmd]
        type = "ProcessInput"
        splitter = "TokenSplitter"
        [cmd.command.0]
        bin = "/bin/echo"
        args = ["hi"]
    """), strict=True)
    assert cfg.resolve("TokenSplitter", "Splitter").cfg.delimiter == "\n"


def test_snake_and_camel_case_keys(tmp_path):
    cfg = load_config(write_config(tmp_path, """
        [hekad]
        PluginChansize = 7
        [out]
        Type = "FileOutput"
        MessageMatcher = "TRUE"
        Path = "/tmp/x"
        Encoder = "PayloadEncoder"
        FlushInterval = "250ms"
        flush_count = 3
        [PayloadEncoder]
    """), strict=True)
    out = cfg.plugins["out"].cfg
    assert cfg.hekad.plugin_chansize == 7
    assert out.message_matcher == "TRUE" and out.flush_interval == 0.25
    assert out.flush_count == 3


def test_durations():
    assert parse_duration("250ms") == 0.25
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("720h") == 720 * 3600
    assert parse_duration(1500, unit=1e-3) == 1.5
    assert parse_duration("1.5s") == 1.5
    for bad in ("5 minutes", "10", "ms", "-1s", True):
        with pytest.raises(OptionError):
            parse_duration(bad)


def test_directory_merges_toml_files_alphabetically_later_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("OUT_PATH", "/tmp/from-env")
    write_config(tmp_path, """
        [out]
        type = "FileOutput"
        message_matcher = "TRUE"
        path = "/tmp/first"
        encoder = "PayloadEncoder"
        [PayloadEncoder]
    """, "10-first.toml")
    write_config(tmp_path, """
        [out]
        type = "FileOutput"
        message_matcher = "Type == 'x'"
        path = "%ENV[OUT_PATH]"
        encoder = "PayloadEncoder"
    """, "20-second.toml")
    write_config(tmp_path, "this is not toml", "notes.txt")
    cfg = load_config(tmp_path, strict=True)
    assert [p.rsplit("/", 1)[1] for p in cfg.files] == ["10-first.toml", "20-second.toml"]
    assert cfg.plugins["out"].cfg.path == "/tmp/from-env"
    assert cfg.plugins["out"].cfg.message_matcher == "Type == 'x'"
    assert cfg.plugins["out"].file.endswith("20-second.toml")


def test_unset_env_is_an_error_and_unclosed_env_is_an_error(tmp_path, monkeypatch):
    # tests/engine/test_config_env.py has the rest of %ENV.
    monkeypatch.delenv("NOPE", raising=False)
    p = write_config(tmp_path, """
        [hekad]
        base_dir = "/x%ENV[NOPE]"
    """)
    (err,) = errors_of(p)
    assert "[hekad] base_dir: environment variable NOPE is not set" in err
    p = write_config(tmp_path, '[hekad]\nbase_dir = "%ENV[NOPE"\n')
    (err,) = errors_of(p)
    assert "unclosed %ENV[" in err and "line 2" in err


def test_unknown_key_names_file_section_key_and_choices(tmp_path):
    p = write_config(tmp_path, """
        [out]
        type = "FileOutput"
        message_matcher = "TRUE"
        path = "/tmp/x"
        encoder = "PayloadEncoder"
        flush_cnt = 3
        [PayloadEncoder]
    """)
    (err,) = errors_of(p)
    assert err.startswith(f"{p}: [out] flush_cnt: unknown key (did you mean 'flush_count'?)")
    assert "valid keys:" in err and "flush_interval" in err


def test_unknown_hekad_key(tmp_path):
    (err,) = errors_of(write_config(tmp_path, "[hekad]\npoolsise = 3\n"))
    assert "[hekad] poolsise: unknown key (did you mean 'poolsize'?)" in err


def test_unknown_type_lists_valid_types(tmp_path):
    (err,) = errors_of(write_config(tmp_path, """
        [x]
        type = "FileOutptu"
    """))
    assert "[x] type: unknown plugin type 'FileOutptu' (did you mean 'FileOutput'?)" in err
    assert "LogOutput" in err


def test_section_without_type_that_is_no_type(tmp_path):
    (err,) = errors_of(write_config(tmp_path, "[mystery]\nfoo = 1\n"))
    assert "[mystery]: no `type` key" in err


def test_every_error_is_reported_not_just_the_first(tmp_path):
    p = write_config(tmp_path, """
        [hekad]
        poolsize = "lots"
        [out]
        type = "FileOutput"
        message_matcher = "Type === 'x'"
        encoder = "nope"
        flush_interval = "soon"
        [cmd]
        type = "ProcessInput"
        splitter = "regex"
        [regex]
        type = "RegexSplitter"
        delimiter = "(unclosed"
    """)
    errs = errors_of(p)
    joined = "\n".join(errs)
    assert "[hekad] poolsize: expected an integer" in joined
    assert "[out] path: required key is missing" in joined
    assert "[out] flush_interval: invalid duration 'soon'" in joined
    assert "[out] message_matcher: does not parse" in joined
    assert "[out] encoder: no encoder named 'nope'" in joined
    assert "[cmd] command: required key is missing" in joined
    assert "[regex] delimiter:" in joined and "does not compile" in joined
    assert all(e.startswith(str(p)) for e in errs)
    assert len(errs) >= 7


def test_not_toml(tmp_path):
    (err,) = errors_of(write_config(tmp_path, "[out\ntype = 1\n"))
    assert "not valid TOML" in err and "line 1" in err


def test_missing_path(tmp_path):
    with pytest.raises(ConfigInvalid) as e:
        load_config(tmp_path / "absent.toml", strict=True)
    assert "no such file or directory" in str(e.value)


def test_reference_to_wrong_category(tmp_path):
    (err,) = errors_of(write_config(tmp_path, """
        [out]
        type = "LogOutput"
        message_matcher = "TRUE"
        encoder = "TokenSplitter"
    """))
    assert "[out] encoder: no encoder named 'TokenSplitter'" in err


def test_retries_and_buffering_subtables(tmp_path):
    cfg = load_config(write_config(tmp_path, """
        [out]
        type = "LogOutput"
        message_matcher = "TRUE"
        encoder = "PayloadEncoder"
        [out.retries]
        delay = "1s"
        max_retries = 3
        [out.buffering]
        full_action = "block"
        [PayloadEncoder]
    """), strict=True)
    out = cfg.plugins["out"].cfg
    assert (out.retries.delay, out.retries.max_delay, out.retries.max_retries) == (1.0, 30, 3)
    assert out.buffering.full_action == "block"
    assert out.buffering.max_file_size == 512 << 20
    errs = errors_of(write_config(tmp_path, """
        [out]
        type = "LogOutput"
        message_matcher = "TRUE"
        encoder = "PayloadEncoder"
        [out.retries]
        dealy = "1s"
        [out.buffering]
        full_action = "explode"
        [PayloadEncoder]
    """))
    joined = "\n".join(errs)
    assert "[out] retries.dealy: unknown key (did you mean 'delay'?)" in joined
    assert "[out] buffering.full_action: 'explode' is not one of" in joined


def test_matcher_newline_quirk_is_warned(tmp_path):
    cfg = load_config(write_config(tmp_path, '''
        [out]
        type = "LogOutput"
        encoder = "PayloadEncoder"
        message_matcher = """Type == 'a'
          || Type == 'b'"""
        [PayloadEncoder]
    '''), strict=True)
    assert any("newline" in w for w in cfg.warnings)


def test_output_without_matcher_is_warned(tmp_path):
    cfg = load_config(write_config(tmp_path, """
        [out]
        type = "LogOutput"
        encoder = "PayloadEncoder"
        [PayloadEncoder]
    """), strict=True)
    assert any("receive no messages" in w for w in cfg.warnings)


def test_config_errors_never_show_a_secret(tmp_path):
    """A secret key's bad value and a URL's userinfo stay out of every error message."""
    from hekapy.collector.engine.config import load_config
    from tests.helpers.plugins import write_config
    path = write_config(tmp_path, """
        [hekad]
        base_dir = "/tmp/x"
        [es]
        type = "ElasticSearchOutput"
        message_matcher = "TRUE"
        server = "ftp://bob:S3cr3tPassword@es.example:9200/"
        password = 12345678
        [influx]
        type = "InfluxdbOutput"
        message_matcher = "TRUE"
        url = "gopher://a:B4dPassw0rd@influx.example"
        token = 987654321
        [amqp]
        type = "AMQPInput"
        url = "http://guest:Gu3stPa55@rabbit.example"
        exchange = "x"
    """)
    config = load_config(str(path))
    text = "\n".join(map(str, config.errors))
    assert {("es", "server"), ("es", "password"), ("influx", "url"),
            ("influx", "token")} <= {(e.section, e.key) for e in config.errors}, text
    for secret in ("S3cr3tPassword", "12345678", "B4dPassw0rd", "987654321", "Gu3stPa55"):
        assert secret not in text, text
