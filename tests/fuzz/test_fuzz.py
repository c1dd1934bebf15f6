"""The fuzz targets of tests/fuzz/targets.py in every CI run, with a fixed budget: each
target gets its seed corpus as explicit examples, then `FUZZ_EXAMPLES` Hypothesis inputs
(random bytes, and the seeds mutated the way libFuzzer mutates), derandomized so that a
run is repeatable. scripts/fuzz runs the same targets for as long as asked.

The inputs each fuzzer found that broke a property are in REGRESSIONS below, each
with what was wrong; they run first, every time."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.targets import COMPRESS, all_targets, inputs

TARGETS = all_targets()
# Per target; the whole file stays under a minute on CI's two shared cores.
FUZZ_EXAMPLES = int(os.environ.get("HEKAPY_FUZZ_EXAMPLES", "60"))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seed_corpus(name):
    """Every seed passes: the targets' properties hold on the test data itself."""
    for seed in TARGETS[name].seeds():
        TARGETS[name].check(seed)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz(name):
    check = TARGETS[name].check

    @settings(max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(inputs(TARGETS[name]))
    def run(data: bytes) -> None:
        check(data)
    run()


# (target, input, what it found; fixed where)
REGRESSIONS: list[tuple[str, bytes, str]] = [
    ("replay-archive.zst", COMPRESS[".zst"](b"x\n" * 1000)[:-6] + b"garbage",
     "zstandard.ZstdError is no OSError: a corrupt .zst escaped READ_ERRORS, so replay "
     "salvaged nothing of the file (collector/app/replay_archive.py READ_ERRORS)"),
    ("decoder-OpenStackLogDecoder-multiline",
     b"Traceback (most recent call last):\n" + b"\xff" * 1000,
     "a traceback of invalid bytes (U+FFFD, three bytes each) grew to three times "
     "max_message_size: the joined lines were counted in characters, not bytes "
     "(decoders/openstack_log.py _utf8_len; found by atheris)"),
    ("config", b'[out]\nurl = "%ENV[HOST\npassword = "SECRET"\nx = 1]"\n',
     "an %ENV[ left open ran to the next ] lines later, and the unset-variable error "
     "quoted all of it, a password included (collector/engine/config.py: a name ends "
     "at its line; found by atheris)"),
    ("config", b'[out]\npassword = "%ENV[SECRET password]"\n',
     "the same on one line: what is inside %ENV[...] is quoted only when it is a name"),
    ("encoder-line-protocol", b"\\",
     "a measurement ending in a backslash: InfluxDB read the space after it as escaped "
     "and refused the line (outputs/influxdb/line_protocol.py _trailing)"),
    ("encoder-line-protocol", b"cpu\xff1\xffkey\\",
     "the same for a field key (value_fields): `key\\=1.0` has no `=` for InfluxDB"),
    ("encoder-line-protocol", b"cpu\xff1\xff\xffhost\\\xffnode-1",
     "the same for a tag key (tag values already had it)"),
]


@pytest.mark.parametrize("name,data,why", REGRESSIONS,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(REGRESSIONS)])
def test_regression(name, data, why):
    TARGETS[name].check(data)


@pytest.mark.services
async def test_line_protocol_findings_on_a_real_influxdb(tmp_path):
    """The line-protocol model the fuzzer checks against is InfluxDB's: the points of
    the regressions (names, tag keys and values, field keys ending in a backslash; a
    backslash before an escaped comma; a newline in a string field) are accepted by
    Debian's influxd and read back as the model says."""
    import aiohttp

    from hekapy.outputs.influxdb.line_protocol import encode_point
    from tests.fuzz.targets import influx_expected
    from tests.services import influxdb
    points = [("m\\", {"t": "v"}, 1.0), ("m1", {"k\\": "v\\"}, 2.0),
              ("m2", {"t": "x\\,y"}, {"f\\": 3.0}), ("m3", {"t": "a b"}, "line\nbreak")]
    async with influxdb(tmp_path / "influxdb") as db:
        await db.query("CREATE DATABASE fuzz")
        body = "\n".join(encode_point(10**18, n, v, t, "ms") for n, t, v in points)
        async with aiohttp.ClientSession() as s, s.post(
                db.url + "/write?db=fuzz&precision=ms", data=body.encode()) as r:
            assert r.status == 204, await r.text()
        names = {r["name"] for r in await db.query("SHOW MEASUREMENTS", db="fuzz")}
        assert names == {influx_expected(n) for n, _, _ in points}
        tags = {(r["_measurement"], r["key"], r["value"]) for r in await db.query(
            "SHOW TAG VALUES WITH KEY =~ /.*/", db="fuzz")}
        assert tags == {(influx_expected(n), influx_expected(k), influx_expected(v))
                        for n, t, _ in points for k, v in t.items()}
        [row] = await db.query('SELECT * FROM "m2"', db="fuzz")
        assert row[influx_expected("f\\")] == 3.0
        [row] = await db.query('SELECT * FROM "m3"', db="fuzz")
        assert row["value"] == "line\nbreak"
