"""Heka frames per second from one `hekapy run` process to another over TCP, next to a
bare copy of the same bytes over loopback in the same run (the machines are shared
and noisy: compare the ratio).

    .venv/bin/python -m hekapy.benchmarks.tcp_throughput --messages 300000 [--sign]
        [--no-buffering] [--tls]

The corpus is a file of framed protobuf messages (oslo.log-like Payload, a few
fields, ~330 bytes a frame). The sender reads it with a LogstreamerInput
(HekaFramingSplitter + ProtobufDecoder) and sends it with a TcpOutput (disk buffer on
unless --no-buffering, frames signed with --sign); the receiver (TcpInput →
ProtobufDecoder → FileOutput with the ProtobufEncoder, framed) writes the frames back
to a file: byte for byte the corpus again (its frames are unsigned). Timed: from the first byte
the receiver wrote to the last (the processes' start-up is left out). The baseline
sends the corpus file over a loopback socket to a Python reader that discards it.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from hekapy.collector.engine.message import INTEGER, STRING, Field, Message
from hekapy.collector.engine.protobuf import encode_message, frame

HEKAPY = [sys.executable, "-m", "hekapy.collector.app.cli", "run", "-c"]
KEY = "bench-key"


def make_corpus(path: Path, n: int) -> int:
    """`n` framed messages; returns the file size."""
    rnd = random.Random(7)
    mods = ["nova.compute.manager", "nova.api.openstack.wsgi", "oslo_messaging._drivers"]
    with open(path, "wb", buffering=1 << 20) as f:
        for start in range(0, n, 10000):
            chunk = []
            for i in range(start, min(n, start + 10000)):
                payload = (f"2016-02-{rnd.randint(1, 28):02d} 12:{rnd.randint(0, 59):02d}:"
                           f"{rnd.randint(0, 59):02d}.{rnd.randint(0, 999999):06d} "
                           f"{rnd.randint(1000, 9999)} INFO {rnd.choice(mods)} "
                           f"[req-{rnd.getrandbits(64):016x} admin admin - - -] instance "
                           f"{rnd.getrandbits(32):08x} took {rnd.random():.3f} seconds")
                m = Message(uuid=i.to_bytes(16, "big"), timestamp=1_700_000_000_000_000_000 + i,
                            type="log", logger="nova", severity=6, payload=payload,
                            hostname="node-1", pid=4417,
                            fields=[Field("programname", ["nova-compute"], STRING),
                                    Field("http_status", [200], INTEGER)])
                chunk.append(frame(encode_message(m)))
            f.write(b"".join(chunk))
    return path.stat().st_size


def receiver_config(base: Path, port: int, sign: bool) -> str:
    signer = f'[framing.signer.bench_0]\nhmac_key = "{KEY}"\n' if sign else ""
    return f"""
[hekad]
base_dir = "{base / 'receiver'}"
[tcp_in]
type = "TcpInput"
address = "127.0.0.1:{port}"
splitter = "framing"
[framing]
type = "HekaFramingSplitter"
{signer}
[out]
type = "FileOutput"
message_matcher = "TRUE"
path = "{base / 'received.bin'}"
encoder = "ProtobufEncoder"
flush_interval = 100
flush_count = 20000
flush_operator = "OR"
perm = "644"
folder_perm = "700"
"""


def sender_config(base: Path, port: int, sign: bool, buffering: bool) -> str:
    signer = (f'[tcp_out.signer]\nname = "bench"\nversion = 0\nhmac_key = "{KEY}"\n'
              if sign else "")
    return f"""
[hekad]
base_dir = "{base / 'sender'}"
[corpus]
type = "LogstreamerInput"
log_directory = "{base / 'logs'}"
file_match = 'corpus\\.bin'
splitter = "HekaFramingSplitter"
decoder = "ProtobufDecoder"
[tcp_out]
type = "TcpOutput"
message_matcher = "TRUE"
address = "127.0.0.1:{port}"
use_buffering = {str(buffering).lower()}
{signer}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the receiver exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.01)
    raise SystemExit("the receiver does not listen")


def time_hekapy(base: Path, size: int, sign: bool, buffering: bool,
                timeout: float) -> tuple[float, int]:
    """Seconds from the receiver's first byte written to `size` bytes; bytes timed."""
    port = free_port()
    out = base / "received.bin"
    (base / "receiver.toml").write_text(receiver_config(base, port, sign))
    (base / "sender.toml").write_text(sender_config(base, port, sign, buffering))
    log = open(base / "hekapy.log", "ab")  # the children write to it
    receiver = subprocess.Popen([*HEKAPY, str(base / "receiver.toml")], stderr=log)
    sender = None
    try:
        wait_port(port, receiver)
        sender = subprocess.Popen([*HEKAPY, str(base / "sender.toml")], stderr=log)
        t_first = first = None
        deadline = time.monotonic() + timeout
        while True:
            got = out.stat().st_size if out.exists() else 0
            now = time.perf_counter()
            if got and t_first is None:
                t_first, first = now, got
            if got >= size:
                return now - t_first, size - first  # type: ignore[operator]
            if time.monotonic() > deadline or sender.poll() is not None:
                raise SystemExit(f"only {got} of {size} bytes arrived; see {log.name}")
            time.sleep(0.002)
    finally:
        for p in (sender, receiver):
            if p is not None:
                p.terminate()
                p.wait()
        log.close()


def time_raw(path: Path) -> float:
    """The corpus over a loopback socket to a reader that discards it."""
    size = path.stat().st_size
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    done = threading.Event()

    def read() -> None:
        conn, _ = srv.accept()
        with conn:
            n = 0
            while n < size:
                data = conn.recv(1 << 20)
                if not data:
                    break
                n += len(data)
        done.set()

    t = threading.Thread(target=read)
    t.start()
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as c, open(path, "rb") as f:
        c.sendfile(f)
    done.wait()
    elapsed = time.perf_counter() - t0
    t.join()
    srv.close()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=300000)
    ap.add_argument("--sign", action="store_true", help="HMAC-MD5 signed frames")
    ap.add_argument("--no-buffering", action="store_true", help="TcpOutput without disk")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        base = Path(tmp)
        (base / "logs").mkdir()
        corpus = base / "logs" / "corpus.bin"
        size = make_corpus(corpus, args.messages)
        raw = min(time_raw(corpus) for _ in range(3))
        hk, timed = time_hekapy(base, size, args.sign, not args.no_buffering, args.timeout)
        # The receiver frames again without signatures: the corpus, byte for byte.
        same = (base / "received.bin").read_bytes() == corpus.read_bytes()
    mib = size / (1 << 20)
    per_frame = size / args.messages
    msgs = timed / per_frame
    print(f"corpus: {args.messages} frames, {mib:.1f} MiB ({per_frame:.0f} B/frame); "
          f"signed: {args.sign}; disk buffer: {not args.no_buffering}; "
          f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    print(f"loopback copy   : {mib / raw:9.1f} MiB/s")
    print(f"hekapy → hekapy : {timed / (1 << 20) / hk:9.1f} MiB/s  "
          f"{msgs / hk:10.0f} msgs/s  ({hk:.2f} s for {msgs:.0f} frames)")
    print(f"ratio hekapy/raw: {raw / size * timed / hk:.4f}")
    print(f"received file identical to the corpus: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
