"""The Elasticsearch test double answers like Elasticsearch, fails on demand, and
records what it stored (it is the ground truth of the output tests and benchmarks)."""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys

import aiohttp
import orjson
import pytest

from hekapy.benchmarks.es_double import EsDouble
from tests.helpers.collectors import HEKAPY


def bulk(*pairs) -> bytes:
    return b"".join(orjson.dumps(p) + b"\n" for p in pairs)


async def post(es: EsDouble, body: bytes, **headers) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s, s.post(
            es.url + "/_bulk", data=body,
            headers={"Content-Type": "application/x-ndjson", **headers}) as r:
        return r.status, await r.json()


async def test_root_answers_per_flavor():
    for flavor, number in (("es7", "7."), ("es8", "8."), ("opensearch2", "2.")):
        async with EsDouble(flavor) as es, aiohttp.ClientSession() as s, \
                s.get(es.url) as r:
            info = await r.json()
            assert info["version"]["number"].startswith(number)
            assert (info["version"].get("distribution") == "opensearch") == \
                flavor.startswith("opensearch")


async def test_bulk_count_search_and_conflicts():
    async with EsDouble("es8") as es:
        status, resp = await post(es, bulk(
            {"index": {"_index": "log-2024.01.01", "_id": "a"}}, {"n": 1, "s": "x"},
            {"create": {"_index": "log-2024.01.01", "_id": "b"}}, {"n": 2, "s": "y"},
            {"create": {"_index": "log-2024.01.01", "_id": "b"}}, {"n": 3},
            {"index": {"_index": "log-2024.01.01", "_id": "c"}}, {"n": "not a number"},
            {"index": {"_index": "notification-2024.01.01"}}, {"event_type": "x"}))
        assert status == 200 and resp["errors"] is True
        st = [next(iter(i.values()))["status"] for i in resp["items"]]
        assert st == [201, 201, 409, 400, 201]
        assert resp["items"][3]["index"]["error"]["type"] == "mapper_parsing_exception"
        assert es.count("log-*") == 2 and es.count() == 3
        async with aiohttp.ClientSession() as s:
            async with s.post(es.url + "/log-*/_search",
                              json={"query": {"term": {"s": "y"}}}) as r:
                hits = (await r.json())["hits"]
            assert [h["_id"] for h in hits["hits"]] == ["b"]
            async with s.get(es.url + "/_count") as r:
                assert (await r.json())["count"] == 3
        # Re-indexing the same id is an update, counted as a second write.
        _, resp = await post(es, bulk({"index": {"_index": "log-2024.01.01", "_id": "a"}},
                                      {"n": 5}))
        assert resp["items"][0]["index"]["result"] == "updated"
        assert es.write_counts[("log-2024.01.01", "a")] == 2


async def test_type_in_action_line_per_flavor_and_gzip():
    line = bulk({"index": {"_index": "x", "_type": "message", "_id": "1"}}, {"a": 1})
    async with EsDouble("es8") as es:
        status, resp = await post(es, line)
        assert status == 400 and "[_type]" in resp["error"]["reason"]
        status, resp = await post(es, gzip.compress(bulk({"index": {"_index": "x"}},
                                                        {"a": 1})),
                                  **{"Content-Encoding": "gzip"})
        assert status == 200 and es.count("x") == 1
    async with EsDouble("es7") as es:
        status, resp = await post(es, line)
        assert status == 200 and resp["items"][0]["index"]["_type"] == "_doc"


async def test_templates_fix_types_up_front():
    from hekapy.outputs.elasticsearch.templates import index_template
    async with EsDouble() as es, aiohttp.ClientSession() as s:
        async with s.put(es.url + "/_index_template/log", json=index_template("log")) as r:
            assert r.status == 200
        _, resp = await post(es, bulk({"index": {"_index": "log-1"}}, {"http_status": "abc"},
                                      {"index": {"_index": "log-1"}}, {"http_status": 200}))
        assert [i["index"]["status"] for i in resp["items"]] == [400, 201]


async def test_auth():
    async with EsDouble(username="elastic", password="s3cret", api_key="a2V5") as es:
        status, _ = await post(es, bulk({"index": {"_index": "x"}}, {}))
        assert status == 401
        status, _ = await post(es, bulk({"index": {"_index": "x"}}, {}),
                               Authorization="ApiKey a2V5")
        assert status == 200
        auth = aiohttp.encode_basic_auth("elastic", "s3cret")
        status, _ = await post(es, bulk({"index": {"_index": "x"}}, {}), Authorization=auth)
        assert status == 200


async def test_faults():
    async with EsDouble(seed=1) as es:
        es.faults.reject_429 = 1
        es.faults.fail_5xx = 1
        assert (await post(es, bulk({"index": {"_index": "x"}}, {})))[0] == 429
        assert (await post(es, bulk({"index": {"_index": "x"}}, {})))[0] == 503
        es.faults.item_failure_rate = 0.5
        _, resp = await post(es, bulk(*[p for i in range(40) for p in (
            {"index": {"_index": "x", "_id": str(i)}}, {"i": i})]))
        statuses = {i["index"]["status"] for i in resp["items"]}
        assert statuses == {201, 429}
        es.faults.item_failure_rate = 0
        es.faults.reset = 1
        with pytest.raises(aiohttp.ClientError):
            await post(es, bulk({"index": {"_index": "x"}}, {}))
        es.faults.hang = 1
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(post(es, bulk({"index": {"_index": "x"}}, {})), 0.2)
        await es.go_down()
        with pytest.raises(aiohttp.ClientConnectionError):
            await post(es, bulk({"index": {"_index": "x"}}, {}))
        await es.come_back()
        assert (await post(es, bulk({"index": {"_index": "x"}}, {})))[0] == 200


@pytest.mark.services
def test_process_mode_prints_url_and_takes_faults_over_http():
    proc = subprocess.Popen([sys.executable, "-m", "hekapy.benchmarks.es_double",
                             "--flavor", "opensearch2"], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")

        async def go():
            async with aiohttp.ClientSession() as s:
                async with s.post(url + "/_double/faults", json={"reject_429": 1}) as r:
                    assert r.status == 200
                async with s.post(url + "/_bulk", data=bulk({"index": {"_index": "x"}},
                                                            {})) as r:
                    assert r.status == 429
                async with s.get(url + "/_double/stats") as r:
                    assert (await r.json())["rejected_429"] == 1
        asyncio.run(go())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.services
def test_es_setup_installs_the_templates():
    proc = subprocess.Popen([sys.executable, "-m", "hekapy.benchmarks.es_double"],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        r = subprocess.run([*HEKAPY, "es-setup",
                            "--server", url, "--replicas", "0"], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
        assert r.stdout.count("installed index template") == 3

        async def check():
            async with aiohttp.ClientSession() as s:
                async with s.get(url + "/_index_template/log") as resp:
                    body = await resp.json()
                t = body["index_templates"][0]["index_template"]
                assert t["index_patterns"] == ["log-*"]
                props = t["template"]["mappings"]["properties"]
                assert props["http_status"]["type"] == "integer"
                assert props["request_id"]["type"] == "keyword"
                # And it applies: a string in http_status is now refused.
                async with s.post(url + "/_bulk", data=bulk(
                        {"index": {"_index": "log-2024.01.01"}},
                        {"http_status": "oops"})) as resp:
                    assert (await resp.json())["items"][0]["index"]["status"] == 400
        asyncio.run(check())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
