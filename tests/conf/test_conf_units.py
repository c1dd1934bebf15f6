"""conf/'s systemd units: one per role the Debian package installs
(packaging/debian/roles), hardened, pointing at the role's configuration directory and
at its state directory, and valid for systemd itself (`systemd-analyze verify`, with the
command pointed at this checkout's hekapy)."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hekapy.collector.engine.config import load_config
from tests.helpers.paths import CONF, REPO


def roles() -> dict[str, list[str]]:
    """Role → the conf/ files its directory holds, as the package lays them out."""
    out = {}
    for line in (REPO / "packaging" / "debian" / "roles").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            role, *files = line.split()
            out[role] = [Path(f).name for f in files]
    return out


ROLES = roles()
# The roles that tail files under /var/log (the adm group reads them), and those that
# LMA ran, whose units have always had the group.
READS_LOGS = {"log_collector", "metric_collector", "aggregator"}


def unit_path(role: str) -> Path:
    return CONF / f"hekapy-{role.replace('_', '-')}.service"


def unit(role: str) -> configparser.ConfigParser:
    p = configparser.ConfigParser(strict=False, interpolation=None)
    p.optionxform = str  # systemd keys are case-sensitive
    p.read(unit_path(role))
    return p


def test_every_role_has_a_unit_and_every_unit_a_role():
    assert set(ROLES) == {"log_collector", "metric_collector", "aggregator",
                          "amqp_collector", "amqp_aggregator"}
    assert {unit_path(role).name for role in ROLES} == {
        p.name for p in CONF.glob("hekapy-*.service")}


@pytest.mark.parametrize("role", ROLES)
def test_unit_is_hardened_and_restartable(role):
    s = unit(role)["Service"]
    assert s["User"] == "hekapy" and s["Group"] == "hekapy"
    # adm reads /var/log like logrotate's group; a role that reads no log has no group.
    assert s.get("SupplementaryGroups") == ("adm" if role in READS_LOGS else None)
    assert s["EnvironmentFile"] == "-/etc/default/hekapy"
    for key, value in {"ProtectSystem": "strict", "ProtectHome": "true",
                       "NoNewPrivileges": "true", "PrivateTmp": "true",
                       "CapabilityBoundingSet": "", "Restart": "on-failure",
                       "KillSignal": "SIGTERM"}.items():
        assert s[key] == value, key
    assert "-HUP" in s["ExecReload"]
    assert int(s["TimeoutStopSec"].rstrip("s")) >= 60  # time to drain and checkpoint


@pytest.mark.parametrize("role", ROLES)
def test_unit_runs_the_shipped_config_in_its_state_directory(role, monkeypatch, tmp_path):
    # What /etc/default/hekapy provides (EnvironmentFile).
    for name, value in {"ES_URL": "https://es.example:9200", "HOSTNAME": "node-1",
                        "INFLUXDB_URL": "http://influx.example:8086",
                        "INFLUXDB_PASSWORD": "x", "HEKAPY_DEPLOYMENT_ID": "1",
                        "MANAGEMENT_ADDRESS": "192.0.2.10",
                        "RABBITMQ_URL": "amqp://hekapy:x@rabbit.example:5672/"}.items():
        monkeypatch.setenv(name, value)
    s = unit(role)["Service"]
    assert s["ExecStart"] == f"/usr/bin/hekapy run -c /etc/hekapy/{role}/"
    assert s["ExecStartPre"] == s["ExecStart"].replace(" run ", " check ")
    # The directory the unit reads, as the package fills it.
    for name in ROLES[role]:
        (tmp_path / name).write_text((CONF / name).read_text())
    base_dirs = {m for name in ROLES[role] for m in re.findall(
        r'^base_dir = "([^"]+)"', (CONF / name).read_text(), re.M)}
    # The only writable place under ProtectSystem=strict is the CacheDirectory.
    assert base_dirs == {f"/var/cache/{s['CacheDirectory']}"}
    config = load_config(str(tmp_path))
    assert not config.errors, config.errors


def test_the_aggregator_replaces_the_metric_collector():
    # One process on a controller, as LMA ran it: the two units cannot run together.
    assert unit("aggregator")["Unit"]["Conflicts"] == "hekapy-metric-collector.service"
    assert "lma_metric_collector.toml" in ROLES["aggregator"]


def test_roles_that_run_together_have_status_ports_of_their_own():
    # A failed bind is only logged: two roles on one port would leave one unobservable.
    def address(role: str) -> str:
        found = [m for name in ROLES[role] for m in re.findall(
            r'^status_address = "([^"]*)"', (CONF / name.split("/")[-1]).read_text(), re.M)]
        return found[-1] if found else "127.0.0.1:4352"  # hekad's default

    together = [r for r in ROLES if r != "aggregator"]  # it replaces the metric collector
    addresses = {r: address(r) for r in together}
    assert len(set(addresses.values())) == len(together), addresses
    assert all(a.startswith("127.0.0.1:") for a in addresses.values())


@pytest.mark.parametrize("role", ROLES)
def test_systemd_accepts_the_unit(role, tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (Debian package systemd)"
    hekapy = Path(sys.executable).with_name("hekapy")
    assert hekapy.exists(), hekapy
    text = unit_path(role).read_text()
    copy = tmp_path / unit_path(role).name
    copy.write_text(text.replace("/usr/bin/hekapy", str(hekapy)))
    r = subprocess.run([analyze, "verify", "--man=no", str(copy)], capture_output=True,
                       text=True)
    problems = [ln for ln in (r.stdout + r.stderr).splitlines()
                if copy.name in ln or "Unknown" in ln]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr
