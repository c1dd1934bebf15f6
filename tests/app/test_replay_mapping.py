"""Which archived file `hekapy replay` gives to which section (collector/app/replay_plan.py):
a node's /var/log as an operator archives it (nova with rotated and compressed copies,
neutron with the LBaaS agent and a file the neutron section does not list, Keystone
behind Apache with a dated copy, haproxy.log and its rotations, stray files), mapped
with the shipped LMA and quickstart configurations from the archived log folder itself
and from a folder above it; ambiguous roots, --live-dir, --dry-run's lines."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hekapy.collector.app.replay_plan import (
    LIVE,
    PlanError,
    agreement,
    plan,
    split_rotation,
)
from hekapy.collector.engine.config import Config, load_config
from tests.helpers.collectors import HEKAPY
from tests.helpers.paths import TESTS
from tests.helpers.replay import DAY, write_log

CONF = TESTS.parent / "conf"


def node_archive(log: Path) -> None:
    """A copy of a controller's /var/log, written under `log`."""
    write_log(log / "nova/nova-api.log.2.gz", "nova-api", 40, DAY, 1, compress=True)
    write_log(log / "nova/nova-api.log.1", "nova-api", 40, DAY + 40, 2)
    write_log(log / "nova/nova-api.log", "nova-api", 40, DAY + 80, 3)
    write_log(log / "nova/nova-compute.log", "nova-compute", 40, DAY, 4)
    write_log(log / "neutron/server.log", "neutron-server", 40, DAY, 5)
    write_log(log / "neutron/lbaas-agent.log", "lbaas-agent", 40, DAY, 6)
    (log / "neutron/empty.log").write_bytes(b"")
    write_log(log / "apache2/keystone_wsgi_main_access.log-20251122", "keystone", 40,
              DAY - 86400, 7)
    write_log(log / "apache2/keystone_wsgi_main_access.log", "keystone", 40, DAY, 8)
    write_log(log / "haproxy.log.3.gz", "haproxy", 40, DAY, 9, compress=True)
    write_log(log / "haproxy.log.2.gz", "haproxy", 40, DAY + 40, 10, compress=True)
    write_log(log / "haproxy.log.1", "haproxy", 40, DAY + 80, 11)
    write_log(log / "haproxy.log", "haproxy", 40, DAY + 120, 12)
    (log / "dpkg.log").write_text("2025-11-23 06:25:01 status installed man-db:amd64\n")
    (log / "README").write_text("archived from ctl-1\n")
    (log / "apt").mkdir()
    (log / "apt/history.log").write_text("Start-Date: 2025-11-23  06:25:00\n")


STRAY = {"dpkg.log", "README", "apt/history.log"}


@pytest.fixture
def lma(monkeypatch) -> Config:
    monkeypatch.setenv("HOSTNAME", "ctl-1")
    monkeypatch.setenv("HEKAPY_DEPLOYMENT_ID", "1")
    monkeypatch.setenv("ES_URL", "http://127.0.0.1:9200")
    return load_config(CONF / "lma_log_collector.toml", strict=True)


@pytest.fixture
def quickstart(monkeypatch, tmp_path) -> Config:
    monkeypatch.setenv("HEKAPY_DATA", str(tmp_path / "quickstart-data"))
    return load_config(CONF / "quickstart.toml", strict=True)


def mapping(p, log: Path) -> dict[str, tuple[str, str, str]]:
    """relative path → (section, stream, decoder)."""
    return {str(Path(t.path).relative_to(log)): (t.section, t.stream, t.decoder)
            for t in p.tasks}


LMA_EXPECTED = {
    "nova/nova-api.log.2.gz": ("nova_logstreamer", "nova_nova-api", "openstack_decoder"),
    "nova/nova-api.log.1": ("nova_logstreamer", "nova_nova-api", "openstack_decoder"),
    "nova/nova-api.log": ("nova_logstreamer", "nova_nova-api", "openstack_decoder"),
    "nova/nova-compute.log": ("nova_logstreamer", "nova_nova-compute", "openstack_decoder"),
    "neutron/server.log": ("neutron_logstreamer", "neutron_server", "openstack_decoder"),
    "neutron/lbaas-agent.log": ("neutron_logstreamer", "neutron_lbaas-agent",
                                "openstack_decoder"),
    "apache2/keystone_wsgi_main_access.log-20251122": (
        "keystone_wsgi_logstreamer", "keystone-wsgi-main", "keystone_wsgi_decoder"),
    "apache2/keystone_wsgi_main_access.log": (
        "keystone_wsgi_logstreamer", "keystone-wsgi-main", "keystone_wsgi_decoder"),
    # LMA's haproxy file_match has no Seq group: the rotated copies are still its own.
    "haproxy.log.3.gz": ("haproxy_logstreamer", "system.haproxy.log", "haproxy_decoder"),
    "haproxy.log.2.gz": ("haproxy_logstreamer", "system.haproxy.log", "haproxy_decoder"),
    "haproxy.log.1": ("haproxy_logstreamer", "system.haproxy.log", "haproxy_decoder"),
    "haproxy.log": ("haproxy_logstreamer", "system.haproxy.log", "haproxy_decoder"),
}


@pytest.mark.parametrize("root", ["node", "varlog"])
def test_lma_maps_every_file_to_its_live_files_section(lma, tmp_path, root):
    log = tmp_path / "ctl-1" / "var" / "log"
    node_archive(log)
    archive_root = tmp_path / "ctl-1" if root == "node" else log
    p = plan(lma, [str(archive_root)])
    assert [r.live_dir for r in p.roots] == ["/" if root == "node" else "/var/log"]
    assert mapping(p, log) == LMA_EXPECTED
    # neutron's file_match does not list empty.log: not replayed, not another's.
    unmatched = {str(Path(u).relative_to(log)) for u in p.unmatched}
    assert unmatched == STRAY | {"neutron/empty.log"}
    # Oldest first within a stream: by Seq, by rotation number, dated before live.
    order = [str(Path(t.path).relative_to(log)) for t in p.tasks]
    assert order.index("nova/nova-api.log.2.gz") < order.index("nova/nova-api.log.1") \
        < order.index("nova/nova-api.log")
    assert order.index("haproxy.log.3.gz") < order.index("haproxy.log.2.gz") \
        < order.index("haproxy.log.1") < order.index("haproxy.log")
    assert order.index("apache2/keystone_wsgi_main_access.log-20251122") \
        < order.index("apache2/keystone_wsgi_main_access.log")


@pytest.mark.parametrize("root", ["copy", "above", "subfolder"])
def test_quickstart_maps_from_any_root(quickstart, tmp_path, root):
    """quickstart.toml reads `$HEKAPY_DATA/logs`: an archive of it is found whatever
    its folder is called, from a folder above it, or from its nova/ folder alone."""
    source = tmp_path / "src"
    node_archive(source)
    if root == "copy":
        log = tmp_path / "backup-2025-11-23"
        archive_root = log
    elif root == "above":
        log = tmp_path / "ctl-1-data" / "logs"
        archive_root = log.parent
    else:
        log = tmp_path / "saved" / "logs"
        archive_root = log / "nova"
    shutil.copytree(source, log)
    p = plan(quickstart, [str(archive_root)])
    got = mapping(p, log)
    nova = {k: v for k, v in got.items() if k.startswith("nova/")}
    assert nova == {f"nova/{n}": ("openstack_logs", s, "oslo_decoder") for n, s in [
        ("nova-api.log.2.gz", "nova_nova-api"), ("nova-api.log.1", "nova_nova-api"),
        ("nova-api.log", "nova_nova-api"), ("nova-compute.log", "nova_nova-compute")]}
    if root == "subfolder":
        assert got == nova
        return
    assert got["haproxy.log.2.gz"] == ("haproxy_logs", "system.haproxy.log",
                                       "haproxy_decoder")
    assert got["apache2/keystone_wsgi_main_access.log"] == (
        "keystone_wsgi_logs", "keystone-wsgi-main", "keystone_wsgi_decoder")
    # quickstart's own file_match takes any neutron/<name>.log: empty.log is its.
    assert got["neutron/empty.log"] == ("openstack_logs", "neutron_empty", "oslo_decoder")
    unmatched = {str(Path(u).relative_to(log)) for u in p.unmatched}
    assert unmatched == STRAY
    assert len(got) == len(LMA_EXPECTED) + 1


def test_a_root_that_could_be_several_directories_asks_for_live_dir(lma, tmp_path):
    flat = tmp_path / "archive"
    write_log(flat / "api.log", "nova-api", 5, DAY, 1)
    # nova's, keystone's, glance's, cinder's and heat's file_match all take "api.log".
    with pytest.raises(PlanError, match="--live-dir"):
        plan(lma, [str(flat)])
    p = plan(lma, [str(flat)], live_dir="/var/log/nova")
    assert [(t.section, t.stream) for t in p.tasks] == [("nova_logstreamer", "nova_api")]
    # A folder named as the log_directory says it all.
    named = tmp_path / "old" / "keystone"
    write_log(named / "api.log", "nova-api", 5, DAY, 1)
    p = plan(lma, [str(named)])
    assert [(t.section, t.stream) for t in p.tasks] == [("keystone_logstreamer",
                                                          "keystone_api")]


def test_a_file_argument_is_matched_from_its_folder(lma, tmp_path):
    log = tmp_path / "var" / "log"
    node_archive(log)
    p = plan(lma, [str(log / "haproxy.log.2.gz"), str(log / "nova" / "nova-api.log.1")])
    assert [(Path(t.path).name, t.stream) for t in p.tasks] == [
        ("nova-api.log.1", "nova_nova-api"), ("haproxy.log.2.gz", "system.haproxy.log")]


def test_rotation_suffixes():
    assert split_rotation("/v/haproxy.log.12") == ("/v/haproxy.log", (1, -12))
    assert split_rotation("/v/a.log-20261130") == ("/v/a.log", (0, 20261130))
    assert split_rotation("/v/a.log") == ("/v/a.log", None)
    # dated copies, then numbered ones from the highest number, then the live file
    assert sorted([LIVE, (1, -1), (0, 20261130), (1, -3), (0, 20261129)]) == [
        (0, 20261129), (0, 20261130), (1, -3), (1, -1), LIVE]
    # "nova" of /var/log/nova is repeated by an archive folder named nova; "log" too
    assert agreement("/var/log/nova/a.log", "/x/log/nova/a.log", "/var/log/nova") == 2


@pytest.mark.services
def test_dry_run_lines(lma, tmp_path, monkeypatch):
    log = tmp_path / "ctl-1" / "var" / "log"
    node_archive(log)
    r = subprocess.run([*HEKAPY, "replay", "-c", str(CONF / "lma_log_collector.toml"),
                        "--dry-run", str(tmp_path / "ctl-1")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"{tmp_path / 'ctl-1'}\tstands for /"
    assert (f"{log / 'haproxy.log.2.gz'}\tstream system.haproxy.log\tsplitter "
            "TokenSplitter\tdecoder haproxy_decoder\tsection haproxy_logstreamer") in lines
    assert f"{log / 'neutron' / 'empty.log'}\tunmatched: no LogstreamerInput section " \
           "takes it" in lines
    assert len(lines) == 1 + len(LMA_EXPECTED) + len(STRAY) + 1
