"""The `hekapy` command end to end, as an operator runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from hekapy.collector import __version__
from tests.helpers.collectors import HEKAPY
from tests.helpers.paths import CONF
from tests.helpers.plugins import write_config
from tests.helpers.wait import wait_for_sync

pytestmark = pytest.mark.services

# A configuration in Heka's own style (CamelCase keys from Heka's docs, a ProcessInput
# chain, a matcher on a field, the default TokenSplitter by name).
NOVA_MATCHER = ("Type == 'ProcessInput' && Fields[ProcessInputName] == 'ProcessInput.stdout'"
                " && Payload =~ /^nova/")
HEKA_TOML = """
[hekad]
maxprocs = 2
base_dir = "{base}"

[ProcessInput]
ticker_interval = 0
splitter = "TokenSplitter"
stdout = true

    [ProcessInput.command.0]
    bin = "/bin/sh"
    args = ["-c", "for i in $(seq 1 500); do echo \\"nova line $i\\"; echo \\"other $i\\"; done"]

    [ProcessInput.command.1]
    bin = "/bin/grep"
    args = ["-v", "other 1"]

[nova_lines]
type = "FileOutput"
MessageMatcher = "{matcher}"
path = "{out}"
encoder = "PayloadEncoder"
flush_interval = "50ms"

[PayloadEncoder]
append_newlines = false

[everything_json]
type = "FileOutput"
message_matcher = "TRUE"
path = "{out_json}"
encoder = "JsonEncoder"

[JsonEncoder]
"""


def complete_lines(path: Path) -> list[str]:
    """The lines of `path` that end in a newline: the writer's last one may be half
    written when we look."""
    data = path.read_bytes() if path.exists() else b""
    return data[:data.rfind(b"\n") + 1].decode().splitlines()


def wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 30
                   ) -> list[str]:
    """The complete lines of the output file, once there are `n`."""
    wait_for_sync(lambda: len(complete_lines(path)) >= n, f"{n} lines in {path}",
                  timeout=timeout, process=proc,
                  details=lambda: str(proc.communicate()[1]) if proc.poll() is not None else "")
    return complete_lines(path)


def test_run_heka_config_then_sigterm_exits_zero(tmp_path):
    out, out_json = tmp_path / "out" / "nova.log", tmp_path / "out" / "all.json"
    conf = write_config(tmp_path, HEKA_TOML.format(base=tmp_path / "state", out=out,
                                                   out_json=out_json, matcher=NOVA_MATCHER))
    proc = subprocess.Popen([*HEKAPY, "run", "-c", str(conf)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = wait_for_lines(out, 500, proc)
    # The grep step removed "other 1", "other 10".. "other 199"; the matcher kept nova.
    assert lines == [f"nova line {i}" for i in range(1, 501)]
    expected_json = 500 + 500 - 111
    docs = [json.loads(x) for x in wait_for_lines(out_json, expected_json, proc)]
    assert docs[0]["Type"] == "ProcessInput" and docs[0]["Logger"] == "ProcessInput"
    assert docs[0]["Fields"][0] == {"name": "ProcessInputName", "value_type": "STRING",
                                    "representation": "", "value": ["ProcessInput.stdout"]}
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped cleanly" in err


def test_check_prints_graph(tmp_path):
    conf = write_config(tmp_path, HEKA_TOML.format(base=tmp_path, out=tmp_path / "o",
                                                   out_json=tmp_path / "j", matcher=NOVA_MATCHER))
    r = subprocess.run([*HEKAPY, "check", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "ProcessInput (ProcessInput) → splitter TokenSplitter → router" in r.stdout
    assert ("router → [Type == 'ProcessInput' && Fields[ProcessInputName] == "
            "'ProcessInput.stdout' && Payload =~ /^nova/] → nova_lines (FileOutput) → "
            "encoder PayloadEncoder (PayloadEncoder)") in r.stdout
    assert "OK: 5 plugins" in r.stdout


def test_check_reports_every_error_and_exits_2(tmp_path):
    conf = write_config(tmp_path, """
        [out]
        type = "FileOutput"
        message_matcher = "Type =="
        encoder = "PayloadEncoder"
        path = "/tmp/x"
        flush_interval = "fast"
        [PayloadEncoder]
        append_newline = true
    """)
    for cmd in ("check", "run"):
        r = subprocess.run([*HEKAPY, cmd, "-c", str(conf)], capture_output=True, text=True)
        assert r.returncode == 2
        errs = [x for x in r.stderr.splitlines() if x.startswith("error:")]
        assert len(errs) == 3, r.stderr
        assert f"error: {conf}: [out] message_matcher: does not parse" in r.stderr
        assert f"error: {conf}: [out] flush_interval: invalid duration 'fast'" in r.stderr
        assert f"error: {conf}: [PayloadEncoder] append_newline: unknown key" in r.stderr
        assert "nothing started" in r.stderr


def test_check_sample_prints_plugin_docs():
    r = subprocess.run([*HEKAPY, "check", "--sample", "FileOutput"], capture_output=True,
                       text=True)
    assert r.returncode == 0
    assert 'type = "FileOutput"' in r.stdout and "flush_operator" in r.stdout


def test_version():
    r = subprocess.run([*HEKAPY, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith(f"hekapy {__version__} (hot path: ")


@pytest.mark.parametrize("conf_path", sorted(
    str(p) for p in CONF.glob("*.toml")))
def test_shipped_configs_check(conf_path, tmp_path):
    # The variables the shipped configs read (quickstart; the LMA and AMQP roles).
    env = {**os.environ, "HEKAPY_DATA": str(tmp_path), "HOSTNAME": "node-1",
           "ES_URL": "http://127.0.0.1:9200", "HEKAPY_DEPLOYMENT_ID": "3",
           "INFLUXDB_URL": "http://127.0.0.1:8086", "INFLUXDB_PASSWORD": "pw",
           "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/",
           "MANAGEMENT_ADDRESS": "192.0.2.10", "AGGREGATOR_ADDRESS": "192.0.2.20",
           "NAGIOS_URL": "http://192.0.2.30:8001/cgi-bin/cmd.cgi", "NAGIOS_USER": "nagios",
           "NAGIOS_PASSWORD": "pw"}
    r = subprocess.run([*HEKAPY, "check", "-c", conf_path], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stderr


def test_quickstart_runs_without_servers_and_stops_cleanly(tmp_path):
    data = tmp_path / "qs"
    proc = subprocess.Popen([*HEKAPY, "quickstart", "--data-dir", str(data), "--rate", "200"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        docs = [json.loads(d) for d in
                wait_for_lines(data / "output" / "openstack.json", 500, proc)]
        assert all(d["Type"] == "log" for d in docs)
        by_logger = {d["Logger"]: d for d in docs}
        assert {"openstack.nova", "openstack.neutron", "openstack.keystone",
                "system.haproxy"} <= set(by_logger)
        nova = by_logger["openstack.nova"]
        assert nova["Pid"] > 0 and nova["Severity"] in (3, 4, 6, 7)
        fields = {f["name"]: f["value"][0] for f in nova["Fields"]}
        assert fields["programname"] and fields["deployment_id"] == "quickstart"
        haproxy = {f["name"]: f["value"][0] for f in by_logger["system.haproxy"]["Fields"]}
        assert haproxy["haproxy_backend"] and haproxy["http_status"] >= 200
        keystone = {f["name"]: f["value"][0]
                    for f in by_logger["openstack.keystone"]["Fields"]}
        assert keystone["http_method"] in ("GET", "POST")
    finally:
        proc.send_signal(signal.SIGINT)  # never leave the collector running
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped cleanly" in err
    journals = list((data / "state" / "logstreamer").iterdir())
    assert journals and all(json.loads(j.read_text())["seek"] > 0 for j in journals)



def test_cat_prints_a_heka_stream(tmp_path):
    """`hekapy cat` as heka-cat: RST text or JSON lines, --match, --head, garbage
    between frames skipped and counted."""
    import gzip

    from hekapy.collector.engine.message import STRING, Field, Message
    from hekapy.collector.engine.protobuf import encode_message, frame
    msgs = [Message(type="log", logger="openstack.nova", payload=f"line {i}",
                    severity=i % 8, fields=[Field("programname", ["nova-api"], STRING)])
            for i in range(20)]
    path = tmp_path / "stream.heka.gz"
    path.write_bytes(gzip.compress(b"garbage" + b"".join(frame(encode_message(m))
                                                         for m in msgs)))
    r = subprocess.run([*HEKAPY, "cat", "--head", "3", str(path)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(":Payload: line") == 3
    assert ':Logger: openstack.nova' in r.stdout and 'name:"programname"' in r.stdout
    assert "7 byte(s) of garbage skipped" in r.stderr
    r = subprocess.run([*HEKAPY, "cat", "--format", "json", "--match", "Severity == 3",
                        str(path)], capture_output=True, text=True)
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["Payload"] for d in docs] == ["line 3", "line 11", "line 19"]
    r = subprocess.run([*HEKAPY, "cat", "--match", "Severity ==", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--match" in r.stderr


def test_cat_of_a_file_that_is_not_a_heka_stream_says_so(tmp_path):
    path = tmp_path / "nova-api.log"
    path.write_text("2026-12-07 10:00:00.000 12 INFO nova.api [-] not a Heka frame\n")
    r = subprocess.run([*HEKAPY, "cat", str(path)], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"{path} is not a Heka stream: no Heka frame in its 62 byte(s)" in r.stderr
    empty = tmp_path / "empty.heka"
    empty.touch()
    r = subprocess.run([*HEKAPY, "cat", str(empty)], capture_output=True, text=True)
    assert r.returncode == 0 and "0 message(s) shown" in r.stderr


def test_heka_spelling_of_the_config_flag(tmp_path):
    """hekad's `-config=FILE` (Go flag syntax) works as `--config FILE`, and alone it
    runs the collector as hekad did."""
    conf = tmp_path / "hekad.toml"
    conf.write_text('[hekad]\nbase_dir = "%s"\nstatus_address = ""\n'
                    '[LogOutput]\nmessage_matcher = "FALSE"\nencoder = "PayloadEncoder"\n'
                    '[PayloadEncoder]\n' % (tmp_path / "state"))
    for args in (["check", f"-config={conf}"], ["check", "-config", str(conf)]):
        r = subprocess.run([*HEKAPY, *args], capture_output=True, text=True)
        assert r.returncode == 0, (args, r.stderr)
    from hekapy.collector.app.cli import heka_spelling
    assert heka_spelling([f"-config={conf}"]) == ["run", f"--config={conf}"]
    assert heka_spelling(["-config", "x.toml"]) == ["run", "--config", "x.toml"]
    assert heka_spelling(["replay", "-config=x.toml", "a"]) == ["replay", "--config=x.toml",
                                                                  "a"]


def test_demo_has_its_own_help():
    r = subprocess.run([*HEKAPY, "demo", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for option in ("--dir", "--rate", "--seed", "--duration", "--rotate-bytes"):
        assert option in r.stdout


def test_demo_writes_openstack_logs(tmp_path):
    r = subprocess.run([*HEKAPY, "demo", "--dir", str(tmp_path), "--duration", "0.5",
                        "--rate", "200"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "nova" / "nova-api.log").stat().st_size > 0
    assert r.stdout.startswith("wrote ")
