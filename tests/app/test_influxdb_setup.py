"""`hekapy influxdb-setup` against Debian's real InfluxDB 1.x: the database and a
default retention policy that InfluxDB actually applies to writes that name none."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.helpers.collectors import HEKAPY
from tests.services import influxdb

pytestmark = pytest.mark.services


async def hekapy(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*HEKAPY, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def write(url: str, db: str, line: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.post(
            f"{url}/write", params={"db": db, "precision": "s"}, data=line) as r:
        return r.status, await r.text()


async def policies(influx, db: str) -> dict[str, dict]:
    """SHOW RETENTION POLICIES by name (its series has no measurement name, which
    tests/services.py's query expects)."""
    async with aiohttp.ClientSession() as s, s.post(
            influx.url + "/query", data={"q": f'SHOW RETENTION POLICIES ON "{db}"'}) as r:
        [series] = (await r.json())["results"][0]["series"]
    rows = [dict(zip(series["columns"], v, strict=True)) for v in series["values"]]
    return {row["name"]: row for row in rows}


async def test_the_default_policy_is_autogen_altered_and_it_takes_effect(tmp_path):
    async with influxdb(tmp_path / "influx") as influx:
        code, out, err = await hekapy("influxdb-setup", "--url", influx.url,
                                      "--database", "lma", "--retention-days", "30")
        assert code == 0, err
        assert "database 'lma' created" in out
        assert ("retention policy 'autogen' on 'lma' changed: 30 days, shard groups of "
                "1 day, the default (was forever, the default)") in out
        autogen = (await policies(influx, "lma"))["autogen"]
        assert (autogen["duration"], autogen["shardGroupDuration"], autogen["default"]) == (
            "720h0m0s", "24h0m0s", True)

        # A write naming no policy lands in autogen, and 30 days is enforced there.
        now = int(time.time())
        status, text = await write(influx.url, "lma",
                                   f"cpu_idle value=1 {now - 40 * 86400}\n"
                                   f"cpu_idle value=2 {now - 86400}\n")
        assert status == 400 and "points beyond retention policy dropped=1" in text, text
        rows = await influx.query("SELECT value FROM cpu_idle", db="lma")
        assert [r["value"] for r in rows] == [2]

        # Again: nothing to do, and it says so.
        code, out, err = await hekapy("influxdb-setup", "--url", influx.url,
                                      "--database", "lma", "--retention-days", "30")
        assert code == 0, err
        assert "database 'lma' exists" in out
        assert "retention policy 'autogen' on 'lma' unchanged" in out

        code, out, err = await hekapy("influxdb-setup", "--url", influx.url,
                                      "--retention-days", "0")
        assert code == 0, err
        assert "changed: forever, shard groups of 7 days, the default (was 30 days" in out
        autogen = (await policies(influx, "lma"))["autogen"]
        assert (autogen["duration"], autogen["shardGroupDuration"]) == ("0s", "168h0m0s")


async def test_the_outputs_own_policy_is_created_as_the_default(tmp_path):
    async with influxdb(tmp_path / "influx") as influx:
        conf = tmp_path / "metric.toml"
        conf.write_text(f"""
[hekad]
base_dir = "{tmp_path / 'state'}"
[influxdb_output]
type = "InfluxdbOutput"
message_matcher = "Type =~ /metric$/"
url = "{influx.url}"
database = "metrics"
retention_policy = "hekapy"
""")
        code, out, err = await hekapy("influxdb-setup", "-c", str(conf),
                                      "--retention-days", "7")
        assert code == 0, err
        assert "database 'metrics' created" in out
        assert "retention policy 'hekapy' on 'metrics' created: 7 days" in out
        found = await policies(influx, "metrics")
        assert (found["hekapy"]["duration"], found["hekapy"]["default"]) == ("168h0m0s", True)
        assert found["autogen"]["default"] is False  # what dashboards read is hekapy's


async def test_a_v2_output_and_no_server_are_clear_errors(tmp_path):
    conf = tmp_path / "v2.toml"
    conf.write_text("""
[influxdb_output]
type = "InfluxdbOutput"
message_matcher = "TRUE"
org = "o"
bucket = "metrics"
token = "t0k3n-secret"
""")
    code, _out, err = await hekapy("influxdb-setup", "-c", str(conf))
    assert code == 2 and "InfluxDB 2.x" in err and "'metrics'" in err
    assert "t0k3n-secret" not in err
    code, _out, err = await hekapy("influxdb-setup", "--url",
                                   "http://admin:pa55word@127.0.0.1:9")
    assert code == 1 and "error: http://127.0.0.1:9: ClientConnectorError" in err
    assert "pa55word" not in err

