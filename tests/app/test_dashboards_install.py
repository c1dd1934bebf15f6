"""`hekapy dashboards install` against recording doubles of Grafana's and Kibana's /
OpenSearch Dashboards' HTTP APIs (tests/dashboard_doubles.py): the requests it makes
(paths, methods, headers, bodies), that a second run changes nothing and says so, and
that credentials reach the servers but never the terminal."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
from collections.abc import AsyncIterator

import pytest

from tests.dashboard_doubles import GrafanaDouble, KibanaDouble
from tests.helpers.collectors import HEKAPY
from tests.helpers.paths import REPO
from tests.services import make_certificates

DASHBOARDS = REPO / "conf" / "grafana" / "dashboards"
SAVED_OBJECTS = REPO / "conf" / "kibana"
CLI = (*HEKAPY, "dashboards", "install")
SECRETS = {"HEKAPY_GRAFANA_USERNAME": "admin", "HEKAPY_GRAFANA_PASSWORD": "admin-Pa55",
           "HEKAPY_KIBANA_USERNAME": "elastic", "HEKAPY_KIBANA_PASSWORD": "kibana-Pa55",
           "HEKAPY_INFLUXDB_USERNAME": "grafana", "HEKAPY_INFLUXDB_PASSWORD": "influx-Pa55"}


async def hekapy(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HEKAPY_")}
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, env={**clean, **(env if env is not None else SECRETS)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def servers() -> AsyncIterator[tuple[GrafanaDouble, KibanaDouble]]:
    grafana, kibana = GrafanaDouble(), KibanaDouble(password="kibana-Pa55")
    await grafana.start()
    await kibana.start()
    yield grafana, kibana
    await grafana.stop()
    await kibana.stop()


def no_secret_in(*texts: str) -> None:
    for secret in ("admin-Pa55", "kibana-Pa55", "influx-Pa55", "t0ken-Secret"):
        for text in texts:
            assert secret not in text


@pytest.mark.services
async def test_install_then_a_second_run_changes_nothing(servers):
    grafana, kibana = servers
    dashboards = sorted(DASHBOARDS.glob("*.json"))
    files = sorted(SAVED_OBJECTS.glob("*.ndjson"))
    assert dashboards and files
    code, out, err = await hekapy("--grafana", grafana.url, "--kibana", kibana.url,
                                  "--influxdb-url", "http://influx.example:8086")
    assert code == 0, err
    no_secret_in(out, err)

    # Grafana: the datasource, the folder, then each dashboard.
    uids = [json.loads(p.read_text())["uid"] for p in dashboards]
    calls = [(r.method, r.path) for r in grafana.requests]
    assert calls == [("GET", "/api/datasources/uid/hekapy-influxdb"),
                     ("POST", "/api/datasources"),
                     ("GET", "/api/folders/hekapy"), ("POST", "/api/folders"),
                     *[c for uid in uids for c in (("GET", f"/api/dashboards/uid/{uid}"),
                                                   ("POST", "/api/dashboards/db"))]]
    for r in grafana.requests:
        assert r.headers["Authorization"] == "Basic YWRtaW46YWRtaW4tUGE1NQ=="
    ds = grafana.requests[1].body
    assert (ds["uid"], ds["type"], ds["access"], ds["url"], ds["user"]) == (
        "hekapy-influxdb", "influxdb", "proxy", "http://influx.example:8086", "grafana")
    assert ds["jsonData"]["dbName"] == "lma"
    assert ds["secureJsonData"] == {"password": "influx-Pa55"}  # to Grafana, not stdout
    assert grafana.requests[3].body == {"uid": "hekapy", "title": "hekapy"}
    for path, r in zip(dashboards, grafana.requests[5::2], strict=True):
        shipped = json.loads(path.read_text())
        assert r.body["overwrite"] is True and r.body["folderUid"] == "hekapy"
        assert r.body["dashboard"] == {**shipped, "id": None}
    assert "datasource 'hekapy InfluxDB' (uid hekapy-influxdb" in out
    assert out.count("created") == 2 + len(dashboards)

    # Kibana: per file, what is there, then the import with the kbn-xsrf header.
    assert [(r.method, r.path) for r in kibana.requests] == [
        c for _ in files for c in (("POST", "/api/saved_objects/_bulk_get"),
                                   ("POST", "/api/saved_objects/_import?overwrite=true"))]
    for path, r in zip(files, kibana.requests[1::2], strict=True):
        assert r.headers["kbn-xsrf"] == "true" and "osd-xsrf" not in r.headers
        assert r.body["file"] == path.read_bytes()
        assert r.body["_filenames"]["file"] == path.name
    first_get = kibana.requests[0].body
    objects = [json.loads(line) for line in files[0].read_text().splitlines()][:-1]
    assert first_get == [{"type": o["type"], "id": o["id"]} for o in objects]
    total = sum(len(p.read_text().splitlines()) - 1 for p in files)
    assert len(kibana.objects) == total
    assert "done: " in out and "changed" in out

    # Again: reads only, and it says so.
    g_before, k_before = len(grafana.requests), len(kibana.requests)
    k_writes = len(kibana.writes())
    code, out, err = await hekapy("--grafana", grafana.url, "--kibana", kibana.url,
                                  "--influxdb-url", "http://influx.example:8086")
    assert code == 0, err
    assert [r for r in grafana.requests[g_before:] if r.method != "GET"] == []
    assert len(kibana.writes()) == k_writes
    assert [r.path for r in kibana.requests[k_before:]] == [
        "/api/saved_objects/_bulk_get"] * len(files)
    assert f"done: nothing changed ({2 + len(dashboards) + len(files)} already as shipped)" \
        in out


@pytest.mark.services
async def test_a_changed_dashboard_or_datasource_is_updated_alone(servers, tmp_path):
    grafana, _ = servers
    mine = tmp_path / "dashboards"
    mine.mkdir()
    (mine / "a.json").write_text(json.dumps({"uid": "a", "title": "A", "panels": [
        {"type": "timeseries", "datasource": {"type": "influxdb", "uid": "my-influx"}}]}))
    (mine / "b.json").write_text(json.dumps({"uid": "b", "title": "B", "panels": []}))
    args = ("--grafana", grafana.url, "--dashboards-dir", str(mine))
    code, out, err = await hekapy(*args)
    assert code == 0, err
    # The datasource takes the uid the dashboards read.
    assert "my-influx" in grafana.datasources
    (mine / "a.json").write_text(json.dumps({"uid": "a", "title": "A2", "panels": []}))
    before = len(grafana.requests)
    code, out, err = await hekapy(*args, "--influxdb-url", "http://other:8086",
                                  "--datasource-uid", "my-influx")
    assert code == 0, err
    writes = [(r.method, r.path) for r in grafana.requests[before:] if r.method != "GET"]
    assert writes == [("PUT", "/api/datasources/uid/my-influx"),
                      ("POST", "/api/dashboards/db")]
    assert grafana.dashboards["a"]["dashboard"]["title"] == "A2"
    assert grafana.dashboards["a"]["dashboard"]["version"] == 2
    assert grafana.dashboards["b"]["dashboard"]["version"] == 1
    assert "dashboard 'A2' (uid a) updated" in out and "dashboard 'B' (uid b) unchanged" in out
    # The dashboards and --datasource-uid must agree.
    (mine / "c.json").write_text(json.dumps({"uid": "c", "title": "C", "panels": [
        {"datasource": {"type": "influxdb", "uid": "x"}}]}))
    code, _out, err = await hekapy(*args, "--datasource-uid", "other")
    assert code == 1 and "--datasource-uid other, but the dashboards read x" in err


@pytest.mark.services
async def test_a_provisioned_datasource_is_left_alone(servers):
    grafana, _ = servers
    grafana.datasources["hekapy-influxdb"] = {
        "uid": "hekapy-influxdb", "name": "hekapy InfluxDB", "type": "influxdb",
        "url": "http://provisioned:8086", "id": 7, "readOnly": True}
    code, out, err = await hekapy("--grafana", grafana.url)
    assert code == 0, err
    assert "is provisioned from files: left as it is" in out
    assert not any(r.path.startswith("/api/datasources") and r.method != "GET"
                   for r in grafana.requests)


@pytest.mark.services
async def test_refused_credentials_are_a_clear_error_without_the_password(servers):
    grafana, kibana = servers
    env = {**SECRETS, "HEKAPY_GRAFANA_PASSWORD": "t0ken-Secret"}
    code, out, err = await hekapy("--grafana", grafana.url, env=env)
    assert code == 1
    assert (f"error: Grafana at {grafana.url} answered 401 to GET "
            "/api/datasources/uid/hekapy-influxdb: check HEKAPY_GRAFANA_TOKEN") in err
    no_secret_in(out, err)
    # Credentials in the URL are masked too.
    code, out, err = await hekapy("--kibana", kibana.url.replace(
        "http://", "http://elastic:t0ken-Secret@"), env={})
    assert code == 1 and "answered 401" in err and "elastic:***@" not in err
    no_secret_in(out, err)


@pytest.mark.services
async def test_tokens_and_api_keys_from_a_credentials_file(servers, tmp_path):
    grafana, kibana = servers
    grafana.token, kibana.token = "t0ken-Secret", "a2liYW5hLWtleQ=="
    creds = tmp_path / "credentials.toml"
    creds.write_text('[grafana]\ntoken = "t0ken-Secret"\n'
                     '[kibana]\napi_key = "a2liYW5hLWtleQ=="\n')
    creds.chmod(0o644)
    code, out, err = await hekapy("--grafana", grafana.url, "--kibana", kibana.url,
                                  "--credentials", str(creds), env={})
    assert code == 0, err
    assert f"warning: credentials file {creds} is readable by other users" in err
    assert {r.headers["Authorization"] for r in grafana.requests} == {"Bearer t0ken-Secret"}
    assert {r.headers["Authorization"] for r in kibana.requests} == {
        "ApiKey a2liYW5hLWtleQ=="}
    no_secret_in(out, err)
    creds.write_text('[grafana]\ntokn = "x"\n')
    code, _out, err = await hekapy("--grafana", grafana.url, "--credentials", str(creds),
                                   env={})
    assert code == 1 and "[grafana] has unknown key(s) tokn; valid: password, token" in err


@pytest.mark.services
async def test_opensearch_dashboards_header_and_space(tmp_path):
    osd = KibanaDouble(opensearch=True, password="kibana-Pa55")
    await osd.start()
    try:
        code, _out, err = await hekapy("--kibana", osd.url)
        assert code == 1
        assert "Request must contain a osd-xsrf header" in err
        assert "--opensearch-dashboards chooses the header" in err
        code, out, err = await hekapy("--kibana", osd.url, "--opensearch-dashboards",
                                      "--kibana-space", "ops")
        assert code == 0, err
        imports = [r for r in osd.requests if "_import" in r.path]
        assert {r.path for r in imports} == {"/s/ops/api/saved_objects/_import?overwrite=true"}
        assert all(r.headers["osd-xsrf"] == "true" for r in imports)
        assert {s for s, _t, _i in osd.objects} == {"ops"}
        assert "OpenSearch Dashboards: audit.ndjson imported" in out
    finally:
        await osd.stop()


@pytest.mark.services
async def test_tls_verified_with_a_ca_file_or_skipped_on_request(tmp_path):
    certs = make_certificates(tmp_path / "tls")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certs["server_cert"], certs["server_key"])
    grafana = GrafanaDouble()
    await grafana.start(server_tls)
    mine = tmp_path / "d"
    mine.mkdir()
    shutil.copy(sorted(DASHBOARDS.glob("*.json"))[0], mine)
    try:
        args = ("--grafana", grafana.url, "--dashboards-dir", str(mine))
        code, _out, err = await hekapy(*args)
        assert code == 1 and "CERTIFICATE_VERIFY_FAILED" in err
        code, _out, err = await hekapy(*args, "--ca-file", str(certs["ca"]))
        assert code == 0, err
        code, out, err = await hekapy(*args, "--insecure")
        assert code == 0, err
        assert "nothing changed" in out
    finally:
        await grafana.stop()


@pytest.mark.services
async def test_usage_errors():
    code, _out, err = await hekapy()
    assert code == 2 and "give --grafana URL, --kibana URL, or both" in err


def test_the_shipped_files_are_packaged_and_found():
    import fnmatch
    import tomllib

    from hekapy.collector.app.dashboards_install import shipped

    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["hekapy.conf"]
    for path in [*DASHBOARDS.glob("*.json"), *SAVED_OBJECTS.glob("*.ndjson")]:
        rel = str(path.relative_to(REPO / "conf"))
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel
    assert shipped("kibana").resolve() == SAVED_OBJECTS
    assert shipped("grafana/dashboards").resolve() == DASHBOARDS
