"""FileOutput and LogOutput with their encoders, through the real pipeline."""

from __future__ import annotations

import json
import time

from hekapy.collector.engine.message import Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.outputs.encoders.payload import PayloadEncoder
from hekapy.outputs.encoders.rst import RstEncoder
from tests.helpers.plugins import config_from, make_plugin
from tests.helpers.wait import wait_for


async def test_file_output_writes_and_acknowledges_after_writing(tmp_path):
    out = tmp_path / "sub" / "out.log"
    cfg = config_from(tmp_path, f"""
        [src]
        type = "SequenceInput"
        count = 95
        batch = 5
        [file]
        type = "FileOutput"
        message_matcher = "TRUE"
        path = "{out}"
        encoder = "PayloadEncoder"
        flush_count = 20
        flush_interval = "1h"
        flush_operator = "OR"
        [PayloadEncoder]
    """)
    p = Pipeline(cfg)
    await p.start()
    src = p.inputs[0][0]
    await src.finished.wait()
    # flush_count = 20 with OR: four flushes of 20, the last 15 wait for a flush.
    await wait_for(lambda: src.acked and src.acked[-1] == 80, "four flushes")
    assert out.read_text().count("\n") == 80
    assert src.acked[-1] == 80
    await p.stop()  # stopping flushes the rest
    assert out.read_text().splitlines() == [f"line {i}" for i in range(95)]
    assert src.closed_at == 95
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    assert oct(out.parent.stat().st_mode & 0o777) == "0o700"


async def test_file_output_and_operator_waits_for_both(tmp_path):
    out = tmp_path / "out.json"
    cfg = config_from(tmp_path, f"""
        [src]
        type = "SequenceInput"
        count = 50
        batch = 50
        [file]
        type = "FileOutput"
        message_matcher = "TRUE"
        path = "{out}"
        encoder = "JsonEncoder"
        flush_count = 10
        flush_interval = "50ms"
        [JsonEncoder]
    """)
    p = Pipeline(cfg)
    await p.start()
    src = p.inputs[0][0]
    started = time.monotonic()
    await wait_for(lambda: src.acked == [50], "the flush", timeout=120)
    # AND: 50 >= 10 messages were there at once, but the interval had to pass too.
    assert time.monotonic() - started >= 0.05
    docs = [json.loads(x) for x in out.read_text().splitlines()]
    assert [d["Payload"] for d in docs] == [f"line {i}\n" for i in range(50)]
    await p.stop()


async def test_file_output_rotation_names_files_by_period(tmp_path):
    cfg = config_from(tmp_path, f"""
        [src]
        type = "SequenceInput"
        count = 3
        [file]
        type = "FileOutput"
        message_matcher = "TRUE"
        path = "{tmp_path}/out-%Y%m%d%H.log"
        encoder = "PayloadEncoder"
        rotation_interval = 1
        [PayloadEncoder]
    """)
    p = Pipeline(cfg)
    await p.start()
    await p.inputs[0][0].finished.wait()
    await p.stop()
    (f,) = tmp_path.glob("out-*.log")
    assert f.name == time.strftime("out-%Y%m%d%H.log", time.gmtime())
    assert f.read_text().count("\n") == 3


def test_payload_encoder_prefix_and_newlines():
    m = Message(payload="hello", timestamp=1_700_000_000 * 10**9)
    enc = make_plugin(PayloadEncoder, prefix_ts=True, ts_format="%Y-%m-%d")
    assert enc.encode(m).endswith(b" hello\n")
    assert enc.encode(m)[:10] == time.strftime("%Y-%m-%d", time.localtime(1_700_000_000)).encode()
    assert make_plugin(PayloadEncoder, append_newlines=False).encode(m) == b"hello"
    assert make_plugin(PayloadEncoder).encode(Message(payload="x\n")) == b"x\n"


def test_rst_encoder_lists_headers_and_fields():
    m = Message(type="t", payload="p", timestamp=0)
    m.add_field("n", 3, "count")
    text = make_plugin(RstEncoder).encode(m).decode()
    assert ":Type: t" in text and ":Timestamp: 1970-01-01 00:00:00.000000000 +0000 UTC" in text
    assert 'name:"n" type:integer value:3 representation:"count"' in text


async def test_log_output_prints_to_stdout(tmp_path, capfd):
    cfg = config_from(tmp_path, """
        [src]
        type = "SequenceInput"
        count = 2
        [console]
        type = "LogOutput"
        message_matcher = "TRUE"
        encoder = "PayloadEncoder"
        [PayloadEncoder]
    """)
    p = Pipeline(cfg)
    await p.start()
    await p.inputs[0][0].finished.wait()
    await p.stop()
    assert capfd.readouterr().out == "line 0\nline 1\n"


async def test_file_output_frames_protobuf_records(tmp_path):
    """With the ProtobufEncoder, FileOutput writes a Heka stream (framed by default, as
    Heka's use_framing): read back with the framing parser, every message intact."""
    from hekapy.collector.engine.protobuf import decode_message, split_frames
    out = tmp_path / "stream.heka"
    p = Pipeline(config_from(tmp_path, f"""
        [src]
        type = "SequenceInput"
        count = 50
        batch = 10
        [file]
        type = "FileOutput"
        message_matcher = "TRUE"
        path = "{out}"
        encoder = "ProtobufEncoder"
        flush_count = 10
    """))
    await p.start()
    src = p.inputs[0][0]
    await src.finished.wait()
    await p.stop()
    frames, consumed = split_frames(out.read_bytes())
    assert consumed == out.stat().st_size
    msgs = [decode_message(body) for _, body in frames]
    assert [m.payload for m in msgs] == [f"line {i}\n" for i in range(50)]
    assert {m.type for m in msgs} == {"test"}
