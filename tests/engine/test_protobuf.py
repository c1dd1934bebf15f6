"""Heka's protobuf wire format, stream framing and the plugins that use them."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hekapy.collector.catalog import load_all
from hekapy.collector.engine.config import load_config
from hekapy.collector.engine.contexts import InputContext
from hekapy.collector.engine.framing import default_use_framing, frame_record
from hekapy.collector.engine.message import BOOL, BYTES, DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.plugin import DecodeError, Input, Option, register
from hekapy.collector.engine.protobuf import (
    MAX_MESSAGE_SIZE,
    FrameReader,
    FrameStats,
    PbHeader,
    PbMessage,
    WireError,
    decode_message,
    encode_message,
    frame,
    split_frames,
)
from hekapy.collector.splitters.heka_framing import HekaFramingSplitter
from hekapy.decoders.protobuf import ProtobufDecoder
from hekapy.outputs.encoders.protobuf import ProtobufEncoder
from tests.helpers.plugins import CollectOutput, config_from, make_plugin, write_config
from tests.helpers.wait import wait_for

UUID = bytes(range(16))


def varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def ld(number: int, data: bytes) -> bytes:
    return tag(number, 2) + varint(len(data)) + data


# --- known-good vectors ---------------------------------------------------------------------

def test_known_good_vector_tiny_message():
    ts = 1_428_773_426_113_040_228
    m = Message(uuid=UUID, timestamp=ts, type="TEST")
    expected = (ld(1, UUID) + tag(2, 0) + varint(ts) + ld(3, b"TEST")
                + tag(5, 0) + varint(7))  # Severity is always written
    assert encode_message(m) == expected
    assert expected == (b"\x0a\x10" + UUID + b"\x10" + varint(ts) + b"\x1a\x04TEST\x28\x07")
    back = decode_message(expected)
    assert back == m and back.pid is None and back.logger == "" and back.severity == 7


def test_known_good_vector_fields_are_packed():
    m = Message(uuid=UUID, timestamp=1, severity=3, pid=42, hostname="h",
                fields=[Field("n", [1, -1], INTEGER, "count"),
                        Field("d", [0.5], DOUBLE),
                        Field("b", [True, False], BOOL),
                        Field("s", ["x", "y"], STRING),
                        Field("y", [b"\x00\xff"], BYTES)])

    def field(name, vt, rep, body):
        return ld(10, ld(1, name) + tag(2, 0) + varint(vt) + ld(3, rep) + body)

    expected = (ld(1, UUID) + tag(2, 0) + varint(1) + tag(5, 0) + varint(3)
                + tag(8, 0) + varint(42) + ld(9, b"h")
                + field(b"n", INTEGER, b"count", ld(6, varint(1) + varint(-1)))
                + field(b"d", DOUBLE, b"", ld(7, struct.pack("<d", 0.5)))
                + field(b"b", BOOL, b"", ld(8, b"\x01\x00"))
                + field(b"s", STRING, b"", ld(4, b"x") + ld(4, b"y"))
                + field(b"y", BYTES, b"", ld(5, b"\x00\xff")))
    assert encode_message(m) == expected
    assert decode_message(expected) == m


def test_unpacked_numeric_arrays_decode():
    body = (ld(1, b"n") + tag(2, 0) + varint(INTEGER) + tag(6, 0) + varint(5)
            + tag(6, 0) + varint(6))
    data = ld(1, UUID) + tag(2, 0) + varint(9) + ld(10, body)
    m = decode_message(data)
    assert m.fields == [Field("n", [5, 6], INTEGER)]


def test_frame_worked_examples():
    assert frame(b"x" * 100)[:5] == b"\x1e\x02\x08\x64\x1f"
    assert frame(b"x" * 300)[:6] == b"\x1e\x03\x08\xac\x02\x1f"
    assert frame(b"x" * 300)[6:] == b"x" * 300


# --- round trips ------------------------------------------------------------------------------

text = st.text(max_size=20)
int64 = st.integers(-(2**63), 2**63 - 1)
field_values = st.one_of(
    st.tuples(st.just(STRING), st.lists(text, min_size=1, max_size=4)),
    st.tuples(st.just(BYTES), st.lists(st.binary(max_size=10), min_size=1, max_size=4)),
    st.tuples(st.just(INTEGER), st.lists(int64, min_size=1, max_size=4)),
    st.tuples(st.just(DOUBLE), st.lists(st.floats(allow_nan=False), min_size=1,
                                         max_size=4)),
    st.tuples(st.just(BOOL), st.lists(st.booleans(), min_size=1, max_size=4)),
)
fields = st.builds(lambda name, tv, rep: Field(name, tv[1], tv[0], rep),
                   text, field_values, text)
messages = st.builds(
    lambda uuid, ts, type_, logger, sev, payload, env, pid, host, fs: Message(
        uuid=uuid, timestamp=ts, type=type_, logger=logger, severity=sev, payload=payload,
        env_version=env, pid=pid, hostname=host, fields=fs),
    st.binary(min_size=16, max_size=16), int64, text, text,
    st.integers(-(2**31), 2**31 - 1), text, text,
    st.none() | st.integers(-(2**31), 2**31 - 1), text, st.lists(fields, max_size=5))


def _no_surrogates(m: Message) -> bool:
    strs = [m.type, m.logger, m.payload, m.env_version, m.hostname]
    for f in m.fields:
        strs += [f.name, f.representation]
        if f.value_type == STRING:
            strs += f.values
    try:
        for s in strs:
            s.encode("utf-8")
    except UnicodeError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(messages)
def test_round_trip_generated(m):
    data = encode_message(m)
    back = decode_message(data)
    if _no_surrogates(m):
        assert back == m
    assert back.pid == m.pid
    # the protobuf library agrees with the bytes
    pb = PbMessage()
    pb.ParseFromString(data)
    assert pb.uuid == m.uuid and pb.timestamp == m.timestamp
    # byte-exact pass-through, and a fresh marshal of the decoded message is identical
    assert encode_message(back) == data
    back.raw = None
    if _no_surrogates(m):
        assert encode_message(back) == data


def test_unset_headers_round_trip():
    m = Message(uuid=UUID, timestamp=5)
    data = encode_message(m)
    pb = PbMessage()
    pb.ParseFromString(data)
    for name in ("type", "logger", "payload", "env_version", "pid", "hostname"):
        assert not pb.HasField(name), name
    assert pb.HasField("severity") and pb.severity == 7
    back = decode_message(data)
    assert back.pid is None and back == m
    # Pid 0 is not "unset"
    assert decode_message(encode_message(Message(uuid=UUID, timestamp=5, pid=0))).pid == 0


def test_absent_required_and_severity_get_heka_defaults():
    m = decode_message(ld(3, b"t"))
    assert (m.uuid, m.timestamp, m.type, m.severity, m.pid) == (b"", 0, "t", 7, None)
    assert m.uuid_text == ""


def test_invalid_utf8_is_replaced_but_passes_through():
    data = ld(1, UUID) + tag(2, 0) + varint(1) + ld(6, b"ok \xff\xfe")
    m = decode_message(data)
    assert m.payload.startswith("ok ") and "\ufffd" in m.payload
    assert encode_message(m) == data


def test_bad_bytes_raise():
    with pytest.raises(WireError):
        decode_message(b"\x0a\x50abc")  # length past the end
    with pytest.raises(WireError):
        decode_message(b"\xff\xff\xff")


# --- byte-exact pass-through ------------------------------------------------------------------

def _foreign_bytes() -> bytes:
    """Valid bytes another writer could produce: fields out of tag order, no severity,
    unpacked integers — a re-marshal would differ."""
    f = ld(1, b"n") + tag(2, 0) + varint(INTEGER) + tag(6, 0) + varint(3)
    return ld(3, b"typ") + ld(10, f) + ld(1, UUID) + tag(2, 0) + varint(77)


def test_pass_through_is_byte_exact():
    data = _foreign_bytes()
    m = decode_message(data)
    assert m.raw == data
    assert encode_message(m) == data
    assert encode_message(m.copy()) == data  # an unmodified copy too
    assert encode_message(Message(uuid=UUID, timestamp=77, type="typ",
                                  fields=[Field("n", [3], INTEGER)])) != data


@pytest.mark.parametrize("change", [
    lambda m: setattr(m, "type", "other"),
    lambda m: setattr(m, "severity", 2),
    lambda m: setattr(m, "pid", 1),
    lambda m: m.add_field("x", 1),
    lambda m: m.set_field("n", 4),
    lambda m: m.delete_field("n"),
])
def test_changed_message_is_re_marshalled(change):
    data = _foreign_bytes()
    for m in (decode_message(data), decode_message(data).copy()):
        change(m)  # raw not cleared: the stamp check catches it
        out = encode_message(m)
        assert out != data
        again = decode_message(out)
        again.raw = None
        m.raw = None
        assert again == m


def test_raw_cleared_by_a_decoder_re_marshals():
    m = decode_message(_foreign_bytes())
    m.raw = None
    assert encode_message(m) != _foreign_bytes()


# --- framing ----------------------------------------------------------------------------------

def _body(i: int = 0) -> bytes:
    return encode_message(Message(uuid=UUID, timestamp=i, type="t", payload=f"p{i}"))


def test_split_unsigned_frames():
    data = frame(_body(1)) + frame(_body(2))
    frames, consumed = split_frames(data)
    assert consumed == len(data)
    assert [b for _, b in frames] == [_body(1), _body(2)]
    assert frames[0][0].message_length == len(_body(1))


@pytest.mark.parametrize("hash_name,digest", [("md5", hashlib.md5), ("sha1", hashlib.sha1)])
def test_signed_frames(hash_name, digest):
    body = _body(3)
    data = frame(body, ("ops", "secret", 2), hmac_hash=hash_name)
    header = PbHeader()
    header.ParseFromString(data[2:2 + data[1]])
    assert header.hmac_signer == "ops" and header.hmac_key_version == 2
    assert header.hmac == hmac.new(b"secret", body, digest).digest()
    assert header.HasField("hmac_hash_function") == (hash_name == "sha1")
    frames, consumed = split_frames(data, signers={"ops_2": "secret"})
    assert [b for _, b in frames] == [body] and consumed == len(data)


@pytest.mark.parametrize("signers", [{"ops_2": "wrong"}, {"ops_1": "secret"}, None])
def test_bad_hmac_is_dropped_and_counted(signers):
    good = frame(_body(1))
    data = frame(_body(2), ("ops", "secret", 2), hmac_hash="sha1") + good
    stats = FrameStats()
    frames, consumed = split_frames(data, signers=signers, stats=stats)
    assert [b for _, b in frames] == [_body(1)]
    assert consumed == len(data) and stats.bad_hmac == 1
    # skip_authentication accepts it
    frames, _ = split_frames(data, signers=signers, skip_authentication=True)
    assert len(frames) == 2


def test_tampered_body_fails_hmac():
    data = bytearray(frame(b"hello world", ("ops", "k", 0)))
    data[-1] ^= 1
    stats = FrameStats()
    frames, _ = split_frames(bytes(data), signers={"ops_0": "k"}, stats=stats)
    assert frames == [] and stats.bad_hmac == 1


def test_garbage_between_frames_resyncs():
    data = (b"noise\x1e\x00\x1e" + frame(_body(1)) + b"\x1e\x05junk!!!!"
            + frame(_body(2)) + b"trailing")
    stats = FrameStats()
    frames, consumed = split_frames(data, stats=stats)
    assert [b for _, b in frames] == [_body(1), _body(2)]
    assert consumed == len(data)
    assert stats.bad_header >= 2 and stats.skipped_bytes > 0


def test_truncated_frame_is_held_until_complete():
    data = frame(_body(1)) + frame(_body(2))
    cut = len(frame(_body(1))) + 7
    frames, consumed = split_frames(data[:cut])
    assert len(frames) == 1 and consumed == len(frame(_body(1)))
    reader = FrameReader()
    got = []
    for i in range(len(data)):  # one byte at a time
        got += [b for _, b in reader.feed(data[i:i + 1])]
        if i < len(data) - 1:
            assert reader.remainder > 0 or len(got) == 1
    assert got == [_body(1), _body(2)] and reader.remainder == 0


def test_oversize_frame_is_skipped():
    big = b"x" * 2000
    data = frame(big, max_message_size=4096) + frame(_body(1))
    stats = FrameStats()
    frames, consumed = split_frames(data, max_message_size=1500, stats=stats)
    assert [b for _, b in frames] == [_body(1)]
    assert stats.oversize == 1 and consumed == len(data)


def test_frame_refuses_too_big():
    with pytest.raises(ValueError, match="too big"):
        frame(b"x" * (MAX_MESSAGE_SIZE + 1))
    with pytest.raises(ValueError, match="header"):
        frame(b"x", ("s" * 300, "k", 1))


# --- plugins ----------------------------------------------------------------------------------

def test_plugins_registered_and_defaults():
    reg = load_all()
    for name in ("HekaFramingSplitter", "ProtobufDecoder", "ProtobufEncoder"):
        assert name in reg
    sp = make_plugin(HekaFramingSplitter)
    assert sp.cfg.use_message_bytes is True


def test_default_plugins_usable_without_section(tmp_path):
    cfg = config_from(tmp_path, """
        [src]
        type = "SequenceInput"
        splitter = "HekaFramingSplitter"
        decoder = "ProtobufDecoder"
        [out]
        type = "CollectOutput"
        message_matcher = "TRUE"
        encoder = "ProtobufEncoder"
    """)
    assert cfg.resolve("HekaFramingSplitter", "Splitter").cfg.use_message_bytes is True
    assert cfg.resolve("ProtobufDecoder", "Decoder") is not None


def test_signer_config(tmp_path):
    cfg = config_from(tmp_path, """
        [framing]
        type = "HekaFramingSplitter"
        [framing.signer.ops_1]
        hmac_key = "secret"
    """)
    spec = cfg.plugins["framing"]
    assert spec.cfg.signer == {"ops_1": "secret"}
    sp = spec.build()
    data = frame(b"a", ("ops", "secret", 1)) + frame(b"b", ("ops", "bad", 1))
    assert sp.split(data) == [b"a"] and sp.dropped == 1


@pytest.mark.parametrize("table", ['[framing.signer.ops]\nhmac_key = "k"',
                                   '[framing.signer.ops_1]\nkey = "k"'])
def test_bad_signer_config(tmp_path, table):
    p = write_config(tmp_path, '[framing]\ntype = "HekaFramingSplitter"\n' + table + "\n")
    cfg = load_config(p)
    assert any(e.key == "signer" for e in cfg.errors), cfg.errors


def test_splitter_chunks_garbage_and_limits():
    sp = make_plugin(HekaFramingSplitter)
    sp.max_record_size = 3 + 255 + 1500  # as the runtime sets it
    data = (b"junk" + frame(_body(1)) + frame(b"y" * 2000, max_message_size=4096)
            + frame(_body(2)))
    out = []
    for i in range(0, len(data), 13):
        out += sp.split(data[i:i + 13])
        assert sp.remainder <= 13 + 3 + 255 + 1500
    assert out == [_body(1), _body(2)] and sp.remainder == 0 and sp.dropped == 1
    sp.split(frame(_body(3))[:5])
    assert sp.remainder == 5
    assert sp.flush() == [] and sp.remainder == 0
    sp.split(b"\x1e")
    sp.reset()
    assert sp.remainder == 0


def test_decoder_and_encoder():
    dec = make_plugin(ProtobufDecoder)
    enc = make_plugin(ProtobufEncoder)
    data = _foreign_bytes()
    m = dec.decode(Message(type="input", raw=data))
    assert m.type == "typ" and m.timestamp == 77
    assert enc.encode(m) == data
    assert enc.encode_framed(m) == frame(data) == frame_record(data)
    assert default_use_framing(enc) and not default_use_framing(object())
    with pytest.raises(DecodeError):
        dec.decode(Message(raw=b"\xff\xff"))
    with pytest.raises(DecodeError):
        dec.decode(Message(payload="no bytes"))


# --- pipeline ---------------------------------------------------------------------------------

@register
class FramedChunksInput(Input):
    """Test input: feeds `chunks` through its splitter, one read each."""

    options = {"chunks": Option("any", [])}
    chunks: list[bytes] = []

    async def run(self, ctx: InputContext) -> None:
        sp = ctx.new_splitter()
        pos = 0
        for chunk in FramedChunksInput.chunks:
            pos += len(chunk)
            records = sp.split(chunk)
            if records:
                await ctx.deliver_records(records, pos, type="raw", logger=self.name)


async def test_pipeline_framing_splitter_and_protobuf_decoder(tmp_path):
    sent = [Message(uuid=bytes([i]) * 16, timestamp=i, type="heka", logger="remote",
                    payload=f"msg {i}", fields=[Field("i", [i], INTEGER)]) for i in range(5)]
    stream = b"".join(frame(encode_message(m)) for m in sent[:2]) + b"\x00junk" + b"".join(
        frame(encode_message(m)) for m in sent[2:])
    FramedChunksInput.chunks = [stream[i:i + 50] for i in range(0, len(stream), 50)]
    cfg = config_from(tmp_path, """
        [src]
        type = "FramedChunksInput"
        splitter = "HekaFramingSplitter"
        decoder = "ProtobufDecoder"
        [out]
        type = "CollectOutput"
        message_matcher = "Type == 'heka'"
    """)
    p = Pipeline(cfg)
    await p.start()
    got = CollectOutput.instances["out"].messages
    await wait_for(lambda: len(got) == len(sent), "all messages")
    await p.stop()
    assert [(m.timestamp, m.payload, m.get_field("i")) for m in got] == [
        (m.timestamp, m.payload, m.get_field("i")) for m in sent]
    assert [encode_message(m) for m in got] == [encode_message(m) for m in sent]
