"""`hekapy es-setup`: index templates and the retention policy, ILM on Elasticsearch and
ISM on OpenSearch, against the Elasticsearch double run as its own process."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from hekapy.benchmarks.es_double import start_process
from tests.helpers.collectors import HEKAPY

pytestmark = pytest.mark.services


@pytest.fixture
def es(request) -> Iterator[str]:
    """The double's URL; the flavor and flags come from the test's parameter."""
    flags = getattr(request, "param", ("--flavor", "es8"))
    proc, url = start_process(*flags)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def call(url: str, method: str = "GET", body: object = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def store(url: str, index: str) -> None:
    body = (json.dumps({"index": {"_index": index}}) + "\n"
            + json.dumps({"Payload": "x"}) + "\n").encode()
    req = urllib.request.Request(url + "/_bulk", data=body, method="POST",
                                 headers={"Content-Type": "application/x-ndjson"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert not json.loads(r.read())["errors"]


def es_setup(url: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*HEKAPY, "es-setup",
                           "--server", url, "--replicas", "0", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_elasticsearch_gets_an_ilm_policy_named_by_the_templates(es):
    store(es, "log-2020.01.01")  # an index from before es-setup
    r = es_setup(es, "--retention-days", "7")
    assert r.returncode == 0, r.stderr
    assert "Elasticsearch 8." in r.stdout and "(ILM) installed" in r.stdout
    status, policy = call(es + "/_ilm/policy/hekapy-retention")
    assert status == 200
    assert policy["hekapy-retention"]["policy"] == {
        "phases": {"delete": {"min_age": "7d", "actions": {"delete": {}}}}}
    for name in ("log", "notification", "audit"):
        _, t = call(es + f"/_index_template/{name}")
        settings = t["index_templates"][0]["index_template"]["template"]["settings"]
        assert settings["index.lifecycle.name"] == "hekapy-retention"
    # A new index gets the policy from its template, the old one from es-setup.
    store(es, "audit-2026.01.02")
    for index in ("audit-2026.01.02", "log-2020.01.01"):
        _, s = call(es + f"/{index}/_settings")
        assert s[index]["settings"]["index.lifecycle.name"] == "hekapy-retention"
    # Again, with another retention: the policy follows.
    r = es_setup(es, "--retention-days", "30")
    assert r.returncode == 0, r.stderr
    _, policy = call(es + "/_ilm/policy/hekapy-retention")
    assert policy["hekapy-retention"]["policy"]["phases"]["delete"]["min_age"] == "30d"
    assert policy["hekapy-retention"]["version"] == 2


@pytest.mark.parametrize("es", [("--flavor", "opensearch2")], indirect=True)
def test_opensearch_gets_an_ism_policy_and_no_ilm_setting(es):
    store(es, "notification-2020.01.01")
    r = es_setup(es)
    assert r.returncode == 0, r.stderr
    assert "OpenSearch 2." in r.stdout and "(ISM) created" in r.stdout
    assert "1 put under 'hekapy-retention'" in r.stdout
    status, stored = call(es + "/_plugins/_ism/policies/hekapy-retention")
    assert status == 200
    policy = stored["policy"]
    assert policy["default_state"] == "keep"
    keep, delete = policy["states"]
    assert keep["transitions"] == [{"state_name": "delete",
                                    "conditions": {"min_index_age": "30d"}}]
    assert [next(iter(a)) for a in delete["actions"]] == ["delete"]
    assert sorted(policy["ism_template"][0]["index_patterns"]) == [
        "audit-*", "log-*", "notification-*"]
    # OpenSearch refuses settings it does not know: no ILM name in its templates.
    _, t = call(es + "/_index_template/log")
    assert "index.lifecycle.name" not in t["index_templates"][0]["index_template"][
        "template"]["settings"]
    store(es, "log-2026.01.02")
    _, explain = call(es + "/_plugins/_ism/explain/log-*,notification-*")
    assert explain["log-2026.01.02"]["policy_id"] == "hekapy-retention"
    assert explain["notification-2020.01.01"]["policy_id"] == "hekapy-retention"

    # A second run changes nothing, and says so.
    r = es_setup(es)
    assert r.returncode == 0, r.stderr
    assert "(ISM) unchanged" in r.stdout
    _, again = call(es + "/_plugins/_ism/policies/hekapy-retention")
    assert again["_seq_no"] == stored["_seq_no"]

    # Another retention: an update through OpenSearch's concurrency check, and the
    # managed indices move to the new version.
    r = es_setup(es, "--retention-days", "90")
    assert r.returncode == 0, r.stderr
    assert "(ISM) updated" in r.stdout and "2 put under" in r.stdout
    _, updated = call(es + "/_plugins/_ism/policies/hekapy-retention")
    assert updated["policy"]["states"][0]["transitions"][0]["conditions"] == {
        "min_index_age": "90d"}


@pytest.mark.parametrize("es", [("--flavor", "opensearch2")], indirect=True)
def test_the_double_refuses_a_blind_ism_overwrite_as_opensearch_does(es):
    body = {"policy": {"description": "x", "default_state": "a",
                       "states": [{"name": "a", "actions": [], "transitions": []}]}}
    assert call(es + "/_plugins/_ism/policies/p", "PUT", body)[0] == 201
    assert call(es + "/_plugins/_ism/policies/p", "PUT", body)[0] == 409
    assert call(es + "/_ilm/policy/p", "PUT", {"policy": {"phases": {}}})[0] == 400


def test_retention_zero_installs_no_policy(es):
    r = es_setup(es, "--retention-days", "0")
    assert r.returncode == 0, r.stderr
    assert "retention off" in r.stdout
    assert call(es + "/_ilm/policy/hekapy-retention")[0] == 404
    _, t = call(es + "/_index_template/audit")
    assert "index.lifecycle.name" not in t["index_templates"][0]["index_template"][
        "template"]["settings"]


@pytest.mark.parametrize("es", [("--flavor", "es8", "--username", "elastic",
                                 "--password", "right-one")], indirect=True)
def test_refused_credentials_are_a_clear_error_without_the_password(es):
    r = es_setup(es, env={"HEKAPY_ES_USERNAME": "elastic",
                          "HEKAPY_ES_PASSWORD": "wrong-Pa55word"})
    assert r.returncode == 1
    assert "answered 401 to GET /: check the credentials" in r.stderr
    assert "wrong-Pa55word" not in r.stdout + r.stderr
    r = es_setup(es, env={"HEKAPY_ES_USERNAME": "elastic",
                          "HEKAPY_ES_PASSWORD": "right-one"})
    assert r.returncode == 0, r.stderr


def test_no_server_is_a_clear_error():
    r = subprocess.run([*HEKAPY, "es-setup",
                        "--server", "http://127.0.0.1:9"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1
    assert "error: http://127.0.0.1:9: ClientConnectorError" in r.stderr
