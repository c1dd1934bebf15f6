"""InfluxdbOutput's fast encoder (line_protocol.PointEncoder) writes the bytes the rules
say, byte for byte: the same lines as the plain reading of LMA's convention below (one
field lookup per name, then encode_point, which the LMA vectors pin down), on generated
messages full of what must be escaped, and the same bodies as before it existed."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hekapy.benchmarks.influxdb_throughput import points
from hekapy.collector.engine.message import DOUBLE, STRING, Field, Message
from hekapy.outputs.influxdb.line_protocol import (
    DEFAULT_TAG_FIELDS,
    PRECISION_DIVISORS,
    PointEncoder,
    encode_point,
    message_points,
)
from hekapy.outputs.influxdb.output import InfluxdbOutput
from tests.helpers.plugins import config_from


def reference_lines(msg: Message, common_tags: Any = DEFAULT_TAG_FIELDS,
                    precision: str = "ms") -> list[str]:
    """LMA's convention read plainly: each name looked up with find_field, the point
    written by encode_point. The oracle the fast encoder must agree with."""
    def first(name: Any) -> Any:
        f = msg.find_field(name)
        return f.values[0] if f is not None and f.values else None

    def every(name: str) -> list[Any]:
        f = msg.find_field(name)
        return list(f.values) if f is not None else []

    name = first("name")
    if not name or str(name).startswith("#"):
        return []
    value: Any
    if every("value_fields"):
        value = {k: v for k in every("value_fields") if (v := first(k)) is not None}
        if not value:
            return []
    else:
        value = first("value")
        if value is None:
            return []
    tags = {t: v for t in [*common_tags, *every("tag_fields")] if (v := first(t)) is not None}
    return [encode_point(msg.timestamp, name, value, tags, precision)]


# Names and texts with everything the line protocol escapes or trips on.
NAMES = ["name", "value", "value_fields", "tag_fields", "deployment_id", "tenant_id",
         "hostname", "backend", "min", "max", "a b", "k=v", "x,y", "back\\", "", "#c",
         "é", "new\nline", "tab\t", 'quo"te']
_texts = st.one_of(st.sampled_from(NAMES),
                   st.text(alphabet=' ,="\\#\n\r\tabé1', max_size=6))
_values = st.one_of(_texts, st.integers(-2**70, 2**70), st.booleans(), st.none(),
                    st.floats(allow_nan=True, allow_infinity=True), st.just(-0.0),
                    st.binary(max_size=3))
_noise = st.lists(st.builds(
    lambda name, values: Field(name, values, STRING),
    st.sampled_from(NAMES),
    st.lists(st.one_of(st.sampled_from(NAMES), _values), max_size=4)), max_size=6)


@st.composite
def metric_fields(draw: Any) -> list[Field]:
    """A metric's fields, each part present or not, among fields of any name (which may
    come first: the first field of a name counts)."""
    fields: list[Field] = draw(_noise)

    def add(name: Any, values: list[Any]) -> None:
        fields.insert(draw(st.integers(0, len(fields))), Field(name, values, STRING))

    if draw(st.integers(0, 9)):
        add("name", draw(st.lists(_values, min_size=1, max_size=2)))
    if draw(st.booleans()):
        keys = draw(st.lists(_texts, max_size=4))
        add("value_fields", keys)
        for k in keys:
            add(k, draw(st.lists(_values, max_size=2)))
    elif draw(st.integers(0, 9)):
        add("value", draw(st.lists(_values, max_size=2)))
    for list_name in ("tag_fields", "deployment_id"):
        keys = draw(st.lists(_texts, max_size=4))
        if list_name == "tag_fields":
            add(list_name, keys)
        for k in keys:
            add(k, draw(st.lists(_values, max_size=2)))
    return fields


# One encoder per setting for the whole run: its caches carry over from example to
# example, as they do from message to message.
_encoders: dict[tuple[tuple[str, ...], str], PointEncoder] = {}


@settings(max_examples=3000, deadline=None)
@given(metric_fields(), st.one_of(st.integers(0, 2**63), st.floats(0, 2e18)),
       st.sampled_from(sorted(PRECISION_DIVISORS)),
       st.sampled_from([(), ("deployment_id", "tenant_id"), DEFAULT_TAG_FIELDS,
                        ("hostname", "hostname", "")]))
def test_same_lines_as_the_plain_reading(fields, timestamp, precision, common_tags):
    msg = Message(type="metric", timestamp=timestamp, fields=fields)
    encoder = _encoders.setdefault((common_tags, precision),
                                   PointEncoder(common_tags, precision))
    try:
        reference = reference_lines(msg, common_tags, precision)
    except Exception as e:  # e.g. keys of several types that cannot be sorted
        with pytest.raises(type(e)):
            encoder.line(msg)
        return
    expected = "".join(ln + "\n" for ln in reference)
    assert encoder.line(msg) == expected
    assert message_points(msg, common_tags, precision) == reference


def test_one_cache_entry_never_stands_for_another_type():
    """1, 1.0 and True are one dict key but three texts: the caches hold str keys only."""
    encoder = PointEncoder(["host"])
    msgs = [Message(timestamp=0, fields=[Field("name", [v], STRING), Field("host", [v], STRING),
                                         Field("value", [2.0], DOUBLE)])
            for v in ("1", 1, 1.0, True)]
    lines = [encoder.line(m) for m in msgs]
    assert lines == ["1,host=1 value=2.000000 0\n", "1,host=1 value=2.000000 0\n",
                     "1.0,host=1.0 value=2.000000 0\n", "True,host=True value=2.000000 0\n"]
    assert lines == [reference_lines(m, ["host"])[0] + "\n" for m in msgs]


def test_the_caches_stay_bounded_and_right_when_emptied():
    encoder = PointEncoder(["host"])
    encoder.tag_values.limit = 3
    for i in range(10):
        msg = Message(timestamp=10**6, fields=[Field("name", ["m"], STRING),
                                               Field("value", [float(i)], DOUBLE),
                                               Field("host", [f"h {i}"], STRING)])
        assert encoder.line(msg) == f"m,host=h\\ {i} value={i}.000000 1\n"
        assert len(encoder.tag_values) <= 3


# The benchmark's points as the encoder wrote them before PointEncoder (one find_field
# per name and encode_point per message): their bodies must not change by a byte.
BODIES = {
    "ms": ("2c5d78797eae1452f1fa02af93e8dfcf28b496604054dd448e1bfa27b45f3a2d", 344446),
    "ns": ("90d5cc8fd9731651492e989a082a662e8d1654c9b755d5ea760e4975f9f685a0", 362446),
    "s": ("df685275e396cd3ce17bef2e7461ad70ce0d3688a6447ab625f8fe33b055c1f8", 335446),
}


@pytest.mark.parametrize("precision", sorted(BODIES))
def test_the_benchmark_points_bodies_are_unchanged(tmp_path, precision):
    cfg = config_from(tmp_path, f"""
        [influx]
        type = "InfluxdbOutput"
        message_matcher = "TRUE"
        precision = "{precision}"
    """).plugins["influx"].cfg
    output = InfluxdbOutput("influx", cfg)
    msgs = points(3000, start_ns=1_700_000_000_000_000_000)
    items: list[bytes] = []
    assert output.points.encode(msgs, items) == []
    body = b"".join(items)
    assert (hashlib.sha256(body).hexdigest(), len(body)) == BODIES[precision]
    assert body.startswith(
        b"openstack_nova_http_response_times,hostname=node-0,http_method=GET,"
        b"http_status=2xx count=30.000000,max=1.868705,min=0.010000,rate=3.000000,"
        b"sum=10.000000,upper_90=1.200000 17")


def test_messages_without_a_point_are_returned_not_written():
    encoder = PointEncoder()
    good = Message(timestamp=0, fields=[Field("name", ["m"], STRING),
                                        Field("value", [1.0], DOUBLE)])
    no_value = Message(timestamp=0, fields=[Field("name", ["m"], STRING)])
    unsortable = Message(timestamp=0, fields=[
        Field("name", ["m"], STRING), Field("value", [1.0], DOUBLE),
        Field("a", [1], STRING), Field("tag_fields", ["a", 5], STRING),
        Field(5, [2], STRING)])  # type: ignore[arg-type]  # a name that is no str
    out: list[bytes] = []
    refused = encoder.encode([good, no_value, unsortable, good], out)
    assert out == [b"m value=1.000000 0\n"] * 2
    assert [(m, type(e)) for m, e in refused] == [(no_value, type(None)),
                                                  (unsortable, TypeError)]
