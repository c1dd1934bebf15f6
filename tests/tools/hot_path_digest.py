"""Runs a corpus through the hot path as this process imports it (compiled, or pure
Python with HEKAPY_PURE=1) and prints one JSON line: a digest of every record, decoded
message, Elasticsearch item, matcher verdict and InfluxDB line, with counts.
tests/packaging/test_compiled.py compares the two modes: the compiled path must give the
same bytes as its source.

    python tests/tools/hot_path_digest.py CORPUS_DIR
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import orjson

from hekapy.benchmarks.influxdb_throughput import points
from hekapy.benchmarks.openstack_config import es_output
from hekapy.collector import compiled
from hekapy.collector.catalog import load_all
from hekapy.collector.engine.config import load_config
from hekapy.collector.engine.matcher import compile_matcher
from hekapy.collector.engine.message import STRING, Field, Message, new_record_message
from hekapy.collector.engine.plugin import DecodeError
from hekapy.outputs.influxdb.line_protocol import PointEncoder

# What reaches the hot path besides oslo.log's own lines: bytes a file can hold.
ODD_LINES = [
    b"no header at all: an error first, a continuation after a record\n",
    b"2026-11-30 07:00:00.123 4417 ERROR nova.compute.manager [-] bad \xff\xfe utf-8\n",
    b"2026-11-30 07:00:00.124 4417 INFO nova.api [req-1 - - - -] \"q\" \\ \x01\x7f\t end\n",
    b"2026-11-30 07:00:00.125 4417 WARNING nova.api [-] \xc3\xa9t\xc3\xa9 \xe2\x80\xa8 ok\n",
    b"2026-11-30 07:00:00.126 4417 DEBUG nova.db [-] " + b"x" * 300_000 + b"\n",
    b"2026-11-30 07:00:00.127 4417 INFO nova.osapi_compute.wsgi.server [req-2 - - - -] "
    b'10.0.0.1 "GET /v2.1/servers HTTP/1.1" status: 200 len: 1893 time: 0.1234567\n',
]
MATCHERS = ["Type == 'log' && Severity < 5", "Fields[programname] =~ /nova/",
            "Logger == 'openstack.nova' || Fields[http_status] >= 400", "TRUE"]


def digest(corpus: Path) -> dict:
    registry = load_all()
    state = Path(tempfile.mkdtemp())
    config = state / "hekad.toml"
    config.write_text(f'[hekad]\nbase_dir = "{state}"\n' + es_output("http://127.0.0.1:1"))
    encoder = load_config(config).resolve("elasticsearch_encoder", "Encoder").build()
    cls = registry["OpenStackLogDecoder"]
    options = {k: o.default_value() for k, o in cls.all_options().items()}
    decoder = cls("digest", SimpleNamespace(**{**options, "tz": "UTC"}))
    splitter_cls = registry["TokenSplitter"]
    splitter = splitter_cls("split", SimpleNamespace(
        **{k: o.default_value() for k, o in splitter_cls.all_options().items()}))
    matchers = [compile_matcher(m) for m in MATCHERS]
    h = hashlib.sha256()
    counts = {"records": 0, "errors": 0, "messages": 0, "matches": 0}
    odd = b"".join(ODD_LINES)
    files = sorted([*corpus.glob("nova/*.log"), *corpus.glob("neutron/*.log")])
    sources = [("odd", odd)] + [(path.stem, path.read_bytes() + odd) for path in files]
    for n, (logger, data) in enumerate(sources):
        records = []
        for i in range(0, len(data), 65536):  # chunked as a tail reads
            records += splitter.split(data[i:i + 65536])
        records += splitter.flush()
        msgs = []
        for offset, record in enumerate(records):
            h.update(record)
            msg = new_record_message(10**18, "logfile", logger, "node-1",
                                     record.decode("utf-8", "replace"))
            msg.uuid = (n << 64 | offset).to_bytes(16, "big")
            try:
                out = decoder.decode(msg)
            except DecodeError as e:  # the error is part of what must not change
                h.update(str(e).encode())
                counts["errors"] += 1
                continue
            if out is not None:
                msgs.append(out)
        msgs += decoder.flush()
        counts["records"] += len(records)
        for msg in msgs:
            h.update(orjson.dumps(msg.as_dict()))
            item = encoder.encode(msg)
            h.update(item)
            verdicts = [bool(m(msg)) for m in matchers]
            h.update(bytes(verdicts))
            counts["matches"] += sum(verdicts)
        counts["messages"] += len(msgs)
    # InfluxdbOutput's line protocol, on the benchmark's points and odd metrics.
    odd_metrics = [Message(timestamp=10**18 + i, fields=[
        Field("name", [name], STRING), Field("value", [value], STRING),
        Field("host", [tag], STRING), Field("tag_fields", ["host", "host"], STRING)])
        for i, (name, value, tag) in enumerate([
            ("a b,c", "x\"y\\", "t=1 ,"), ("#no", 1, "h"), ("m\\", True, ""),
            (1.5, -0.0, 1.0), ("é\n", float("nan"), "back\\"), ("", 1, "h")])]
    points_out: list[bytes] = []
    refused = PointEncoder(["deployment_id", "host"], "ms").encode(
        [*points(3000, start_ns=10**18), *odd_metrics], points_out)
    h.update(b"".join(points_out))
    counts["points"] = len(points_out)
    counts["points_refused"] = len(refused)
    return {"digest": h.hexdigest(), "hot_path": compiled.summary(), **counts}


if __name__ == "__main__":
    print(json.dumps(digest(Path(sys.argv[1]))))
