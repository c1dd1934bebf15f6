"""InfluxdbOutput and LMA's line protocol: the LMA vectors, influxdb-client's serializer
as a reference on generated points, and a real InfluxDB 1.x (Debian) queried back."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hekapy.collector.engine.contexts import InputContext
from hekapy.collector.engine.message import DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.plugin import Input, Option, register
from hekapy.outputs.influxdb.line_protocol import encode_point, message_points
from tests.helpers.paths import LMA_DATA
from tests.helpers.plugins import config_from
from tests.helpers.wait import wait_for
from tests.services import influxdb

VECTORS = json.loads((LMA_DATA / "influxdb_encoder.json").read_text())


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["expected"][:30])
def test_lma_vectors(case):
    """Upstream test vectors (tests/lua/test_influxdb.lua of the LMA collector)."""
    precision = case["precision"].split()[0]
    precision = "ns" if precision == "ns" else precision
    got = encode_point(int(case["timestamp_ns"]), case["name"], case["value"], case["tags"],
                       precision)
    assert got == case["expected"]


def metric(name: str, value, ts: int = 1_700_000_000_123_456_789, **tags) -> Message:
    fields = [Field("name", [name], STRING)]
    if isinstance(value, dict):
        fields.append(Field("value_fields", list(value), STRING))
        fields += [Field(k, [v], DOUBLE) for k, v in value.items()]
    else:
        fields.append(Field("value", [value], INTEGER if isinstance(value, int) else DOUBLE))
    names = []
    for k, v in tags.items():
        fields.append(Field(k, [v], STRING))
        if k not in ("deployment_id", "environment_label", "tenant_id", "user_id"):
            names.append(k)
    if names:
        fields.append(Field("tag_fields", names, STRING))
    return Message(type="metric", timestamp=ts, fields=fields)


def test_message_points_follow_lmas_convention():
    m = metric("haproxy_backend_bytes_in", 42, backend="nova-api", hostname="node-1",
               deployment_id="3", unrelated="x")
    m.fields.append(Field("tenant_id", ["t1"], STRING))
    m.fields = [f for f in m.fields if not (f.name == "tag_fields")] + [
        Field("tag_fields", ["backend", "hostname"], STRING)]
    assert message_points(m) == [
        "haproxy_backend_bytes_in,backend=nova-api,deployment_id=3,hostname=node-1,"
        "tenant_id=t1 value=42.000000 1700000000123"]
    multi = metric("openstack_nova_http_response_times",
                   {"min": 0.1, "max": 2.0, "count": 3.0}, hostname="n")
    assert message_points(multi, precision="s") == [
        "openstack_nova_http_response_times,hostname=n count=3.000000,max=2.000000,"
        "min=0.100000 1700000000"]
    assert message_points(Message(type="metric")) == []
    # InfluxDB reads a line starting with "#" as a comment: such a point is refused.
    assert message_points(metric("#x", 1)) == [] and encode_point(0, "#x", 1) == ""


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
                max_size=12)


@settings(max_examples=300, deadline=None)
@given(_text.filter(lambda t: not t.startswith("#")), st.dictionaries(_text, _text, max_size=4),
       st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
       st.integers(0, 2**62))
def test_escaping_agrees_with_influxdb_client(name, tags, value, ts):
    from influxdb_client import Point, WritePrecision
    # The client writes a measurement or tag key ending in a backslash bare, and
    # InfluxDB refuses that line (the separator reads as escaped); hekapy adds a space,
    # as the client does for tag values (tests/fuzz/test_fuzz.py, the line protocol's
    # regressions, checked on a real influxd).
    assume(not name.endswith("\\") and not any(k.endswith("\\") for k in tags))
    ours = encode_point(ts, name, value, tags, "ns")
    p = Point(name).field("value", value).time(ts, WritePrecision.NS)
    for k, v in tags.items():
        p = p.tag(k, v)
    theirs = p.to_line_protocol()
    # Same measurement, tags and timestamp, byte for byte; the value differs only in
    # LMA's six-decimal format.
    head, _, rest = ours.rpartition(" value=")
    t_head, _, t_rest = theirs.rpartition(" value=")
    assert head == t_head
    ours_value, ours_ts = rest.split(" ")
    their_value, their_ts = t_rest.split(" ")
    assert ours_ts == their_ts
    assert math.isclose(float(ours_value), float(their_value), abs_tol=1e-6, rel_tol=1e-9)


# --- a real InfluxDB -------------------------------------------------------------------

@register
class MetricInput(Input):
    """Delivers MetricInput.batches (lists of messages), then waits."""

    options = {"linger": Option("bool", True)}
    batches: list[list[Message]] = []
    last: MetricInput | None = None

    def __init__(self, name, cfg):
        super().__init__(name, cfg)
        self.acked: list[int] = []
        MetricInput.last = self

    async def run(self, ctx: InputContext) -> None:
        ctx.on_ack(self.acked.append)
        for i, batch in enumerate(MetricInput.batches, 1):
            await ctx.deliver(batch, i, 100 * len(batch))
        if self.cfg.linger:
            await ctx.stopping.wait()


def config(url: str, tmp_path: Path, extra: str = "") -> str:
    return f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        [src]
        type = "MetricInput"
        [influx]
        type = "InfluxdbOutput"
        message_matcher = "Type =~ /metric$/"
        url = "{url}"
        database = "lma"
        flush_interval = 50
        flush_count = 100
        retry_delay = "20ms"
        retry_max_delay = "100ms"
        {extra}
    """


@pytest.mark.services
@pytest.mark.parametrize("compression", ["none", "gzip"])
async def test_points_land_in_influxdb_with_their_tags(tmp_path, compression):
    base = 1_700_000_000_000_000_000
    MetricInput.batches = [[metric("haproxy_backend_servers", i % 3, base + i * 10**6,
                                   backend=f"be{i % 2}", state="up", hostname="lb-1")
                            for i in range(j * 100, j * 100 + 100)] for j in range(5)]
    async with influxdb(tmp_path / "influx") as db:
        await db.query("CREATE DATABASE lma")
        p = Pipeline(config_from(tmp_path, config(db.url, tmp_path,
                                                  f'compression = "{compression}"')))
        await p.start()
        src = MetricInput.last
        await wait_for(lambda: src.acked[-1:] == [5], "acknowledged", timeout=300)
        await p.stop()
        rows = await db.query("SELECT count(value) FROM haproxy_backend_servers "
                              "GROUP BY backend", db="lma")
        assert {r["backend"]: r["count"] for r in rows} == {"be0": 250, "be1": 250}
        [first] = await db.query("SELECT * FROM haproxy_backend_servers LIMIT 1", db="lma")
        assert first["time"] == base // 10**6 and first["value"] == 0.0
        assert (first["hostname"], first["state"]) == ("lb-1", "up")
        keys = await db.query("SHOW FIELD KEYS FROM haproxy_backend_servers", db="lma")
        assert keys == [{"fieldKey": "value", "fieldType": "float",
                         "_measurement": "haproxy_backend_servers"}]


@pytest.mark.services
async def test_partial_writes_are_counted_and_the_rest_stored(tmp_path):
    base = 1_700_000_000_000_000_000
    good = [metric("svc_rate", 1.5, base + i * 10**6, hostname="n") for i in range(10)]
    # A string into the float series `svc_rate`: InfluxDB refuses that point for good.
    bad = Message(type="metric", timestamp=base + 99 * 10**6,
                  fields=[Field("name", ["svc_rate"], STRING),
                          Field("value", ["not a number"], STRING)])
    MetricInput.batches = [good[:5], [bad, *good[5:]]]
    async with influxdb(tmp_path / "influx") as db:
        await db.query("CREATE DATABASE lma")
        # Both batches may go in one request: InfluxDB then refuses it whole, and the
        # output splits it until the bad point is alone.
        p = Pipeline(config_from(tmp_path, config(db.url, tmp_path, "use_buffering = false")))
        await p.start()
        src = MetricInput.last
        await wait_for(lambda: src.acked[-1:] == [2], "acknowledged", timeout=300)
        stats = p.outputs[0][1].stats
        await p.stop()
        [row] = await db.query("SELECT count(value) FROM svc_rate", db="lma")
        assert row["count"] == 10
        assert stats.dropped == 1 and stats.messages_out == 10


@pytest.mark.services
async def test_down_then_up_and_a_missing_database_lose_nothing(tmp_path):
    base = 1_700_000_000_000_000_000
    MetricInput.batches = [[metric("m", i, base + i * 10**6) for i in range(200)]]
    async with influxdb(tmp_path / "influx") as db:
        # No database yet: 404s are retried (logged as errors), nothing acknowledged.
        p = Pipeline(config_from(tmp_path, config(db.url, tmp_path, "use_buffering = false")))
        await p.start()
        ctx = p.outputs[0][1]
        await wait_for(lambda: ctx.stats.retried >= 400, "retries", timeout=300)
        assert MetricInput.last.acked == []
        await db.query("CREATE DATABASE lma")
        await wait_for(lambda: MetricInput.last.acked[-1:] == [1], "delivered", timeout=300)
        await p.stop()
        [row] = await db.query("SELECT count(value) FROM m", db="lma")
        assert row["count"] == 200


async def test_buffered_by_default_and_dropping_when_full(tmp_path):
    cfg = config_from(tmp_path, config("http://127.0.0.1:9", tmp_path))
    spec = cfg.plugins["influx"]
    assert spec.cfg.use_buffering is True
    assert spec.cfg.buffering.full_action == "drop"
    cfg = config_from(tmp_path, config("http://127.0.0.1:9", tmp_path,
                                       "[influx.buffering]\nmax_file_size = 1000000"))
    # A table given: Heka's global defaults for the rest.
    assert cfg.plugins["influx"].cfg.buffering.full_action == "shutdown"


@pytest.mark.services
async def test_influxdb_down_does_not_stall_metrics(tmp_path):
    """The disk buffer takes the points while InfluxDB is down; they arrive after."""
    base = 1_700_000_000_000_000_000
    MetricInput.batches = [[metric("m", i, base + i * 10**6) for i in range(j, j + 50)]
                           for j in range(0, 500, 50)]
    from tests.services import free_port
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    p = Pipeline(config_from(tmp_path, config(url, tmp_path)))
    await p.start()
    # Nothing listens: the input is acknowledged anyway (the points are on disk).
    await wait_for(lambda: MetricInput.last.acked[-1:] == [10], "on disk", timeout=300)
    await p.stop()
    async with influxdb(tmp_path / "influx") as db:
        await db.query("CREATE DATABASE lma")
        MetricInput.batches = []
        p = Pipeline(config_from(tmp_path, config(db.url, tmp_path)))
        await p.start()
        rows: list = []

        async def arrived() -> bool:
            nonlocal rows
            rows = await db.query("SELECT count(value) FROM m", db="lma")
            return bool(rows) and rows[0]["count"] == 500

        for _ in range(500):
            if await arrived():
                break
            await asyncio.sleep(0.02)
        await p.stop()
        assert rows and rows[0]["count"] == 500


async def test_v2_write_api_token_and_retry_after(tmp_path, caplog):
    """InfluxDB 2.x's /api/v2/write (org, bucket, token) and a 429 with Retry-After.
    Debian ships InfluxDB 1.6, which has neither the v2 endpoint nor Retry-After, so a
    small aiohttp server plays InfluxDB 2's part here (its documented contract)."""
    from aiohttp import web

    from tests.services import free_port
    requests: list[tuple[float, web.Request, bytes]] = []
    stored = asyncio.Event()

    async def write(request: web.Request) -> web.Response:
        body = await request.read()
        requests.append((asyncio.get_running_loop().time(), request, body))
        if len(requests) == 1:
            return web.json_response({"code": "too many requests", "message": "slow down"},
                                     status=429, headers={"Retry-After": "1"})
        stored.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/api/v2/write", write)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = 1_700_000_000_000_000_000
    MetricInput.batches = [[metric("cpu_idle", 97.5, base, hostname="n1")]]
    token = "tok-S3CRET-value"
    try:
        p = Pipeline(config_from(tmp_path, config(
            f"http://127.0.0.1:{port}", tmp_path,
            f'org = "stacklight"\nbucket = "lma/autogen"\ntoken = "{token}"\n'
            "use_buffering = false")))
        await p.start()
        await asyncio.wait_for(stored.wait(), 30)
        await wait_for(lambda: MetricInput.last.acked[-1:] == [1], "acknowledged", timeout=300)
        await p.stop()
    finally:
        await runner.cleanup()
    assert len(requests) == 2
    (t0, first, body0), (t1, _, body1) = requests
    assert first.query["org"] == "stacklight" and first.query["bucket"] == "lma/autogen"
    assert first.query["precision"] == "ms"
    assert first.headers["Authorization"] == f"Token {token}"
    assert body0 == body1 == b"cpu_idle,hostname=n1 value=97.500000 1700000000000\n"
    # The retry waited for the server's Retry-After, not for retry_delay (20 ms).
    assert t1 - t0 >= 0.9
    assert "retrying in 1.00 s" in caplog.text
    assert token not in caplog.text
