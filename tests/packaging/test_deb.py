"""The Debian package (scripts/build-deb, packaging/debian/): it builds on this Debian 12,
lintian finds no error in it, and on this machine (root, as CI runs) it installs, its
command runs the compiled hot path, every role's configuration checks as its unit runs
it, one role's unit command serves /health as the hekapy user, and a purge leaves
nothing behind: no file, no user, no state in /var/cache.

Slow: the build compiles the hot path (about a minute on 2 cores; the wheel is cached in
/tmp under a hash of the source tree) and lintian reads the whole package."""

from __future__ import annotations

import configparser
import grp
import json
import os
import pwd
import queue
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest

from hekapy.collector.engine.config import read_env_file
from tests.helpers.paths import REPO

UNIT_DIR = Path("/lib/systemd/system")
ENV_FILE = Path("/etc/default/hekapy")
ROLES = ("log_collector", "metric_collector", "aggregator", "amqp_collector",
         "amqp_aggregator")
# What an operator writes into /etc/default/hekapy; nothing needs to listen there for
# `check`, and the role started below only retries its outputs. RabbitMQ's is the
# test machine's.
FILLED_IN = {
    "HOSTNAME": "deb-test-node",
    "HEKAPY_DEPLOYMENT_ID": "7",
    "ES_URL": "http://127.0.0.1:9",
    "INFLUXDB_URL": "http://127.0.0.1:9",
    "INFLUXDB_PASSWORD": "deb-test-secret",
    "MANAGEMENT_ADDRESS": "127.0.0.1",
    "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/",
}
# The environment systemd gives a unit before its EnvironmentFile.
SYSTEMD_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG": "C.UTF-8"}
# The log collector's status server: [hekad] status_address's default.
STATUS_URL = "http://127.0.0.1:4352"

pytestmark = [pytest.mark.slow, pytest.mark.services]  # runs hekapy as a daemon


def run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("timeout", 300)
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)


def version() -> str:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    r = run(REPO / "scripts" / "build-deb", "-o", out, timeout=1800)
    assert r.returncode == 0, r.stderr[-5000:]
    arch = run("dpkg", "--print-architecture").stdout.strip()
    deb = out / f"hekapy_{version()}_{arch}.deb"
    assert deb.is_file(), sorted(out.iterdir())
    # Each step said what it did and how long it took.
    assert re.search(r"==> Building hekapy_\S+\.deb \(dpkg-deb\) \.\.\. [\d.]+ s", r.stderr)
    return deb


def test_lintian_finds_no_error(deb):
    r = run("lintian", deb)
    errors = [line for line in r.stdout.splitlines() if line.startswith("E:")]
    assert not errors, r.stdout
    assert r.returncode in (0, 2), r.stdout + r.stderr  # 2: warnings only


def test_control_names_the_dependencies(deb):
    control = run("dpkg-deb", "--field", deb).stdout
    fields = dict(re.findall(r"^([\w-]+): (.*)$", control, re.M))
    assert fields["Package"] == "hekapy" and fields["Version"] == version()
    depends = [d.split()[0] for d in fields["Depends"].split(", ")]
    assert {"adduser", "libc6"} <= set(depends)
    assert any(re.fullmatch(r"python3\.\d+", d) for d in depends), depends
    conffiles = run("dpkg-deb", "--info", deb, "conffiles").stdout.split()
    assert "/etc/default/hekapy" in conffiles
    for role in ROLES:
        assert any(c.startswith(f"/etc/hekapy/{role}/") for c in conffiles), role


def unit(role: str) -> configparser.SectionProxy:
    p = configparser.ConfigParser(strict=False, interpolation=None)
    p.optionxform = str  # systemd keys are case-sensitive
    text = (UNIT_DIR / f"hekapy-{role.replace('_', '-')}.service").read_text()
    p.read_string(text)
    return p["Service"]


def unit_environment(service: configparser.SectionProxy) -> dict[str, str]:
    """What systemd hands the unit's commands: its own variables and EnvironmentFile's."""
    path = service["EnvironmentFile"].removeprefix("-")
    assert path == str(ENV_FILE)
    return {**SYSTEMD_ENV, **read_env_file(path)}


def as_hekapy(command: str) -> list[str]:
    """The unit's command as systemd runs it: as User=hekapy with the user's groups
    (SupplementaryGroups=adm is one of them), no new privileges."""
    return ["setpriv", "--reuid=hekapy", "--regid=hekapy", "--init-groups", "--no-new-privs",
            "--", *shlex.split(command)]


def fill_in_the_environment_file() -> None:
    """Uncomment every variable of the shipped file, with a value, as an operator does."""
    lines = []
    for line in ENV_FILE.read_text().splitlines():
        m = re.fullmatch(r"#([A-Z_]+)=.*", line)
        if m:
            assert m.group(1) in FILLED_IN, f"the test has no value for {m.group(1)}"
            line = f"{m.group(1)}={FILLED_IN[m.group(1)]}"
        lines.append(line)
    ENV_FILE.write_text("\n".join(lines) + "\n")


def used_variables() -> set[str]:
    found: set[str] = set()
    for path in Path("/etc/hekapy").rglob("*.toml"):
        found |= set(re.findall(r"%ENV\[(\w+)\]", path.read_text()))
    return found


def package_contents(deb: Path) -> list[str]:
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True,
                         check=True).stdout
    names = subprocess.run(["tar", "-t"], input=tar, capture_output=True, check=True)
    return [name.removeprefix(".").rstrip("/") or "/"
            for name in names.stdout.decode().splitlines()]


def nothing_of_hekapy_on_the_machine() -> list[str]:
    """What a purge must leave behind: nothing."""
    found = []
    status = run("dpkg-query", "-W", "-f=${Status}", "hekapy").stdout.strip()
    if status not in ("", "unknown ok not-installed"):
        found.append(f"the package hekapy ({status})")
    for path in ["/opt/hekapy", "/etc/hekapy", str(ENV_FILE), "/usr/bin/hekapy",
                 "/usr/share/doc/hekapy", *map(str, UNIT_DIR.glob("hekapy-*.service"))]:
        if os.path.lexists(path):
            found.append(path)
    for name, lookup in (("user", pwd.getpwnam), ("group", grp.getgrnam)):
        try:
            lookup("hekapy")
            found.append(f"the {name} hekapy")
        except KeyError:
            pass
    return found


class Daemon:
    """A started unit command; its stderr lines are queued as they come, so that the
    test waits for the line it needs, never for a fixed time."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, env=env, cwd="/", stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern: str, timeout: float = 60) -> str:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {timeout} s:\n"
                                     + "".join(self.seen)) from None
            if line is None:
                raise AssertionError(f"exited ({self.proc.wait()}) before {pattern!r}:\n"
                                     + "".join(self.seen))
            self.seen.append(line)
            if re.search(pattern, line):
                return line

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=120)


def in_own_network(argv: list[str]) -> list[str]:
    """argv in a network namespace of its own with only a loopback interface: the
    role's fixed status port may be taken on a shared test machine, never in there."""
    return ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
            *argv]


def get_json(pid: int, path: str) -> dict:
    """GET STATUS_URL + path from inside the network namespace of the process pid."""
    fetch = ("import sys, urllib.request\n"
             "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())")
    r = run("nsenter", f"--net=/proc/{pid}/ns/net", "--", sys.executable, "-c", fetch,
            STATUS_URL + path, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_package_installs_runs_as_its_units_say_and_purges_clean(deb):
    assert os.geteuid() == 0, "dpkg -i needs root (CI runs as root)"
    left = nothing_of_hekapy_on_the_machine()
    assert not left, f"hekapy is already on this machine ({left}): dpkg --purge hekapy first"
    state_dirs = [Path("/var/cache") / unit_dir for unit_dir in
                  ("log_collector", "metric_collector", "hekapy-collector", "hekapy-aggregator")]
    assert not [d for d in state_dirs if d.exists()], "state of an earlier install is left"
    contents = package_contents(deb)
    existed_before = {p for p in contents if os.path.lexists(p)}  # /etc, /usr/bin, ...
    daemon: Daemon | None = None
    try:
        r = run("dpkg", "-i", deb, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        assert r.returncode == 0, r.stdout + r.stderr

        # The system user, in adm (which reads /var/log), with no shell.
        user = pwd.getpwnam("hekapy")
        assert user.pw_shell == "/usr/sbin/nologin"
        assert "hekapy" in grp.getgrnam("adm").gr_mem

        said = run("/usr/bin/hekapy", "--version", env=SYSTEMD_ENV)
        assert said.returncode == 0, said.stderr
        assert said.stdout.strip() == f"hekapy {version()} (hot path: compiled)"

        # The environment file names every variable the configurations read, is
        # readable by root only, and, filled in, makes every role's configuration check.
        shipped = ENV_FILE.read_text()
        assert used_variables() <= set(re.findall(r"^#?([A-Z_]+)=", shipped, re.M))
        assert ENV_FILE.stat().st_mode & 0o777 == 0o600
        fill_in_the_environment_file()
        state_of = {}
        for role in ROLES:
            service = unit(role)
            env = unit_environment(service)
            start = service["ExecStart"]
            assert start == f"/usr/bin/hekapy run -c /etc/hekapy/{role}/"
            assert service["ExecStartPre"] == start.replace(" run ", " check ")
            state_of[role] = Path("/var/cache") / service["CacheDirectory"]
            # As the unit runs it (ExecStartPre), and as an operator does by hand.
            for argv, command_env in (
                    (as_hekapy(service["ExecStartPre"]), env),
                    ([*shlex.split(service["ExecStartPre"]), "--env-file", str(ENV_FILE)],
                     SYSTEMD_ENV)):
                checked = run(*argv, env=command_env, cwd="/")
                assert checked.returncode == 0, (role, checked.stdout + checked.stderr)
        assert sorted(set(state_of.values())) == sorted(state_dirs)
        # The aggregator is the metric collector's file (one copy to edit) plus its own.
        linked = Path("/etc/hekapy/aggregator/lma_metric_collector.toml")
        assert linked.is_symlink()
        assert linked.resolve() == Path("/etc/hekapy/metric_collector") / linked.name

        # Every role's state directory, as systemd creates it (CacheDirectory=,
        # CacheDirectoryMode=0750) on the role's first start.
        for d in state_dirs:
            d.mkdir(mode=0o750)
            os.chown(d, user.pw_uid, user.pw_gid)
        service = unit("log_collector")
        daemon = Daemon(in_own_network(as_hekapy(service["ExecStart"])),
                        unit_environment(service))
        daemon.wait_for(r"status server on " + re.escape(STATUS_URL))
        health = get_json(daemon.proc.pid, "/health")
        assert health["status"] in ("ok", "degraded"), health
        stats = get_json(daemon.proc.pid, "/stats")
        # This is the process started here, as hekapy, on the installed package.
        assert stats["pid"] == daemon.proc.pid
        assert stats["hostname"] == FILLED_IN["HOSTNAME"]
        assert stats["hot_path"] == "compiled"
        status = Path(f"/proc/{daemon.proc.pid}/status").read_text()
        assert re.search(rf"^Uid:\s+{user.pw_uid}\s", status, re.M), status
        assert daemon.stop() == 0, "".join(daemon.seen)
        daemon = None

        r = run("dpkg", "--purge", "hekapy")
        assert r.returncode == 0, r.stdout + r.stderr
        left = nothing_of_hekapy_on_the_machine()
        left += [p for p in contents if os.path.lexists(p) and p not in existed_before]
        left += [str(d) for d in state_dirs if d.exists()]
        assert not left, left
    finally:
        if daemon is not None:
            daemon.stop()
        if run("dpkg-query", "-W", "-f=${Status}", "hekapy").stdout.startswith("install"):
            run("dpkg", "--purge", "hekapy")
