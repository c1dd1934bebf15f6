"""SandboxEncoder: payload output through a FileOutput in a running pipeline, -2 (no
output), -1 (encode error), write_message on the encoder's own copy, output_limit and
termination."""

from __future__ import annotations

from pathlib import Path

import pytest

from hekapy.collector.engine.message import STRING, Field, Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.protobuf import decode_message
from hekapy.collector.sandbox.sandbox_encoder import EncodeError
from tests.helpers.paths import LUA
from tests.helpers.plugins import ScriptInput, config_from


def encoder(tmp_path: Path, extra: str = "", script: str = "line_encoder.lua"):
    cfg = config_from(tmp_path, f"""
        [enc]
        type = "SandboxEncoder"
        filename = "{LUA / script}"
        {extra}
          [enc.config]
          separator = " | "
    """)
    return Pipeline(cfg).build_plugin("enc", "Encoder")


def log(payload: str, type: str = "log", **fields) -> Message:
    m = Message(type=type, logger="openstack.nova", payload=payload, timestamp=1,
                uuid=bytes(16))
    m.fields.append(Field("severity_label", ["INFO"], STRING))
    for k, v in fields.items():
        m.add_field(k, v)
    return m


async def test_encoder_writes_lines_through_a_file_output(tmp_path):
    out = tmp_path / "lines.log"
    cfg = config_from(tmp_path, f"""
        [src]
        type = "ScriptInput"
        decoder = "dec"
        [dec]
        type = "OpenStackLogDecoder"
        tz = "UTC"
        [line_encoder]
        type = "SandboxEncoder"
        filename = "{LUA / 'line_encoder.lua'}"
        [file]
        type = "FileOutput"
        path = "{out}"
        message_matcher = "Type == 'log'"
        encoder = "line_encoder"
    """)
    ScriptInput.script = [[
        "2015-11-30 08:38:59.306 3434 INFO nova.api [-] hello\n",
        "2015-11-30 08:39:00.001 3434 WARNING nova.compute [-] disk almost full\n",
    ]]
    ScriptInput.linger = False
    p = Pipeline(cfg)
    await p.start()
    await p.inputs_finished()
    await p.stop()
    assert out.read_text() == ("openstack.nova INFO [-] hello\n"
                               "openstack.nova WARNING [-] disk almost full\n")
    assert ScriptInput.last.acked[-1] == 1


def test_config_and_skip(tmp_path):
    enc = encoder(tmp_path)
    assert enc.encode(log("hi\n")) == b"openstack.nova | INFO | hi\n"
    assert enc.encode(log("quiet", skip=True)) is None  # -2: nothing to write


def test_negative_status_is_an_encode_error(tmp_path):
    enc = encoder(tmp_path)
    with pytest.raises(EncodeError, match="refused by line_encoder"):
        enc.encode(log("x", type="refuse"))
    assert enc.encode(log("still alive")) == b"openstack.nova | INFO | still alive\n"


def test_write_message_changes_the_encoders_copy_only(tmp_path):
    enc = encoder(tmp_path)
    original = log("shared with other outputs", type="rewrite")
    data = enc.encode(original)
    m = decode_message(data)
    assert (m.type, m.payload) == ("rewritten", "shared with other outputs")
    assert m.get_field("encoded_by") == "line_encoder"
    assert original.type == "rewrite" and original.get_field("encoded_by") is None


def test_output_limit_terminates(tmp_path):
    enc = encoder(tmp_path, "output_limit = 64")
    assert enc.encode(log("short")) == b"openstack.nova | INFO | short\n"
    with pytest.raises(EncodeError) as e:
        enc.encode(log("x" * 100))
    assert str(e.value).startswith(f"SandboxEncoder 'enc' ({LUA / 'line_encoder.lua'}) "
                                   "terminated: process_message() line_encoder.lua:20: "
                                   "output_limit exceeded")
    with pytest.raises(EncodeError, match="sandbox terminated"):
        enc.encode(log("short"))
