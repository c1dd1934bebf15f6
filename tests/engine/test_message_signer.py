"""message_signer (docs/compatibility.md, "Heka stream framing"): a message from a frame
whose HMAC the HekaFramingSplitter verified carries its signer's name; a filter or
output with `message_signer = "name"` receives only messages of exactly that signer,
whatever its matcher says; unsigned messages (and messages whose header names a signer
without an hmac) reach only routes without message_signer; the signer survives an
output's disk buffer across a restart."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import msgpack

from hekapy.collector.engine.framing import SignedRecord
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.protobuf import PbHeader, encode_message, frame
from hekapy.collector.engine.queue import Batch, BatchQueue
from hekapy.collector.engine.router import Route, Router
from hekapy.collector.engine.serialize import pack_message, unpack_message
from hekapy.collector.engine.stats import PluginStats
from hekapy.collector.splitters.heka_framing import HekaFramingSplitter
from tests.helpers.plugins import CollectOutput, config_from, make_plugin
from tests.helpers.wait import settle, wait_for
from tests.services import free_port

KEY_ALPHA = "alpha-secret-key"
KEY_BETA = "beta-secret-key"


async def start(tmp: Path, sub: str, text: str) -> Pipeline:
    (tmp / sub).mkdir(exist_ok=True)
    p = Pipeline(config_from(tmp / sub, f"""
        [hekad]
        base_dir = "{tmp / sub / 'state'}"
        {text}
    """))
    await p.start()
    return p


def receiver(address: str, sinks: str) -> str:
    return f"""
        [tcp_in]
        type = "TcpInput"
        address = "{address}"
        splitter = "signed_framing"
        [signed_framing]
        type = "HekaFramingSplitter"
        [signed_framing.signer.alpha_1]
        hmac_key = "{KEY_ALPHA}"
        [signed_framing.signer.beta_2]
        hmac_key = "{KEY_BETA}"
        {sinks}
    """


def sender(address: str, n: int) -> str:
    """Three inputs (Types a, b, u); a is signed by alpha, b by beta, u unsigned, each
    through a TcpOutput of its own into the same TcpInput."""
    outputs = ""
    for kind, sign in (("a", f"""
            [out_a.signer]
            name = "alpha"
            version = 1
            hmac_key = "{KEY_ALPHA}"
        """), ("b", f"""
            [out_b.signer]
            name = "beta"
            version = 2
            hmac_key = "{KEY_BETA}"
            hmac_hash = "sha1"
        """), ("u", "")):
        outputs += f"""
            [seq_{kind}]
            type = "SequenceInput"
            count = {n}
            batch = 50
            record_type = "{kind}"
            [out_{kind}]
            type = "TcpOutput"
            message_matcher = "Type == '{kind}'"
            address = "{address}"
            retry_delay = "10ms"
            retry_max_delay = "100ms"
            {sign}
        """
    return outputs


SINKS = """
    [only_alpha]
    type = "CollectOutput"
    message_matcher = "TRUE"
    message_signer = "alpha"
    [only_beta]
    type = "CollectOutput"
    message_matcher = "TRUE"
    message_signer = "beta"
    [beta_and_a]
    type = "CollectOutput"
    message_matcher = "Type == 'a'"
    message_signer = "beta"
    [everything]
    type = "CollectOutput"
    message_matcher = "Type != 'relayed'"
    [alpha_relay]
    type = "RelayFilter"
    message_matcher = "Type == 'a' || Type == 'u'"
    message_signer = "alpha"
    inject_type = "relayed"
    [relayed]
    type = "CollectOutput"
    message_matcher = "Type == 'relayed'"
"""


async def test_each_signer_reaches_only_its_routes(tmp_path):
    port = free_port()
    n = 300
    recv = await start(tmp_path, "r", receiver(f"127.0.0.1:{port}", SINKS))
    await asyncio.wait_for(recv.inputs[0][0].listening.wait(), 10)
    send = await start(tmp_path, "s", sender(f"127.0.0.1:{port}", n))
    sinks = CollectOutput.instances
    try:
        await wait_for(lambda: len(sinks["everything"].messages) >= 3 * n, "every message",
                       timeout=300)
        await wait_for(lambda: len(sinks["relayed"].messages) >= n, "the relayed", timeout=300)
        await settle()
    finally:
        await send.stop()
        await recv.stop()

    def kinds(name: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in sinks[name].messages:
            out[f"{m.type}:{m.signer}"] = out.get(f"{m.type}:{m.signer}", 0) + 1
        return out

    assert kinds("everything") == {"a:alpha": n, "b:beta": n, "u:": n}
    assert kinds("only_alpha") == {"a:alpha": n}
    assert kinds("only_beta") == {"b:beta": n}
    # The matcher takes Type a, the signer requirement refuses alpha's.
    assert kinds("beta_and_a") == {}
    # The filter saw alpha's messages only (not the unsigned u), and what it injected is
    # its own, unsigned: only_alpha (matcher TRUE) did not get the relayed copies.
    assert kinds("relayed") == {"relayed:": n}
    relay = next(f for f, c, _ in recv.filters if c.name == "alpha_relay")
    assert relay.seen == n
    # The signer is transport metadata: the messages themselves are what was sent.
    assert sorted(int(m.payload.split()[1]) for m in sinks["only_beta"].messages) == list(
        range(n))


def _frame_with_header(header: object, body: bytes) -> bytes:
    h = header.SerializeToString()  # type: ignore[attr-defined]
    return b"\x1e" + bytes([len(h)]) + h + b"\x1f" + body


async def test_a_signer_name_without_a_valid_hmac_is_not_trusted(tmp_path):
    """Heka tagged a header with hmac_signer but no hmac as that signer; hekapy takes
    such a frame as unsigned. A frame with a wrong digest is dropped."""
    port = free_port()
    recv = await start(tmp_path, "r", receiver(f"127.0.0.1:{port}", SINKS))
    await asyncio.wait_for(recv.inputs[0][0].listening.wait(), 10)
    sinks = CollectOutput.instances
    body = encode_message(Message(type="forged", payload="claims to be alpha"))
    header = PbHeader()
    header.message_length = len(body)
    header.hmac_signer = "alpha"
    header.hmac_key_version = 1
    forged = _frame_with_header(header, body)
    wrong_key = frame(encode_message(Message(type="a", payload="wrong key")),
                      ("alpha", "not the key", 1))
    good = frame(encode_message(Message(type="a", payload="genuine")),
                 ("alpha", KEY_ALPHA, 1))
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(forged + wrong_key + good)
        await writer.drain()
        writer.close()
        await wait_for(lambda: len(sinks["everything"].messages) >= 2, "two messages", timeout=120)
        await settle()
    finally:
        await recv.stop()
    got = [(m.type, m.payload, m.signer) for m in sinks["everything"].messages]
    assert got == [("forged", "claims to be alpha", ""), ("a", "genuine", "alpha")]
    assert [m.payload for m in sinks["only_alpha"].messages] == ["genuine"]
    assert recv.inputs[0][0].losses.bad_hmac == 1


async def test_udp_input_with_legacy_signer_keys_tags_too(tmp_path):
    """The same shared path for another input: UdpInput, keys in its own legacy
    [X.signer] tables rather than on the splitter."""
    port = free_port(socket.SOCK_DGRAM)
    recv = await start(tmp_path, "r", f"""
        [udp_in]
        type = "UdpInput"
        address = "127.0.0.1:{port}"
        splitter = "HekaFramingSplitter"
        decoder = "ProtobufDecoder"
        [udp_in.signer.alpha_1]
        hmac_key = "{KEY_ALPHA}"
        [only_alpha]
        type = "CollectOutput"
        message_matcher = "TRUE"
        message_signer = "alpha"
        [unsigned_too]
        type = "CollectOutput"
        message_matcher = "TRUE"
    """)
    await asyncio.wait_for(recv.inputs[0][0].listening.wait(), 10)
    sinks = CollectOutput.instances
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(4):
            msg = encode_message(Message(type="t", payload=str(i)))
            sock.sendto(frame(msg, ("alpha", KEY_ALPHA, 1)) if i % 2 else frame(msg),
                        ("127.0.0.1", port))
        await wait_for(lambda: len(sinks["unsigned_too"].messages) >= 4, "4 datagrams", timeout=120)
        await settle()
    finally:
        sock.close()
        await recv.stop()
    assert [(m.payload, m.signer) for m in sinks["unsigned_too"].messages] == [
        ("0", ""), ("1", "alpha"), ("2", ""), ("3", "alpha")]
    assert [m.payload for m in sinks["only_alpha"].messages] == ["1", "3"]


async def test_the_signer_survives_the_disk_buffer(tmp_path):
    """A buffered output with message_signer: what waited on disk comes back after a
    restart still tagged with its signer."""
    port = free_port()
    n = 200

    def sinks(mode: str) -> str:
        return f"""
            [only_alpha]
            type = "CollectOutput"
            message_matcher = "TRUE"
            message_signer = "alpha"
            use_buffering = true
            mode = "{mode}"
        """

    recv = await start(tmp_path, "r", receiver(f"127.0.0.1:{port}", sinks("hold")))
    await asyncio.wait_for(recv.inputs[0][0].listening.wait(), 10)
    send = await start(tmp_path, "s", sender(f"127.0.0.1:{port}", n))
    try:
        held = CollectOutput.instances["only_alpha"]
        await wait_for(lambda: len(held.messages) >= n, "alpha's messages", timeout=300)
        await settle()
    finally:
        await send.stop()
        await recv.stop()
    assert {m.signer for m in held.messages} == {"alpha"}
    assert recv.buffers["only_alpha"].disk.size_bytes > 0  # never acknowledged

    # The next run reads what is on disk (nothing new arrives: no sender).
    CollectOutput.instances.clear()
    port2 = free_port()
    again = await start(tmp_path, "r", receiver(f"127.0.0.1:{port2}", sinks("ack")))
    try:
        out = CollectOutput.instances["only_alpha"]
        await wait_for(lambda: len(out.messages) >= n, "the buffered messages", timeout=300)
        await wait_for(lambda: again.buffers["only_alpha"].disk.size_bytes == 0,
                       "the buffer emptied", timeout=300)
    finally:
        await again.stop()
    assert len(out.messages) == n
    assert {(m.type, m.signer) for m in out.messages} == {("a", "alpha")}
    assert sorted(int(m.payload.split()[1]) for m in out.messages) == list(range(n))


# --- units ---------------------------------------------------------------------------

def test_records_and_serialization():
    sp = make_plugin(HekaFramingSplitter, signer={"alpha_1": KEY_ALPHA})
    body = encode_message(Message(type="x"))
    records = sp.split(frame(body, ("alpha", KEY_ALPHA, 1)) + frame(body))
    assert type(records[0]) is SignedRecord and records[0].signer == "alpha"
    assert type(records[1]) is bytes and records == [body, body]
    # skip_authentication verifies nothing, so it tags nothing.
    sp = make_plugin(HekaFramingSplitter, signer={"alpha_1": KEY_ALPHA},
                     skip_authentication=True)
    assert [type(r) for r in sp.split(frame(body, ("alpha", KEY_ALPHA, 1)))] == [bytes]

    signed = Message(type="t", signer="alpha")
    assert unpack_message(pack_message(signed)).signer == "alpha"
    # Unsigned records keep their old shape; records written before the signer existed
    # read as unsigned.
    plain = msgpack.unpackb(pack_message(Message(type="t")), raw=False)
    assert len(plain) == 12
    assert unpack_message(msgpack.packb(plain, use_bin_type=True)).signer == ""
    # A copy is a new message: unsigned.
    assert signed.copy().signer == ""


async def test_router_signer_requirement():
    router = Router()
    queues = {}
    for name, pred, signer in (("any", lambda m: True, ""),
                               ("alpha_all", lambda m: True, "alpha"),
                               ("alpha_x", lambda m: m.type == "x", "alpha")):
        q = queues[name] = BatchQueue(10, 1 << 20)
        router.add(Route(name, pred, q, PluginStats(), signer))
    router.routes[1].always = True  # as a compiled "TRUE" matcher says
    msgs = [Message(type="x", signer="alpha"), Message(type="y", signer="alpha"),
            Message(type="x"), Message(type="x", signer="beta")]
    await router.route(Batch(msgs, None, 100))
    got = {n: [msgs.index(m) for m in q.get_nowait().messages]
           for n, q in queues.items()}
    assert got == {"any": [0, 1, 2, 3], "alpha_all": [0, 1], "alpha_x": [0]}
