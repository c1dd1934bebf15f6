"""DiskBuffer: order, durability across restarts and kill -9, segments, corruption,
torn tails, full_action; and the msgpack message records."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hekapy.collector.engine.buffer import HEADER_SIZE, BufferFull, DiskBuffer
from hekapy.collector.engine.message import BOOL, BYTES, DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.engine.serialize import (
    pack_batch,
    pack_message,
    pack_messages,
    unpack_batch,
    unpack_message,
)


def recs(n: int, start: int = 0, size: int = 0) -> list[bytes]:
    return [(b"record %d " % i).ljust(size, b"x") for i in range(start, start + n)]


async def drain(buf: DiskBuffer, n: int) -> list[tuple[tuple[int, int], bytes]]:
    out = []
    while len(out) < n:
        out += await asyncio.wait_for(buf.read(max_records=n - len(out)), 5)
    return out


async def test_fifo_ack_and_restart_resumes_at_checkpoint(tmp_path):
    buf = DiskBuffer(tmp_path / "q", max_file_size=4096)
    await buf.append(recs(100))
    got = await drain(buf, 60)
    assert [r for _, r in got] == recs(60)
    buf.ack(got[39][0])  # 40 handled, 20 read but not acknowledged
    buf.close()
    buf = DiskBuffer(tmp_path / "q", max_file_size=4096)
    again = await drain(buf, 60)
    assert [r for _, r in again] == recs(60, 40)  # at least once: 40..99 again
    buf.ack(again[-1][0])
    assert buf.size_bytes == 0
    buf.close()
    # Fully acknowledged segments are gone; only the one being written may remain.
    assert len(list((tmp_path / "q").glob("*.log"))) <= 1


async def test_segments_roll_and_reader_follows_the_writer(tmp_path):
    buf = DiskBuffer(tmp_path / "q", max_file_size=1000)
    reader = asyncio.create_task(drain(buf, 300))
    for i in range(0, 300, 30):
        await buf.append(recs(30, i, size=50))
    got = await reader
    assert [r for _, r in got] == recs(300, size=50)
    assert len(list((tmp_path / "q").glob("*.log"))) > 10
    buf.ack(got[-1][0])
    buf.close()
    assert len(list((tmp_path / "q").glob("*.log"))) == 1


async def test_corrupt_bytes_are_skipped_and_counted(tmp_path):
    buf = DiskBuffer(tmp_path / "q")
    await buf.append(recs(10, size=20))
    buf.close()
    seg = next((tmp_path / "q").glob("*.log"))
    data = bytearray(seg.read_bytes())
    frame_len = HEADER_SIZE + 20
    data[3 * frame_len + 12] ^= 0xFF  # a payload byte of record 3: its checksum fails
    data[6 * frame_len:6 * frame_len + 2] = b"ZZ"  # record 6 loses its magic
    seg.write_bytes(bytes(data))
    buf = DiskBuffer(tmp_path / "q")
    got = await drain(buf, 8)
    assert [r for _, r in got] == [r for i, r in enumerate(recs(10, size=20)) if i not in (3, 6)]
    assert buf.corrupt_bytes == 2 * frame_len


async def test_torn_tail_is_cut_at_open(tmp_path):
    buf = DiskBuffer(tmp_path / "q")
    await buf.append(recs(5))
    buf.close()
    seg = next((tmp_path / "q").glob("*.log"))
    with open(seg, "ab") as f:
        f.write(b"HK\x00\x00\x01\x00torn")  # a header promising 256 bytes, then a crash
    buf = DiskBuffer(tmp_path / "q")
    assert [r for _, r in await drain(buf, 5)] == recs(5)
    await buf.append([b"after"])
    assert [r for _, r in await drain(buf, 1)] == [b"after"]


async def test_full_actions(tmp_path):
    drop = DiskBuffer(tmp_path / "d", max_buffer_size=500, full_action="drop")
    assert await drop.append(recs(10, size=40))
    assert not await drop.append(recs(5, size=40))
    assert drop.dropped == 5
    shut = DiskBuffer(tmp_path / "s", max_buffer_size=500, full_action="shutdown")
    await shut.append(recs(10, size=40))
    with pytest.raises(BufferFull):
        await shut.append(recs(1, size=40))
    block = DiskBuffer(tmp_path / "b", max_buffer_size=500, full_action="block")
    await block.append(recs(10, size=40))
    waiting = asyncio.create_task(block.append(recs(5, 10, size=40)))
    await asyncio.sleep(0)
    assert not waiting.done()
    got = await drain(block, 10)
    block.ack(got[-1][0])
    assert await asyncio.wait_for(waiting, 5)
    assert [r for _, r in await drain(block, 5)] == recs(5, 10, size=40)


async def test_close_wakes_a_waiting_reader(tmp_path):
    buf = DiskBuffer(tmp_path / "q")
    reader = asyncio.create_task(buf.read())
    await asyncio.sleep(0)
    buf.close()
    assert await asyncio.wait_for(reader, 5) == []


WRITER = r"""
import asyncio, sys
from hekapy.collector.engine.buffer import DiskBuffer
async def main():
    buf = DiskBuffer(sys.argv[1], max_file_size=20000)
    i = 0
    while True:
        await buf.append([b"rec %d" % j for j in range(i, i + 50)])
        i += 50
        print(i, flush=True)  # appended durably up to here
asyncio.run(main())
"""


async def test_kill_9_keeps_every_acknowledged_append(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "q")],
                            stdout=subprocess.PIPE, text=True)
    durable = 0
    while durable < 3000:
        durable = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    buf = DiskBuffer(tmp_path / "q", max_file_size=20000)
    got = await drain(buf, durable)
    assert [r for _, r in got] == [b"rec %d" % i for i in range(durable)]


# --- serialize --------------------------------------------------------------------------

def test_message_round_trip_keeps_a_lazy_uuid():
    m = Message(type="log", logger="openstack.nova", payload="x\ny", pid=12, severity=3,
                hostname="node-1", env_version="0.8",
                fields=[Field("s", ["a", "b"], STRING, "rep"), Field("i", [1], INTEGER),
                        Field("d", [1.5], DOUBLE), Field("b", [True], BOOL),
                        Field("raw", [b"\xff\x00"], BYTES)])
    data = pack_message(m)  # the lazy Uuid is fixed here
    back = unpack_message(data)
    assert back.as_dict() == m.as_dict() and back.uuid == m.uuid
    assert [unpack_message(r).uuid for r in pack_messages([m, m])] == [m.uuid, m.uuid]
    with pytest.raises(ValueError):
        unpack_message(b"\x93\x01\x02\x03")


_field = st.builds(
    lambda name, ints: Field(name, ints, INTEGER),
    st.text(max_size=10), st.lists(st.integers(-2**63, 2**63 - 1), min_size=1, max_size=3))


@settings(max_examples=200, deadline=None)
@given(st.builds(Message, type=st.text(max_size=10), payload=st.text(max_size=100),
                 pid=st.none() | st.integers(0, 2**31), severity=st.integers(0, 7),
                 timestamp=st.integers(0, 2**63 - 1), fields=st.lists(_field, max_size=4),
                 raw=st.none() | st.binary(max_size=20)))
def test_round_trip_fuzz(m):
    back = unpack_message(pack_message(m))
    assert back.as_dict() == m.as_dict() and back.raw == m.raw


@settings(max_examples=100, deadline=None)
@given(st.lists(st.builds(Message, type=st.text(max_size=10), payload=st.text(max_size=50),
                          pid=st.none() | st.integers(0, 2**31),
                          fields=st.lists(_field, max_size=4)), max_size=5))
def test_batch_round_trip_with_fields_unpacked_on_first_use(messages):
    """Replay's worker → writer blob: the same messages, their encoder bytes attached,
    fields read on first use; setting fields before reading them replaces them."""
    encoded = [{"enc": b"doc %d" % i} if i % 2 else None for i in range(len(messages))]
    back = unpack_batch(pack_batch(messages, encoded))
    assert [m.pre_encoded for m in back] == encoded
    assert [m.as_dict() for m in back] == [m.as_dict() for m in messages]
    assert [m.uuid for m in back] == [m.uuid for m in messages]
    if back:
        back[0].fields = [Field("new", ["v"])]
        assert back[0].get_field("new") == "v" and len(back[0].fields) == 1


def test_wire_bytes_pass_through_survives_the_disk_buffer():
    """A message ProtobufDecoder made, unmodified, is still passed through byte for byte
    after the disk buffer (TcpOutput's default); one changed before buffering, or after
    reading back, is encoded afresh."""
    from hekapy.collector.engine.protobuf import WireBytes, decode_message, encode_message
    original = Message(type="log", payload="x", fields=[Field("a", ["b"])])
    # Bytes whose re-marshal would differ: an unknown field (number 99) at the end.
    wire = encode_message(original) + b"\xfa\x06\x01z"
    back = unpack_message(pack_message(decode_message(wire)))
    assert isinstance(back.raw, WireBytes) and encode_message(back) == wire
    back.payload = "changed"
    assert encode_message(back) != wire
    changed = decode_message(wire)
    changed.severity = 1
    assert encode_message(unpack_message(pack_message(changed))) != wire
