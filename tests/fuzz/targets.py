"""Fuzz targets: each one takes arbitrary bytes and checks a property of a component that
reads input nobody vetted. Run by tests/fuzz/test_fuzz.py (Hypothesis, a fixed example budget,
in every CI run) and by scripts/fuzz (atheris/libFuzzer when it is installed, else
Hypothesis, for as long as asked).

The properties:
- no exception escapes a plugin but the documented ones: a decoder raises DecodeError,
  a splitter nothing, the matcher MatcherSyntaxError, the configuration loader nothing
  (errors are reported as ConfigError entries; ConfigInvalid when strict), replay's
  archive readers the READ_ERRORS of collector/app/replay_archive.py;
- a bad record leaves the decoder as it was: the next good record decodes to the same
  message as on a fresh decoder (the input counts the bad one as a decode failure);
- memory per record is bounded by max_message_size: no decoder makes a message larger
  than a few times its record, a multi-line decoder never holds a Payload over
  max_message_size, a splitter never delivers a record over its max_record_size;
- encoders round-trip: the line protocol InfluxdbOutput writes parses back (with
  InfluxDB's own rules) to the same measurement, tags and values, and every line of
  an Elasticsearch bulk body is JSON that gives back the message's Payload and fields.

Each target has a seed corpus from the test data (`seeds()`): the LMA vectors in
tests/data/lma, the lab captures in tests/data/lab, the shipped configurations in conf/.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tests.helpers.paths import REPO

DATA = REPO / "tests" / "data"
MAX_MESSAGE_SIZE = 8192  # small, so that the bounds are reached by fuzzed inputs
TIMESTAMP = 1_700_000_000_000_000_000


@dataclass
class Target:
    name: str
    check: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]


# --- the plugins, built the way hekapy builds them (TOML, Heka's rules) --------------

DECODER_SECTIONS = """
[OpenStackLogDecoder]
tz = "UTC"
[KeystoneWsgiDecoder]
[SyslogDecoder]
tz = "UTC"
[MysqlLogDecoder]
tz = "UTC"
[PacemakerLogDecoder]
tz = "UTC"
[RabbitmqLogDecoder]
tz = "UTC"
[LibvirtLogDecoder]
[OvsLogDecoder]
[HaproxyLogDecoder]
[CollectdDecoder]
hostname = "node-1"
[NotificationDecoder]
[MetricDecoder]
[NoopDecoder]
[ScribbleDecoder]
message_fields = { Type = "fuzz" }
[PayloadRegexDecoder]
match_regex = '^(?P<Timestamp>\\S+ \\S+) (?P<Level>\\w+) (?P<rest>.*)'
timestamp_layout = "2006-01-02 15:04:05"
severity_map = { ERROR = 3, INFO = 6 }
[PayloadRegexDecoder.message_fields]
Type = "fuzz"
rest = "%rest%"
[MultiDecoder]
subs = ["SyslogDecoder", "OpenStackLogDecoder"]
cascade_strategy = "first-wins"
[SandboxDecoder]
filename = "{lua}"
[ESJsonEncoder]
index = "%{{Type}}-%{{%Y.%m.%d}}"
es_index_from_timestamp = true
type_name = ""
fields = ["Timestamp", "Uuid", "Type", "Logger", "Severity", "Payload", "EnvVersion",
          "Pid", "Hostname", "DynamicFields"]
[ESLogstashV0Encoder]
[TokenSplitter]
[RegexSplitter]
delimiter = '\\n(\\d{{4}}-)'
delimiter_eol = false
[PatternGroupingSplitter]
delimiter = "\\n"
grouping = '^\\s'
max_lines = 20
[HekaFramingSplitter]
[NullSplitter]
"""


@cache
def _config() -> Any:
    from hekapy.collector.engine.config import load_config
    d = Path(tempfile.mkdtemp(prefix="hekapy-fuzz-"))
    lua = d / "decoder.lua"
    # A Heka Lua decoder: the payload's first word becomes a field; a payload starting
    # with "!" is refused (-1, a decode failure).
    lua.write_text("""
function process_message()
    local p = read_message("Payload") or ""
    if p:sub(1, 1) == "!" then return -1 end
    local w = p:match("^(%S+)")
    if w then write_message("Fields[first]", w) end
    return 0
end
""")
    conf = d / "fuzz.toml"
    conf.write_text(f'[hekad]\nbase_dir = "{d}"\nmax_message_size = {MAX_MESSAGE_SIZE}\n'
                    + DECODER_SECTIONS.replace("{lua}", str(lua)).replace("{{", "{")
                    .replace("}}", "}"))
    return load_config(conf, strict=True)


def build(name: str, category: str) -> Any:
    from hekapy.collector.engine.pipeline import build_plugin, start_stage
    plugin = build_plugin(_config(), name, category)
    if category == "Decoder":
        plugin.max_message_size = MAX_MESSAGE_SIZE
        if hasattr(plugin, "init"):
            start_stage(plugin, _Context(_config().hekad))
    return plugin


@dataclass
class _Context:
    """What a decoder's init gets from its input (a SandboxDecoder's preserve path)."""

    hekad: Any
    name: str = "fuzz_input"


# --- decoders ---------------------------------------------------------------------------

def lma_inputs(name: str) -> list[str]:
    cases = json.loads((DATA / "lma" / f"{name}.json").read_text()).get("cases", [])
    return [c["input"] if isinstance(c["input"], str) else json.dumps(c["input"])
            for c in cases if "input" in c]


def lab_lines(name: str) -> list[str]:
    return [ln for ln in (DATA / "lab" / name).read_text().splitlines() if ln.strip()]


# decoder → (the kind of record it reads, good records from the test data)
def _oslo_lines() -> list[str]:
    """The sample's lines that start a message (a traceback's other lines do not
    decode alone)."""
    return [ln for ln in lab_lines("oslo_log_sample.log")
            if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \d+ [A-Z]+ ", ln)][:40]


GOOD: dict[str, Callable[[], list[str]]] = {
    "OpenStackLogDecoder": _oslo_lines,
    "KeystoneWsgiDecoder": lambda: lma_inputs("keystone_wsgi_log"),
    "SyslogDecoder": lambda: lma_inputs("generic_syslog"),
    "MysqlLogDecoder": lambda: lma_inputs("mysql_log"),
    "PacemakerLogDecoder": lambda: lma_inputs("pacemaker_log"),
    "RabbitmqLogDecoder": lambda: lma_inputs("rabbitmq"),
    "LibvirtLogDecoder": lambda: lma_inputs("libvirt_log"),
    "OvsLogDecoder": lambda: lma_inputs("ovs_log"),
    "HaproxyLogDecoder": lambda: lab_lines("haproxy_httplog.log"),
    "CollectdDecoder": lambda: lma_inputs("collectd"),
    "NotificationDecoder": lambda: [
        *lma_inputs("notification"), (DATA / "lab" / "oslo_notification_envelope.json")
        .read_text()],
    "MetricDecoder": lambda: [json.dumps([{"name": "hdd_errors_rate", "value": 1.5,
                                           "tags": {"device": "sdb"}}])],
    "NoopDecoder": lambda: ["anything"],
    "ScribbleDecoder": lambda: ["anything"],
    "PayloadRegexDecoder": lambda: ["2025-11-23 10:00:01 ERROR disk on fire"],
    "MultiDecoder": lambda: lma_inputs("generic_syslog")[:2] + _oslo_lines()[:5],
    "SandboxDecoder": lambda: ["hello world"],
    "ProtobufDecoder": lambda: [],  # bytes: see protobuf_seeds
}
# Decoders whose record is not a line of text.
METRIC_LOGGER = "logs_counter_filter"


def record_for(decoder: str, data: bytes) -> Any:
    """The message an input hands `decoder` for a record of `data` bytes."""
    from hekapy.collector.engine.message import new_record_message
    text = data.decode("utf-8", "replace")
    if decoder == "ProtobufDecoder":
        return new_record_message(TIMESTAMP, "", "fuzz", "node-1", "", data)
    if decoder == "MetricDecoder":  # what the log_collector sends the metric_collector
        from hekapy.collector.engine.message import Message
        from hekapy.collector.engine.protobuf import encode_message
        sent = Message(uuid=bytes(16), timestamp=TIMESTAMP, type="heka.sandbox.bulk_metric",
                       logger=METRIC_LOGGER, hostname="node-1", payload=text)
        return new_record_message(TIMESTAMP, "", "fuzz", "node-1", "", encode_message(sent))
    return new_record_message(TIMESTAMP, "logfile", "openstack.nova", "node-1", text)


def canonical(msgs: list[Any]) -> list[tuple]:
    out = []
    for m in msgs:
        out.append((m.type, m.logger, m.severity, m.payload, m.hostname, m.pid,
                    m.timestamp if m.timestamp != TIMESTAMP else None,
                    tuple((f.name, tuple(map(repr, f.values))) for f in m.fields)))
    return out


def run_decoder(dec: Any, msg: Any) -> list[Any]:
    from hekapy.collector.engine.message import Message
    r = dec.decode(msg)
    if r is None:
        return []
    return [r] if isinstance(r, Message) else list(r)


def message_size(m: Any) -> int:
    n = len(m.payload) + len(m.type) + len(m.logger) + len(m.hostname)
    for f in m.fields:
        n += len(f.name) + sum(len(v) if isinstance(v, (str, bytes)) else 8 for v in f.values)
    return n


def decoder_target(name: str) -> Target:
    def check(data: bytes) -> None:
        from hekapy.collector.engine.plugin import DecodeError
        data = data[:MAX_MESSAGE_SIZE]  # a splitter delivers no longer record
        dec = build(name, "Decoder")
        out: list[Any] = []
        try:
            out += run_decoder(dec, record_for(name, data))
        except DecodeError:
            pass  # documented: the input counts a decode failure
        for m in out:
            # Fields repeat parts of the record (a notification's whole body, the
            # request line's parts): a few times the record, never more.
            assert message_size(m) <= 4 * len(data) + 4096, (name, message_size(m), len(data))
        goods = good_records(name)
        if not goods:
            return
        good = goods[len(data) % len(goods)]
        # The bad record's message (a held one) comes out before the good one's: flush
        # it, then the good record must decode as on a fresh decoder.
        dec.flush()
        got = run_decoder(dec, record_for(name, good)) + dec.flush()
        fresh = build(name, "Decoder")
        want = run_decoder(fresh, record_for(name, good)) + fresh.flush()
        assert canonical(got) == canonical(want), (name, data[:200])
    return Target(f"decoder-{name}", check, lambda: decoder_seeds(name))


def good_records(name: str) -> list[bytes]:
    if name == "ProtobufDecoder":
        return protobuf_seeds()[:3]
    return [g.encode() for g in GOOD[name]()]


def decoder_seeds(name: str) -> list[bytes]:
    seeds = good_records(name)
    if name != "ProtobufDecoder":
        seeds = seeds + [g[: len(g) // 2] for g in seeds]  # cut mid-record
    return seeds or [b""]


def multiline_target() -> Target:
    """OpenStackLogDecoder holding a traceback: a header line, then fuzzed continuation
    lines (each made to start like one): no Payload ever exceeds max_message_size, and
    nothing is lost in between (every continuation line is in some message)."""
    def check(data: bytes) -> None:
        from hekapy.collector.engine.plugin import DecodeError
        dec = build("OpenStackLogDecoder", "Decoder")
        head = ("2025-11-23 10:00:00.000 4242 ERROR nova.compute.manager [req-1 - - - - -] "
                "boom")
        parts = [p.decode("utf-8", "replace").replace("\n", " ") for p in data.split(b"\n")]
        lines = [head] + ["2025-11-23 10:00:00.000 4242 ERROR nova.compute.manager "
                          + p for p in parts for _ in range(1 + len(p) % 7)]
        longest = max(map(len, lines))
        out: list[Any] = []
        for ln in lines:
            try:
                out += run_decoder(dec, record_for("OpenStackLogDecoder", ln.encode()))
            except DecodeError:
                pass
        out += dec.flush()
        for m in out:
            # Joined lines stay within max_message_size bytes (one line alone may be
            # more: invalid bytes decode to U+FFFD, three bytes each).
            assert len(m.payload.encode()) <= MAX_MESSAGE_SIZE or \
                len(m.payload) <= longest, len(m.payload.encode())
    return Target("decoder-OpenStackLogDecoder-multiline", check,
                  lambda: [b"Traceback (most recent call last):\n  File \"x.py\", line 1"
                           b"\nKeyError: 'x'", b"x" * 3000])


# --- protobuf and framing ----------------------------------------------------------------

def protobuf_seeds() -> list[bytes]:
    from hekapy.collector.engine.message import DOUBLE, Field, Message
    from hekapy.collector.engine.protobuf import encode_message
    msgs = [Message(uuid=bytes(range(16)), timestamp=TIMESTAMP, type="log",
                    logger="openstack.nova", severity=6, payload=line, hostname="node-1",
                    pid=4242, fields=[Field("programname", ["nova-api"]),
                                      Field("value", [1.5], DOUBLE)])
            for line in _oslo_lines()[:5]]
    return [encode_message(m) for m in msgs]


def framing_target() -> Target:
    """Garbage (or damaged frames) on a Heka stream, then enough good frames to outlast
    any header that claimed bytes past the garbage: the good frames after that come out
    intact, and no record is over max_message_size."""
    def check(data: bytes) -> None:
        from hekapy.collector.engine.protobuf import frame
        splitter = build("HekaFramingSplitter", "Splitter")
        splitter.max_record_size = MAX_MESSAGE_SIZE
        good = protobuf_seeds()
        tail = [frame(good[i % len(good)]) for i in range(
            (MAX_MESSAGE_SIZE + 600) // min(map(len, good)) + 3)]
        stream = data + b"".join(tail)
        records = feed(splitter, stream, data)
        for r in records:
            assert len(r) <= MAX_MESSAGE_SIZE, len(r)
        n = len(good)
        expected = [good[i % n] for i in range(len(tail))]
        got = [bytes(r) for r in records[-3:]]
        assert got == expected[-3:], (len(records), data[:100])
    return Target("splitter-HekaFramingSplitter", check,
                  lambda: [__import__("hekapy.collector.engine.protobuf", fromlist=["frame"])
                           .frame(s) for s in protobuf_seeds()] + [b"\x1e\x02\x08\x05\x1f"])


def feed(splitter: Any, stream: bytes, chunking: bytes) -> list[Any]:
    """`stream` through the splitter in chunks whose sizes come from `chunking`."""
    out: list[Any] = []
    pos = 0
    i = 0
    while pos < len(stream):
        step = 1 + (chunking[i % len(chunking)] if chunking else 4096) * 37 % 5000
        out += splitter.split(stream[pos:pos + step])
        pos += step
        i += 1
    return out


# --- line splitters ----------------------------------------------------------------------

def splitter_target(name: str) -> Target:
    """Any bytes, in any chunks: no exception, no record over max_record_size, and the
    records (with what is held back) are the input: nothing lost, nothing made up,
    unless a record was too long (then it is dropped, counted by the input)."""
    def check(data: bytes) -> None:
        splitter = build(name, "Splitter")
        splitter.max_record_size = 1024
        records = feed(splitter, data, data[:64])
        held = splitter.remainder
        final = splitter.flush()
        for r in records + final:
            assert len(r) <= splitter.max_record_size, (name, len(r))
        joined = b"".join(bytes(r) for r in records) + (data[len(data) - held:] if held
                                                         else b"")
        if len(data) <= 1024 and name != "PatternGroupingSplitter":
            if name == "RegexSplitter":  # the delimiter's text outside its group goes
                joined, data = joined.replace(b"\n", b""), data.replace(b"\n", b"")
            assert joined == data, name
        # A good line after whatever came before still comes out whole.
        after = build(name, "Splitter")
        after.max_record_size = 1024
        good = b"2025-11-23 10:00:00.000 1 INFO x [-] good line\n"
        records = after.split(data[-2000:]) + after.split(b"\n" + good + good)
        assert any(bytes(r).rstrip(b"\n").endswith(b"good line") for r in records), name
    return Target(f"splitter-{name}", check, lambda: [
        "\n".join(_oslo_lines()).encode(), b"a\nb\n\nc", b"x" * 3000 + b"\ny\n"])


# --- the matcher ---------------------------------------------------------------------------

MATCHERS = [
    "TRUE", "Type == 'log' && Severity <= 3", "Fields[status] >= 500 || Logger =~ /^nova/",
    "Fields[tag][1][0] == 'x' || Fields[missing] == NIL", "Payload !~ /err(or)?$/",
    "Type == 'metric' || Type == 'heka.sandbox.metric'", "Hostname != \"a\\\"b\"",
    "(Severity < 7) && !(Pid == 0)", "Timestamp > 0 && Uuid != ''",
]


def matcher_target() -> Target:
    def check(data: bytes) -> None:
        from hekapy.collector.engine.matcher import MatcherSyntaxError, compile_matcher
        from hekapy.collector.engine.message import DOUBLE, Field, Message
        text = data.decode("utf-8", "replace")
        try:
            predicate = compile_matcher(text)
        except MatcherSyntaxError:
            return
        for m in (Message(timestamp=TIMESTAMP, type="log", logger="nova", severity=3,
                          payload="an error", fields=[Field("status", [503], DOUBLE),
                                                      Field("tag", ["a", "x"])]),
                  Message(timestamp=0), Message(payload="\x00")):
            assert predicate(m) in (True, False), text
    return Target("matcher", check, lambda: [m.encode() for m in MATCHERS])


# --- the configuration loader ------------------------------------------------------------

def config_target() -> Target:
    """A file of any bytes through the loader: it reports errors, it never raises (and
    strict, only ConfigInvalid); a secret in the text never shows in an error."""
    def check(data: bytes) -> None:
        from hekapy.collector.engine.config import ConfigInvalid, load_config
        with tempfile.TemporaryDirectory(prefix="hekapy-fuzz-") as d:
            path = Path(d) / "fuzz.toml"
            secret = "s3cr3t-Fuzz-Pw"
            path.write_bytes(data.replace(b"SECRET", secret.encode()))
            cfg = load_config(path)
            for e in cfg.errors:
                assert isinstance(str(e), str)
                if b"password" in data:
                    assert secret not in str(e), str(e)
            try:
                load_config(path, strict=True)
            except ConfigInvalid:
                pass
    return Target("config", check, config_seeds)


def config_seeds() -> list[bytes]:
    seeds = [p.read_bytes() for p in sorted((REPO / "conf").glob("*.toml"))]
    seeds.append(b'[out]\ntype = "HttpOutput"\naddress = "http://u:SECRET@h/"\n'
                 b'password = "SECRET"\nmessage_matcher = "TRUE"\n')
    return seeds


# --- encoders: round trips ---------------------------------------------------------------

def _parts(data: bytes) -> list[str]:
    return [p.decode("utf-8", "replace") for p in data.split(b"\xff")]


def unescape_influx(text: str, specials: str) -> str:
    """InfluxDB 1.x's unescaping of a measurement, tag key, tag value or field key: a
    backslash before one of `specials` is dropped, any other backslash stays."""
    out = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in specials:
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def scan_influx(line: str, i: int, stops: str) -> tuple[str, int]:
    """From `i` to the first of `stops` that has no backslash right before it (how
    InfluxDB's scanner decides what is escaped)."""
    j = i
    while j < len(line) and not (line[j] in stops and (j == 0 or line[j - 1] != "\\")):
        j += 1
    return line[i:j], j


def parse_influx_line(line: str) -> tuple[str, dict[str, str], dict[str, Any], int]:
    """One line of InfluxDB 1.x line protocol, read with InfluxDB's rules (its line
    protocol reference, and what Debian's influxd does with the fuzzers' findings):
    measurement, tags, fields, timestamp; ValueError when InfluxDB would refuse it."""
    raw, i = scan_influx(line, 0, ", ")
    measurement = unescape_influx(raw, ", ")
    if not measurement:
        raise ValueError("no measurement")
    tags: dict[str, str] = {}
    while i < len(line) and line[i] == ",":
        raw, i = scan_influx(line, i + 1, ", ")
        k, j = scan_influx(raw, 0, "=")
        v = raw[j + 1:]
        if j >= len(raw) or not k or not v:
            raise ValueError(f"bad tag {raw!r}")
        tags[unescape_influx(k, ",= ")] = unescape_influx(v, ",= ")
    if i >= len(line) or line[i] != " ":
        raise ValueError("no fields")
    fields: dict[str, Any] = {}
    i += 1
    while True:
        raw, j = scan_influx(line, i, "=")
        if j >= len(line) or not raw:
            raise ValueError("bad field key")
        key = unescape_influx(raw, ",= ")
        j += 1
        if j < len(line) and line[j] == '"':
            k = j + 1
            val = []
            while k < len(line) and line[k] != '"':
                if line[k] == "\\" and k + 1 < len(line) and line[k + 1] in '"\\':
                    val.append(line[k + 1])
                    k += 2
                else:
                    val.append(line[k])
                    k += 1
            if k >= len(line):
                raise ValueError("unterminated string")
            fields[key] = "".join(val)
            j = k + 1
        else:
            raw, j = scan_influx(line, j, ", ")
            fields[key] = float(raw)
        if j < len(line) and line[j] == ",":
            i = j + 1
            continue
        break
    if j >= len(line) or line[j] != " ":
        raise ValueError("no timestamp")
    return measurement, tags, fields, int(line[j + 1:])


def influx_expected(text: str) -> str:
    """What InfluxDB reads back of a name, tag or field key hekapy wrote: control
    characters as their escapes (\\n is read as backslash-n), and a trailing backslash
    as a space (it is written with a space after it, which InfluxDB's own client does
    for tag values: nothing else keeps the separator after it a separator)."""
    text = text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return text[:-1] + " " if text.endswith("\\") else text


def line_protocol_target() -> Target:
    """Measurement \xff value \xff field key \xff tag \xff value …: the line InfluxdbOutput
    writes parses back, with InfluxDB's rules, to what was sent."""
    def check(data: bytes) -> None:
        from hekapy.outputs.influxdb.line_protocol import encode_point
        parts = _parts(data)
        name = parts[0]
        value: Any = parts[1] if len(parts) > 1 else 1.0
        try:
            value = float(value)
            if value != value or value in (float("inf"), float("-inf")):
                value = 1.0
        except ValueError:
            pass
        key = parts[2] if len(parts) > 2 and parts[2] else "value"
        tags = dict(zip(parts[3::2], parts[4::2], strict=False))
        line = encode_point(TIMESTAMP, name, {key: value} if key != "value" else value,
                            tags, "ms")
        if not line:
            assert not name or name.startswith("#"), name
            return
        # A newline only inside a quoted string field: InfluxDB ends a line at any other.
        measurement, got_tags, fields, ts = parse_influx_line(line)
        assert measurement == influx_expected(name), (line, name)
        want_tags = {influx_expected(k): influx_expected(v) for k, v in tags.items()
                     if k != "" and v != ""}
        assert got_tags == want_tags, (line, tags)
        assert list(fields) == [influx_expected(key)], (line, key)
        got = fields[influx_expected(key)]
        if isinstance(value, float):
            assert abs(got - round(value, 6)) <= 1e-6 * max(1.0, abs(value)), (line, value)
        else:
            assert got == value, (line, value)
        assert ts == TIMESTAMP // 1_000_000
    return Target("encoder-line-protocol", check, lambda: [
        b"cpu_idle\xff42.5\xff\xffhostname\xffnode-1\xffregion\xffRegion One",
        b"openstack_nova_http_response_times\xff0.25\xffcount\xffhttp_method\xffGET"])


def es_target(name: str) -> Target:
    def check(data: bytes) -> None:
        import orjson

        from hekapy.collector.engine.message import BYTES, DOUBLE, Field, Message
        parts = _parts(data)
        fields = [Field(k or "f", [v]) for k, v in zip(parts[2::2], parts[3::2],
                                                       strict=False)]
        fields.append(Field("raw", [data[:50]], BYTES))
        fields.append(Field("n", [float(len(data))], DOUBLE))
        msg = Message(uuid=bytes(16), timestamp=TIMESTAMP, type="log",
                      logger=parts[1] if len(parts) > 1 else "", severity=6,
                      payload=parts[0], hostname="node-1", pid=1, fields=fields)
        enc = build(name, "Encoder")
        body = enc.encode(msg)
        assert body is not None
        lines = bytes(body).rstrip(b"\n").split(b"\n")
        assert len(lines) == 2, lines
        action, doc = (orjson.loads(x) for x in lines)
        assert isinstance(action, dict) and len(action) == 1
        assert _find(doc, msg.payload), (doc, msg.payload)
    return Target(f"encoder-{name}", check, lambda: [
        b"2025-11-23 a line\xffopenstack.nova\xffprogramname\xffnova-api",
        b"{\"json\": true}\xff\xff\xff\"quoted\"\\"])


def _find(obj: Any, text: str) -> bool:
    if obj == text:
        return True
    if isinstance(obj, dict):
        return any(_find(v, text) for v in obj.values())
    if isinstance(obj, list):
        return any(_find(v, text) for v in obj)
    return False


# --- replay's archive readers --------------------------------------------------------------

COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    ".gz": gzip.compress, ".xz": lzma.compress, ".bz2": bz2.compress,
    ".zst": lambda b: __import__("zstandard").ZstdCompressor().compress(b),
}


def archive_target(ext: str) -> Target:
    """Damaged archives: reading them raises only READ_ERRORS (so the replay salvages
    what came before the damage and goes on with the next file), salvage never raises,
    and a decompression bomb is read in bounded steps."""
    def check(data: bytes) -> None:
        from hekapy.collector.app.replay_archive import READ_ERRORS, open_archive, salvage
        with tempfile.TemporaryDirectory(prefix="hekapy-fuzz-") as d:
            path = os.path.join(d, "nova-api.log.1" + ext)
            Path(path).write_bytes(data)
            f, raw = open_archive(path)
            total = 0
            try:
                while chunk := f.read(1 << 16):
                    assert len(chunk) <= 1 << 16
                    total += len(chunk)
                    if total > 64 << 20:
                        break  # a bomb: the reader is bounded per read, that is enough
            except READ_ERRORS:
                pass
            finally:
                raw.close()
            salvage(path, 0)
    return Target(f"replay-archive{ext}", check, lambda: archive_seeds(ext))


def archive_seeds(ext: str) -> list[bytes]:
    text = "\n".join(_oslo_lines()).encode() + b"\n"
    whole = COMPRESS[ext](text)
    return [whole, whole[: len(whole) // 2], whole[:-4] + b"\0\0\0\0",
            COMPRESS[ext](b"")]


# --- the list ------------------------------------------------------------------------------

DECODERS = sorted(GOOD)
LINE_SPLITTERS = ["TokenSplitter", "RegexSplitter", "PatternGroupingSplitter", "NullSplitter"]


def all_targets() -> dict[str, Target]:
    targets = [decoder_target(d) for d in DECODERS]
    targets += [multiline_target(), framing_target()]
    targets += [splitter_target(s) for s in LINE_SPLITTERS]
    targets += [matcher_target(), config_target(), line_protocol_target()]
    targets += [es_target("ESJsonEncoder"), es_target("ESLogstashV0Encoder")]
    targets += [archive_target(ext) for ext in COMPRESS]
    return {t.name: t for t in targets}


def mutate(seed: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    """A seed changed by (kind, position, value) edits: flip a byte, insert one, delete
    a run, duplicate a run, truncate (what libFuzzer's mutators do, in small)."""
    b = bytearray(seed)
    for kind, pos, val in ops:
        p = pos % (len(b) + 1)
        k = kind % 5
        if k == 0 and b:
            b[p % len(b)] = val
        elif k == 1:
            b.insert(p, val)
        elif k == 2:
            del b[p:p + 1 + val % 16]
        elif k == 3:
            b[p:p] = b[p:p + 1 + val]
        else:
            del b[p:]
    return bytes(b)


def inputs(target: Target) -> Any:
    """Hypothesis inputs for `target`: its seeds mutated (see `mutate`), and random
    bytes."""
    from hypothesis import strategies as st
    op = st.tuples(st.integers(0, 4), st.integers(0, 1 << 16), st.integers(0, 255))
    mutated = st.tuples(st.sampled_from(target.seeds()), st.lists(op, max_size=8)).map(
        lambda t: mutate(*t))
    return st.one_of(mutated, st.binary(max_size=4096))

