"""conf/'s systemd units: one per LMA-equivalent collector, hardened, pointing at the
shipped configuration and at its state directory, and valid for systemd itself
(`systemd-analyze verify`, with the command pointed at this checkout's hekapy)."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hekapy.collector.engine.config import load_config

CONF = Path(__file__).resolve().parent.parent / "conf"
KINDS = ("log", "metric")


def unit(kind: str) -> configparser.ConfigParser:
    p = configparser.ConfigParser(strict=False, interpolation=None)
    p.optionxform = str  # systemd keys are case-sensitive
    p.read(CONF / f"hekapy-{kind}-collector.service")
    return p


@pytest.mark.parametrize("kind", KINDS)
def test_unit_is_hardened_and_restartable(kind):
    s = unit(kind)["Service"]
    assert s["User"] == "hekapy" and s["Group"] == "hekapy"
    assert s["SupplementaryGroups"] == "adm"  # reads /var/log like logrotate's group
    for key, value in {"ProtectSystem": "strict", "ProtectHome": "true",
                       "NoNewPrivileges": "true", "PrivateTmp": "true",
                       "CapabilityBoundingSet": "", "Restart": "on-failure",
                       "KillSignal": "SIGTERM"}.items():
        assert s[key] == value, key
    assert "-HUP" in s["ExecReload"]
    assert int(s["TimeoutStopSec"].rstrip("s")) >= 60  # time to drain and checkpoint


@pytest.mark.parametrize("kind", KINDS)
def test_unit_runs_the_shipped_config_in_its_state_directory(kind, monkeypatch, tmp_path):
    # What /etc/default/hekapy provides (EnvironmentFile).
    for name, value in {"ES_URL": "https://es.example:9200", "HOSTNAME": "node-1",
                        "INFLUXDB_URL": "http://influx.example:8086",
                        "INFLUXDB_PASSWORD": "x", "HEKAPY_DEPLOYMENT_ID": "1",
                        "MANAGEMENT_ADDRESS": "192.0.2.10"}.items():
        monkeypatch.setenv(name, value)
    s = unit(kind)["Service"]
    m = re.fullmatch(r"/usr/bin/hekapy run -c /etc/hekapy/(\w+)/", s["ExecStart"])
    assert m and m.group(1) == f"{kind}_collector"
    assert s["ExecStartPre"] == s["ExecStart"].replace(" run ", " check ")
    shipped = CONF / f"lma_{kind}_collector.toml"
    base_dir = re.search(r'^base_dir = "([^"]+)"', shipped.read_text(), re.M).group(1)
    # The only writable place under ProtectSystem=strict is the CacheDirectory.
    assert base_dir == f"/var/cache/{s['CacheDirectory']}"
    # The directory the unit reads, as the install comment fills it (on controllers the
    # metric_collector's also holds the aggregator role).
    extra = ["lma_aggregator.toml"] if kind == "metric" else []
    for name in [shipped.name, *extra]:
        (tmp_path / name).write_text((CONF / name).read_text())
    config = load_config(str(tmp_path))
    assert not config.errors, config.errors


@pytest.mark.parametrize("kind", KINDS)
def test_systemd_accepts_the_unit(kind, tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (Debian package systemd)"
    hekapy = Path(sys.executable).with_name("hekapy")
    assert hekapy.exists(), hekapy
    text = (CONF / f"hekapy-{kind}-collector.service").read_text()
    copy = tmp_path / f"hekapy-{kind}-collector.service"
    copy.write_text(text.replace("/usr/bin/hekapy", str(hekapy)))
    r = subprocess.run([analyze, "verify", "--man=no", str(copy)], capture_output=True,
                       text=True)
    problems = [ln for ln in (r.stdout + r.stderr).splitlines()
                if copy.name in ln or "Unknown" in ln]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr
