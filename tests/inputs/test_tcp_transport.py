"""TcpInput and TcpOutput: Heka stream frames of protobuf messages between hekapy
pipelines and processes. Signed frames, garbage between frames, oversize frames and
bad HMACs over real sockets; backpressure; TLS with client certificates; a unix
socket with reconnect_after; and two `hekapy run` processes, the receiving one
stopped and restarted mid-stream, with every message stored once by Uuid in the
Elasticsearch double."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
from pathlib import Path

import pytest

from hekapy.benchmarks.es_double import EsDouble
from hekapy.collector.engine.config import ConfigInvalid, load_config
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.protobuf import decode_message, encode_message, frame
from tests.helpers.collectors import HEKAPY
from tests.helpers.plugins import CollectOutput, config_from, write_config
from tests.helpers.wait import settle, wait_for
from tests.services import free_port, make_certificates, stop_process

KEY = "c0llector-1 shared [secret] 9q7w"  # spaces and brackets, kept as is in a TOML string


def receiver_config(tmp: Path, address: str, extra: str = "", hekad: str = "",
                    sink: str = "") -> str:
    return f"""
        [hekad]
        base_dir = "{tmp / 'receiver'}"
        {hekad}
        [tcp_in]
        type = "TcpInput"
        address = "{address}"
        splitter = "signed_framing"
        {extra}
        [signed_framing]
        type = "HekaFramingSplitter"
        [signed_framing.signer.collector_1]
        hmac_key = "{KEY}"
        [sink]
        type = "CollectOutput"
        message_matcher = "TRUE"
        {sink}
    """


def sender_config(tmp: Path, address: str, count: int, extra: str = "",
                  signer: bool = True) -> str:
    sign = f"""
        [tcp_out.signer]
        name = "collector"
        version = 1
        hmac_key = "{KEY}"
    """ if signer else ""
    return f"""
        [hekad]
        base_dir = "{tmp / 'sender'}"
        [seq]
        type = "SequenceInput"
        count = {count}
        batch = 500
        [tcp_out]
        type = "TcpOutput"
        message_matcher = "TRUE"
        address = "{address}"
        retry_delay = "10ms"
        retry_max_delay = "100ms"
        {extra}
        {sign}
    """


async def start(tmp: Path, text: str, sub: str) -> Pipeline:
    (tmp / sub).mkdir(exist_ok=True)
    p = Pipeline(config_from(tmp / sub, text))
    await p.start()
    return p


def signed(msg: Message, key: str = KEY, name: str = "collector", version: int = 1,
           hmac_hash: str = "md5") -> bytes:
    return frame(encode_message(msg), (name, key, version), hmac_hash=hmac_hash)


async def test_signed_round_trip_through_the_disk_buffer(tmp_path):
    """SequenceInput → TcpOutput (signed, use_buffering by default) → TcpInput →
    ProtobufDecoder: every message arrives with its Uuid, and the sender's input has
    everything acknowledged."""
    port = free_port()
    n = 20000
    recv = await start(tmp_path, receiver_config(tmp_path, f"127.0.0.1:{port}"), "r")
    await asyncio.wait_for(recv.inputs[0][0].listening.wait(), 10)
    send = await start(tmp_path, sender_config(tmp_path, f"127.0.0.1:{port}", n), "s")
    sink = CollectOutput.instances["sink"]
    seq = send.inputs[0][0]
    try:
        await wait_for(lambda: len(sink.messages) >= n, "every message", timeout=300)
        await wait_for(lambda: seq.acked and seq.acked[-1] == n, "the input's acks", timeout=300)
    finally:
        await send.stop()
        await recv.stop()
    assert sorted(int(m.payload.split()[1]) for m in sink.messages) == list(range(n))
    assert {m.type for m in sink.messages} == {"test"}
    assert len({m.uuid for m in sink.messages}) == n
    tcp_out = send.outputs[0][0]
    assert send.outputs[0][1].stats.messages_out == n
    assert tcp_out.connects == 1
    assert send.buffers["tcp_out"].disk.max_file_size == 128 << 20  # Heka's default
    tcp_in = recv.inputs[0][0]
    assert tcp_in.losses.bad_hmac == 0 and tcp_in.connections == 1


async def test_garbage_oversize_and_bad_hmac_over_a_socket(tmp_path):
    """Garbage between frames is skipped (the splitter resynchronises), a frame over
    max_message_size is skipped, frames with a wrong key, an unknown signer or a
    tampered body are dropped: each counted. The bytes come in odd-sized pieces."""
    port = free_port()
    recv = await start(tmp_path, receiver_config(
        tmp_path, f"127.0.0.1:{port}", hekad="max_message_size = 4096"), "r")
    sink = CollectOutput.instances["sink"]
    tcp_in = recv.inputs[0][0]

    def msg(text: str) -> Message:
        return Message(type="probe", payload=text, hostname="sender")

    tampered = bytearray(signed(msg("tampered")))
    tampered[-3] ^= 0x01
    over_body = b"z" * 5000
    # A header announcing a 5000-byte body (over max_message_size = 4096).
    header = b"\x08\x88\x27"  # message_length = 5000 (varint)
    oversize = b"\x1e" + bytes([len(header)]) + header + b"\x1f" + over_body
    stream = b"".join([
        b"leading garbage \x00\x01\x02",
        signed(msg("one")),
        b"\x1e\x05not-a-header\x1f junk \x1e",  # invalid headers: resynchronise
        signed(msg("wrong key"), key="not the key"),
        oversize,
        signed(msg("two"), hmac_hash="sha1"),
        signed(msg("unknown signer"), name="intruder"),
        bytes(tampered),
        frame(encode_message(msg("unsigned"))),  # no hmac: accepted (Heka's rule)
        b"trailing garbage",
        signed(msg("three")),
    ])
    rng = random.Random(7)
    try:
        await asyncio.wait_for(tcp_in.listening.wait(), 10)
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        pos = 0
        while pos < len(stream):
            step = rng.randint(1, 700)
            writer.write(stream[pos:pos + step])
            await writer.drain()
            pos += step
        await wait_for(lambda: len(sink.messages) == 4, "four good messages", timeout=120)
        writer.close()
    finally:
        await recv.stop()
    assert [m.payload for m in sink.messages] == ["one", "two", "unsigned", "three"]
    assert {m.type for m in sink.messages} == {"probe"}
    assert tcp_in.losses.bad_hmac == 3
    assert tcp_in.losses.oversize == 1
    assert tcp_in.losses.garbage_bytes >= len(b"leading garbage \x00\x01\x02") + len(over_body)
    assert recv.inputs[0][1].stats.dropped == 4  # 3 bad HMACs + 1 oversize


async def test_raw_mode_local_address_and_max_connections(tmp_path):
    """Without a decoder a frame's body stays in `raw`, with Type and Logger = the
    input's name and Hostname = the peer, here the sender's local_address. A second
    connection over max_connections is closed at once and counted."""
    port, source_port = free_port(), free_port()
    recv = await start(tmp_path, receiver_config(tmp_path, f"127.0.0.1:{port}", extra="""
        decoder = ""
        max_connections = 1
    """), "r")
    tcp_in = recv.inputs[0][0]
    sink = CollectOutput.instances["sink"]
    await asyncio.wait_for(tcp_in.listening.wait(), 10)
    send = await start(tmp_path, sender_config(tmp_path, f"127.0.0.1:{port}", 10, extra=f"""
        local_address = "127.0.0.2:{source_port}"
    """, signer=False), "s")
    try:
        await wait_for(lambda: len(sink.messages) == 10, "ten raw messages", timeout=120)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert await asyncio.wait_for(r.read(), 10) == b""  # closed at once
        except ConnectionResetError:
            pass
        w.close()
    finally:
        await send.stop()
        await recv.stop()
    m = sink.messages[0]
    assert (m.type, m.logger, m.hostname) == ("tcp_in", "tcp_in", f"127.0.0.2:{source_port}")
    assert decode_message(m.raw).payload == "line 0\n"
    assert tcp_in.refused == 1 and recv.inputs[0][1].stats.errors == 1


async def test_a_full_pipeline_stops_reading_the_connection(tmp_path):
    """Backpressure: with the sink holding every batch unacknowledged and poolsize 2,
    the input stops reading; the sender's writes stall; once the sink lets go,
    everything arrives."""
    port = free_port()
    recv = await start(tmp_path, receiver_config(
        tmp_path, f"127.0.0.1:{port}", hekad="poolsize = 2", sink='mode = "hold"'), "r")
    sink = CollectOutput.instances["sink"]
    tcp_in = recv.inputs[0][0]
    body = encode_message(Message(type="bulk", payload="x" * 900))
    chunk = frame(body) * 1000  # ~1 MB
    total = 64
    try:
        await asyncio.wait_for(tcp_in.listening.wait(), 10)
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def flood() -> None:
            for _ in range(total):
                writer.write(chunk)
                await writer.drain()

        sending = asyncio.ensure_future(flood())
        await wait_for(lambda: len(sink.held) == 2, "two held batches", timeout=120)
        await settle(20000)
        assert not sending.done()  # the socket buffers are full: the writer waits
        stalled = recv.inputs[0][1].stats.messages_in
        await settle(5000)
        assert recv.inputs[0][1].stats.messages_in == stalled  # nothing read meanwhile

        released = 0

        def release() -> bool:
            nonlocal released
            for b in sink.held[released:]:
                b.done()
            released = len(sink.held)
            return len(sink.messages) >= total * 1000

        await wait_for(release, "every message", timeout=300)
        await asyncio.wait_for(sending, 30)
        writer.close()
    finally:
        for b in sink.held:
            b.done()
        await recv.stop()
    assert len(sink.messages) == total * 1000


async def test_tls_with_client_certificates(tmp_path):
    certs = make_certificates(tmp_path / "certs")
    port = free_port()
    n = 3000
    recv = await start(tmp_path, receiver_config(tmp_path, f"127.0.0.1:{port}", extra=f"""
        use_tls = true
        [tcp_in.tls]
        cert_file = "{certs['server_cert']}"
        key_file = "{certs['server_key']}"
        client_auth = "RequireAndVerifyClientCert"
        client_cafile = "{certs['ca']}"
    """), "r")
    sink = CollectOutput.instances["sink"]
    tcp_in = recv.inputs[0][0]
    await asyncio.wait_for(tcp_in.listening.wait(), 10)
    send = await start(tmp_path, sender_config(tmp_path, f"localhost:{port}", n, extra=f"""
        use_tls = true
        [tcp_out.tls]
        root_cafile = "{certs['ca']}"
        cert_file = "{certs['client_cert']}"
        key_file = "{certs['client_key']}"
    """), "s")
    seq = send.inputs[0][0]
    try:
        await wait_for(lambda: len(sink.messages) >= n, "every message over TLS", timeout=300)
        await wait_for(lambda: seq.acked and seq.acked[-1] == n, "the input's acks", timeout=300)
        # A plaintext sender gets nothing in: the handshake fails, the server hangs up.
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(frame(encode_message(Message(type="plain", payload="in clear"))))
        await w.drain()
        try:
            assert await asyncio.wait_for(r.read(), 30) == b""
        except ConnectionResetError:
            pass
        w.close()
    finally:
        await send.stop()
        await recv.stop()
    assert sorted(int(m.payload.split()[1]) for m in sink.messages) == list(range(n))
    assert send.outputs[0][1].stats.messages_out == n
    assert tcp_in.connections == 1


async def test_unix_socket_reconnect_after_and_a_late_receiver(tmp_path):
    """The sender starts before anything listens (it retries with backoff), talks
    over a unix socket, and opens a new connection every 1000 messages
    (reconnect_after); nothing is lost or repeated."""
    path = tmp_path / "hekapy.sock"
    n = 5000
    send = await start(tmp_path, sender_config(tmp_path, str(path), n, extra="""
        net = "unix"
        reconnect_after = 1000
        use_buffering = false
    """), "s")
    tcp_out = send.outputs[0][0]
    await wait_for(lambda: tcp_out.connect_failures >= 2, "the sender retrying", timeout=300)
    recv = await start(tmp_path, receiver_config(tmp_path, str(path), extra='net = "unix"'),
                       "r")
    sink = CollectOutput.instances["sink"]
    seq = send.inputs[0][0]
    try:
        await wait_for(lambda: len(sink.messages) >= n, "every message", timeout=300)
        await wait_for(lambda: seq.acked and seq.acked[-1] == n, "the input's acks", timeout=300)
    finally:
        await send.stop()
        await recv.stop()
    assert sorted(int(m.payload.split()[1]) for m in sink.messages) == list(range(n))
    assert tcp_out.connects >= n // 1000
    assert recv.inputs[0][0].connections == tcp_out.connects
    assert not path.exists()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_a_stopping_receiver_reads_what_was_sent_before_it_closes(tmp_path, tls):
    """In one process: the receiver is stopped while the sender streams (it half-closes,
    the sender finishes and reconnects) and started again on the same port: every
    message arrives. Over plain TCP the handover is exact (nothing is sent twice);
    over TLS what was not acknowledged yet is sent again."""
    port = free_port()
    n = 60000
    recv_extra = send_extra = ""
    if tls:
        certs = make_certificates(tmp_path / "certs")
        recv_extra = f"""
            use_tls = true
            [tcp_in.tls]
            cert_file = "{certs['server_cert']}"
            key_file = "{certs['server_key']}"
        """
        send_extra = f"""
            use_tls = true
            [tcp_out.tls]
            root_cafile = "{certs['ca']}"
        """
    text = receiver_config(tmp_path, f"127.0.0.1:{port}", extra=recv_extra)
    recv = await start(tmp_path, text, "r")
    await asyncio.wait_for(recv.inputs[0][0].listening.wait(), 10)
    first = CollectOutput.instances["sink"]
    send = await start(tmp_path, sender_config(tmp_path, f"localhost:{port}", n,
                                               extra=send_extra), "s")
    seq = send.inputs[0][0]
    try:
        await wait_for(lambda: len(first.messages) >= 5000, "a stream", timeout=300)
        await recv.stop()
        assert len(first.messages) < n  # mid-stream
        recv = await start(tmp_path, text, "r2")
        second = CollectOutput.instances["sink"]

        def got() -> set[int]:
            return {int(m.payload.split()[1]) for m in first.messages + second.messages}

        await wait_for(lambda: len(first.messages) + len(second.messages) >= n
                       and len(got()) == n, "every message", timeout=300)
        await wait_for(lambda: seq.acked and seq.acked[-1] == n, "the input's acks", timeout=300)
    finally:
        await send.stop()
        await recv.stop()
    assert got() == set(range(n))
    assert send.outputs[0][0].connects >= 2
    if not tls:
        # What was written before the sender's FIN was read, and nothing went twice.
        assert len(first.messages) + len(second.messages) == n
        assert send.outputs[0][1].stats.retried == 0


async def test_a_stop_while_the_receiver_is_down_keeps_everything_on_disk(tmp_path):
    """The receiver is down: the sender's input is acknowledged once the disk buffer
    has its messages, a stop does not wait for the receiver, and the next start sends
    them all."""
    port = free_port()
    n = 8000
    text = sender_config(tmp_path, f"127.0.0.1:{port}", n).replace(
        "[hekad]", '[hekad]\nshutdown_timeout = "60s"')
    send = await start(tmp_path, text, "s")
    seq = send.inputs[0][0]
    try:
        await wait_for(lambda: seq.acked and seq.acked[-1] == n, "acks from the disk", timeout=300)
        await wait_for(lambda: send.outputs[0][0].connect_failures >= 2, "retries", timeout=300)
    finally:
        await asyncio.wait_for(send.stop(), 10)  # not shutdown_timeout
    assert send.outputs[0][1].stats.messages_out == 0
    recv = await start(tmp_path, receiver_config(tmp_path, f"127.0.0.1:{port}"), "r")
    sink = CollectOutput.instances["sink"]
    send = await start(tmp_path, text.replace(f"count = {n}", "count = 0"), "s2")
    try:
        await wait_for(lambda: len(sink.messages) >= n, "the buffered messages", timeout=300)
    finally:
        await send.stop()
        await recv.stop()
    assert sorted(int(m.payload.split()[1]) for m in sink.messages) == list(range(n))


def es_receiver_config(tmp: Path, port: int, es_url: str) -> str:
    return f"""
        [hekad]
        base_dir = "{tmp / 'receiver'}"
        hostname = "aggregator"
        # A small window: backpressure reaches the socket soon.
        poolsize = 4
        max_inflight_bytes = 1048576
        [tcp_in]
        type = "TcpInput"
        address = "127.0.0.1:{port}"
        splitter = "signed_framing"
        [signed_framing]
        type = "HekaFramingSplitter"
        [signed_framing.signer.collector_1]
        hmac_key = "{KEY}"
        [es_encoder]
        type = "ESJsonEncoder"
        index = "logs-%{{%Y.%m.%d}}"
        type_name = ""
        id = "%{{UUID}}"
        fields = ["Uuid", "Payload", "Logger", "Hostname"]
        [es]
        type = "ElasticSearchOutput"
        message_matcher = "Type == 'logfile'"
        encoder = "es_encoder"
        server = "{es_url}"
        flush_count = 500
        flush_interval = 20
        use_buffering = false
    """


def file_sender_config(tmp: Path, port: int) -> str:
    return f"""
        [hekad]
        base_dir = "{tmp / 'sender'}"
        hostname = "node-1"
        [app_log]
        type = "LogstreamerInput"
        log_directory = "{tmp / 'logs'}"
        file_match = 'app\\.log'
        [tcp_out]
        type = "TcpOutput"
        message_matcher = "Type == 'logfile'"
        address = "127.0.0.1:{port}"
        retry_delay = "20ms"
        retry_max_delay = "200ms"
        [tcp_out.signer]
        name = "collector"
        version = 1
        hmac_key = "{KEY}"
    """


@pytest.mark.services
async def test_two_processes_receiver_restarted_mid_stream(tmp_path):
    """`hekapy run` sender (LogstreamerInput → signed TcpOutput with its disk buffer)
    and `hekapy run` receiver (TcpInput → ElasticSearchOutput). The receiver gets
    SIGTERM while Elasticsearch is slow and the stream is in full flow, is down for
    a while (the sender retries), and comes back: every line is stored, once per Uuid."""
    port = free_port()
    n = 30000
    pad = b"x" * 1000  # 30 MB in all: more than the sockets' buffers hold

    def lines(start: int, stop: int) -> bytes:
        return b"".join(b"line %d %s\n" % (i, pad) for i in range(start, stop))

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(lines(0, n // 2))
    log = open(tmp_path / "hekapy.log", "ab")  # the children keep it
    async with EsDouble() as es:
        recv_conf = write_config(tmp_path, es_receiver_config(tmp_path, port, es.url),
                                 "receiver.toml")
        send_conf = write_config(tmp_path, file_sender_config(tmp_path, port), "sender.toml")
        receiver = subprocess.Popen([*HEKAPY, "run", "-c", str(recv_conf)],
                                    stdout=subprocess.DEVNULL, stderr=log)
        sender = subprocess.Popen([*HEKAPY, "run", "-c", str(send_conf)],
                                  stdout=subprocess.DEVNULL, stderr=log)
        try:
            await es.wait_count(2000, "logs-*", timeout=60, proc=receiver)
            es.faults.delay = 0.05  # slow bulk answers: the receiver's queues fill
            with (logs / "app.log").open("ab") as f:
                f.write(lines(n // 2, n))
            await es.wait_count(4000, "logs-*", timeout=60, proc=receiver)
            receiver.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(receiver.wait, 60) == 0
            stored_at_stop = es.count("logs-*")
            assert stored_at_stop < n, "the stream was over before the restart"
            es.faults.delay = 0.0
            receiver = subprocess.Popen([*HEKAPY, "run", "-c", str(recv_conf)],
                                        stdout=subprocess.DEVNULL, stderr=log)
            await es.wait_count(n, "logs-*", timeout=120, proc=receiver)
            assert sender.poll() is None
        finally:
            await stop_process(sender)
            await stop_process(receiver)
            log.close()
        docs = es.docs("logs-*")
    payloads = [d["_source"]["Payload"] for d in docs]
    assert len(payloads) == n
    assert set(payloads) == {f"line {i} {pad.decode()}\n" for i in range(n)}
    assert {d["_source"]["Hostname"] for d in docs} == {"node-1"}
    assert all(d["_id"] == d["_source"]["Uuid"] for d in docs)


def test_bad_settings_are_named(tmp_path):
    path = write_config(tmp_path, """
        [in_no_address]
        type = "TcpInput"
        [in_bad_signer]
        type = "TcpInput"
        address = ":5565"
        [in_bad_signer.signer.nover]
        hmac_key = "k"
        [out_signer_unframed]
        type = "TcpOutput"
        message_matcher = "TRUE"
        use_framing = false
        [out_signer_unframed.signer]
        name = "a"
        hmac_key = "k"
        [out_signer_keys]
        type = "TcpOutput"
        message_matcher = "TRUE"
        [out_signer_keys.signer]
        name = "a"
        key = "k"
        [out_address]
        type = "TcpOutput"
        message_matcher = "TRUE"
        address = "no-port"
    """)
    with pytest.raises(ConfigInvalid) as e:
        load_config(path, strict=True)
    text = str(e.value)
    assert "[in_no_address] address" in text and "required" in text
    assert "[in_bad_signer] signer" in text and "<signer>_<key version>" in text
    assert "[out_signer_unframed] signer" in text and "use_framing" in text
    assert "[out_signer_keys] signer" in text and "unknown key(s) key" in text
    assert "[out_address] address" in text and "host:port" in text
