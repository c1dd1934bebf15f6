"""UdpInput and UdpOutput: signed Heka frames over UDP and a unix datagram socket,
raw datagrams with set_hostname, bad HMACs and over-size messages dropped and
counted."""

from __future__ import annotations

import asyncio
import socket

from hekapy.collector.engine.message import Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.protobuf import encode_message, frame
from tests.helpers.plugins import CollectOutput, config_from
from tests.helpers.wait import wait_for
from tests.services import free_port

KEY = "udp-secret-key"


async def start(tmp_path, text: str, sub: str) -> Pipeline:
    (tmp_path / sub).mkdir(exist_ok=True)
    p = Pipeline(config_from(tmp_path / sub, f"""
        [hekad]
        base_dir = "{tmp_path / sub / 'state'}"
        {text}
    """))
    await p.start()
    return p


def receiver(address: str, net: str = "udp", extra: str = "") -> str:
    return f"""
        [udp_in]
        type = "UdpInput"
        address = "{address}"
        net = "{net}"
        splitter = "framing"
        decoder = "ProtobufDecoder"
        {extra}
        [framing]
        type = "HekaFramingSplitter"
        [framing.signer.node_2]
        hmac_key = "{KEY}"
        [sink]
        type = "CollectOutput"
        message_matcher = "TRUE"
    """


def sender(address: str, count: int, net: str = "udp") -> str:
    return f"""
        [seq]
        type = "SequenceInput"
        count = {count}
        batch = 20
        [udp_out]
        type = "UdpOutput"
        message_matcher = "TRUE"
        address = "{address}"
        net = "{net}"
        encoder = "ProtobufEncoder"
        use_framing = true
        [udp_out.signer]
        name = "node"
        version = 2
        hmac_key = "{KEY}"
        hmac_hash = "sha1"
    """


async def test_signed_heka_frames_over_udp(tmp_path):
    port = free_port(socket.SOCK_DGRAM)
    n = 400
    recv = await start(tmp_path, receiver(f"127.0.0.1:{port}"), "r")
    await asyncio.wait_for(recv.inputs[0][0].listening.wait(), 10)
    sink = CollectOutput.instances["sink"]
    send = await start(tmp_path, sender(f"127.0.0.1:{port}", n), "s")
    try:
        await wait_for(lambda: len(sink.messages) >= n, "every datagram", timeout=120)
    finally:
        await send.stop()
        await recv.stop()
    assert sorted(int(m.payload.split()[1]) for m in sink.messages) == list(range(n))
    assert {m.type for m in sink.messages} == {"test"}
    assert send.outputs[0][1].stats.messages_out == n
    assert recv.inputs[0][0].losses.bad_hmac == 0


async def test_unix_datagram_socket(tmp_path):
    """unixgram has flow control (a full receiver makes the sender wait): a larger
    burst arrives whole."""
    path = tmp_path / "udp.sock"
    n = 3000
    recv = await start(tmp_path, receiver(str(path), net="unixgram"), "r")
    await asyncio.wait_for(recv.inputs[0][0].listening.wait(), 10)
    sink = CollectOutput.instances["sink"]
    send = await start(tmp_path, sender(str(path), n, net="unixgram"), "s")
    try:
        await wait_for(lambda: len(sink.messages) >= n, "every datagram", timeout=120)
    finally:
        await send.stop()
        await recv.stop()
    assert sorted(int(m.payload.split()[1]) for m in sink.messages) == list(range(n))
    assert not path.exists()


async def test_bad_hmac_is_dropped_and_counted(tmp_path):
    port = free_port(socket.SOCK_DGRAM)
    recv = await start(tmp_path, receiver(f"127.0.0.1:{port}"), "r")
    udp_in = recv.inputs[0][0]
    sink = CollectOutput.instances["sink"]
    body = encode_message(Message(type="probe", payload="x"))
    datagrams = [
        frame(body, ("node", "wrong key", 2)),
        frame(body, ("stranger", KEY, 2)),
        frame(body, ("node", KEY, 2)) + frame(body, ("node", KEY, 2), hmac_hash="sha1"),
        b"garbage" + frame(body),  # unsigned: accepted after the garbage
    ]
    try:
        await asyncio.wait_for(udp_in.listening.wait(), 10)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for d in datagrams:
                s.sendto(d, ("127.0.0.1", port))
        await wait_for(lambda: udp_in.datagrams == 4 and len(sink.messages) == 3,
                       "the datagrams", timeout=120)
    finally:
        await recv.stop()
    assert [m.payload for m in sink.messages] == ["x", "x", "x"]
    assert udp_in.losses.bad_hmac == 2
    assert udp_in.losses.garbage_bytes == len(b"garbage")
    assert recv.inputs[0][1].stats.dropped == 2


async def test_raw_datagrams_with_set_hostname(tmp_path):
    """No splitter or decoder: each datagram is the Payload of a message of Type and
    Logger = the input's name, Hostname = the sender's address."""
    port = free_port(socket.SOCK_DGRAM)
    recv = await start(tmp_path, f"""
        [statsd]
        type = "UdpInput"
        address = "127.0.0.1:{port}"
        set_hostname = true
        [sink]
        type = "CollectOutput"
        message_matcher = "TRUE"
    """, "r")
    sink = CollectOutput.instances["sink"]
    try:
        await asyncio.wait_for(recv.inputs[0][0].listening.wait(), 10)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            me = s.getsockname()
            s.sendto(b"gauge.a:1|g", ("127.0.0.1", port))
            s.sendto(b"counter.b:2|c\n", ("127.0.0.1", port))
            await wait_for(lambda: len(sink.messages) == 2, "two datagrams", timeout=120)
    finally:
        await recv.stop()
    assert [m.payload for m in sink.messages] == ["gauge.a:1|g", "counter.b:2|c\n"]
    m = sink.messages[0]
    assert (m.type, m.logger, m.hostname) == ("statsd", "statsd", f"{me[0]}:{me[1]}")


async def test_an_oversize_message_is_dropped_and_counted(tmp_path):
    """max_message_size caps a datagram: bigger messages are dropped and counted, the
    others go through."""
    port = free_port(socket.SOCK_DGRAM)
    recv = await start(tmp_path, f"""
        [udp_in]
        type = "UdpInput"
        address = "127.0.0.1:{port}"
        [sink]
        type = "CollectOutput"
        message_matcher = "TRUE"
    """, "r")
    await asyncio.wait_for(recv.inputs[0][0].listening.wait(), 10)
    sink = CollectOutput.instances["sink"]
    send = await start(tmp_path, f"""
        [small]
        type = "SequenceInput"
        count = 30
        batch = 10
        record_type = "small"
        [big]
        type = "SequenceInput"
        count = 7
        batch = 7
        record_type = "big"
        pad = 3000
        [udp_out]
        type = "UdpOutput"
        message_matcher = "TRUE"
        address = "127.0.0.1:{port}"
        encoder = "PayloadEncoder"
        max_message_size = 2000
        [PayloadEncoder]
        append_newlines = false
    """, "s")
    out = send.outputs[0]
    try:
        await wait_for(lambda: len(sink.messages) == 30 and out[1].stats.dropped == 7,
                       "the small messages", timeout=120)
        for seq in (send.inputs[0][0], send.inputs[1][0]):  # dropped ones are acknowledged
            await wait_for(lambda seq=seq: seq.acked and seq.acked[-1] == seq.cfg.count,
                           "acks", timeout=120)
    finally:
        await send.stop()
        await recv.stop()
    assert all(len(m.payload) < 2000 for m in sink.messages)
    assert out[0].oversize == 7 and out[1].stats.messages_out == 30
