"""Real services started by tests: HAProxy (Debian package), and a UDP syslog sink to
receive what it logs.

A missing binary is a test failure with the install command, never a skip: .ci/run
installs the packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from tests.helpers.wait import wait_for


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on right now (TCP by default) on 127.0.0.1."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def haproxy_binary() -> str:
    """The haproxy executable; AssertionError saying how to install it when missing."""
    path = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.access(
        "/usr/sbin/haproxy", os.X_OK) else None)
    if path is None:
        raise AssertionError(
            "haproxy is not installed: DEBIAN_FRONTEND=noninteractive apt-get install -y "
            "haproxy (.ci/run installs it)")
    return path


def _output(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-4000:]
    except OSError:
        return ""


def _tail_of(log: Path | None) -> Callable[[], str] | None:
    return (lambda: _output(log)) if log is not None else None


async def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 10.0,
                        log: Path | None = None) -> None:
    """Until something accepts connections on 127.0.0.1:port (AssertionError if the
    process dies first or the timeout passes; with the tail of `log`)."""
    async def accepts() -> bool:
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        w.close()
        return True

    await wait_for(accepts, f"a listener on 127.0.0.1:{port}", timeout=timeout,
                   interval=0.01, process=proc, details=_tail_of(log))


async def wait_for_unix_socket(path: Path, proc: subprocess.Popen, timeout: float = 10.0,
                               log: Path | None = None) -> None:
    """Until a unix socket at `path` accepts connections (a stats socket)."""
    async def accepts() -> bool:
        try:
            _r, w = await asyncio.open_unix_connection(str(path))
        except OSError:
            return False
        w.close()
        return True

    await wait_for(accepts, f"a unix socket at {path}", timeout=timeout, interval=0.01,
                   process=proc, details=_tail_of(log))


async def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM (HAProxy exits in milliseconds), SIGKILL after `timeout`."""
    if proc.poll() is None:
        proc.terminate()
        if not await wait_for(lambda: proc.poll() is not None, "the process to exit",
                              timeout=timeout, interval=0.005, required=False):
            proc.kill()
    proc.wait()


@contextlib.asynccontextmanager
async def haproxy(config: str, directory: Path, wait_port: int | None = None,
                  wait_socket: Path | None = None) -> AsyncIterator[subprocess.Popen]:
    """Run `haproxy -db -f <directory>/haproxy.cfg` (foreground) until the block ends.

    The config is checked with `haproxy -c` first. The block starts once 127.0.0.1:
    `wait_port` accepts connections and/or `wait_socket` (a stats socket) answers.
    HAProxy's own output goes to <directory>/haproxy.out (quoted in failures)."""
    cfg = directory / "haproxy.cfg"
    cfg.write_text(config)
    binary = haproxy_binary()
    check = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, f"haproxy -c: {check.stdout}{check.stderr}"
    if wait_socket is not None:
        wait_socket.unlink(missing_ok=True)  # HAProxy leaves it behind when it exits
    log = directory / "haproxy.out"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        if wait_port is not None:
            await wait_for_port(wait_port, proc, log=log)
        if wait_socket is not None:
            await wait_for_unix_socket(wait_socket, proc, log=log)
        yield proc
    finally:
        await stop_process(proc)
        if wait_socket is not None:
            wait_socket.unlink(missing_ok=True)


class SyslogSink(asyncio.DatagramProtocol):
    """Syslog datagrams received on a UDP port of 127.0.0.1, as text, in order."""

    def __init__(self) -> None:
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.lines.put_nowait(data.decode("utf-8", "replace"))

    async def next_line(self, timeout: float = 10.0) -> str:
        """The next datagram; AssertionError when none comes within `timeout`."""
        try:
            return await asyncio.wait_for(self.lines.get(), timeout)
        except TimeoutError:
            raise AssertionError(f"no syslog datagram on UDP {self.port} within "
                                 f"{timeout} s") from None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def syslog_sink() -> SyslogSink:
    """A SyslogSink bound to a free UDP port (its `port`); close() it when done."""
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(SyslogSink,
                                                          local_addr=("127.0.0.1", 0))
    sink.transport = transport
    sink.port = transport.get_extra_info("sockname")[1]
    return sink


# --- InfluxDB 1.x (Debian's influxdb) -----------------------------------------------------

INFLUXDB_CONFIG = """reporting-enabled = false
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{dir}/meta"
[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
[logging]
  level = "warn"
"""


class InfluxDB:
    """A running influxd: `url`, `query(q)` for InfluxQL (results as dicts), and
    `restart()` (same ports, same data)."""

    def __init__(self, binary: str, conf: Path, log: Path, url: str) -> None:
        self.binary = binary
        self.conf = conf
        self.log = log
        self.url = url
        self.proc: subprocess.Popen | None = None

    async def start(self) -> None:
        import aiohttp
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([self.binary, "-config", str(self.conf)],
                                         stdout=out, stderr=subprocess.STDOUT)
        async with aiohttp.ClientSession() as s:
            async def pings() -> bool:
                try:
                    async with s.get(self.url + "/ping") as r:
                        return r.status == 204
                except aiohttp.ClientError:
                    return False

            await wait_for(pings, "influxd to answer /ping", timeout=30, interval=0.02,
                           process=self.proc, details=lambda: _output(self.log))

    async def stop(self) -> None:
        if self.proc is not None:
            await stop_process(self.proc)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def query(self, q: str, db: str | None = None) -> list[dict]:
        import aiohttp
        params = {"q": q, "epoch": "ms"}
        if db:
            params["db"] = db
        async with aiohttp.ClientSession() as s, s.post(self.url + "/query",
                                                        data=params) as r:
            body = await r.json()
        result = body["results"][0]
        assert "error" not in result, result["error"]
        rows = []
        for series in result.get("series", []):
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                row["_measurement"] = series["name"]
                row.update(series.get("tags", {}))
                rows.append(row)
        return rows


@contextlib.asynccontextmanager
async def influxdb(directory: Path) -> AsyncIterator[InfluxDB]:
    """influxd with its data under `directory`, on free loopback ports."""
    binary = shutil.which("influxd") or "/usr/bin/influxd"
    if not os.path.exists(binary):
        raise AssertionError("influxd is not installed: apt-get install influxdb "
                             "(scripts/install-system-deps installs it)")
    http_port, rpc_port = free_port(), free_port()
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "influxdb.conf"
    conf.write_text(INFLUXDB_CONFIG.format(dir=directory, http_port=http_port,
                                           rpc_port=rpc_port))
    db = InfluxDB(binary, conf, directory / "influxd.log", f"http://127.0.0.1:{http_port}")
    try:
        await db.start()
        yield db
    finally:
        await db.stop()


def make_certificates(directory: Path) -> dict[str, Path]:
    """A test CA, a server certificate for 127.0.0.1/localhost and a client certificate,
    made with the openssl CLI: paths under keys ca, server_cert, server_key,
    client_cert, client_key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise AssertionError("openssl is not installed (scripts/install-system-deps)")
    directory.mkdir(parents=True, exist_ok=True)
    d = directory

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=hekapy test CA", "-keyout", "ca.key", "-out", "ca.pem")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for who in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}", "-keyout",
            f"{who}.key", "-out", f"{who}.csr")
        run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", f"{who}.pem")
    return {"ca": d / "ca.pem", "server_cert": d / "server.pem", "server_key": d / "server.key",
            "client_cert": d / "client.pem", "client_key": d / "client.key"}


async def collectd(directory: Path, url: str, interval: float = 0.2,
                   plugins: tuple[str, ...] = ("load", "memory", "cpu"),
                   plugin_config: str = "") -> subprocess.Popen:
    """Debian's collectd (foreground) posting its `plugins`' values every `interval`
    seconds with write_http in JSON to `url`, as LMA configured it (StoreRates);
    `plugin_config`: their <Plugin> blocks."""
    binary = shutil.which("collectd") or "/usr/sbin/collectd"
    if not os.path.exists(binary):
        raise AssertionError("collectd is not installed: apt-get install collectd-core "
                             "libyajl2 (scripts/install-system-deps installs them)")
    directory.mkdir(parents=True, exist_ok=True)
    loads = "\n".join(f"LoadPlugin {p}" for p in plugins)
    conf = directory / "collectd.conf"
    conf.write_text(f"""
Hostname "node-1"
FQDNLookup false
Interval {interval}
BaseDir "{directory}"
PIDFile "{directory}/collectd.pid"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "{directory}/collectd.log"
</Plugin>
{loads}
{plugin_config}
LoadPlugin write_http
<Plugin write_http>
  <Node "hekapy">
    URL "{url}"
    Format "JSON"
    StoreRates true
  </Node>
</Plugin>
""")
    return subprocess.Popen([binary, "-f", "-C", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


class RabbitMQ:
    """A private RabbitMQ node (Debian's) on free loopback ports with its own epmd, its
    data under `directory`; `url`, and `stop`/`start` to restart it mid-test (its mnesia
    directory, and so its durable queues, survive a restart)."""

    def __init__(self, directory: Path) -> None:
        server = RABBITMQ_BIN / "rabbitmq-server"
        if not server.exists():
            raise AssertionError("rabbitmq-server is not installed: apt-get install "
                                 "rabbitmq-server (scripts/install-system-deps installs it)")
        self.directory = directory
        self.port, self.dist_port, self.epmd_port = free_port(), free_port(), free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.rabbit_url = f"rabbit://guest:guest@127.0.0.1:{self.port}/"  # oslo.messaging
        (directory / "home").mkdir(parents=True, exist_ok=True)
        (directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users.guest = true\n"
            "log.console = false\nlog.file.level = info\n")
        (directory / "enabled_plugins").write_text("[].\n")
        (directory / "rabbitmq-env.conf").write_text("")
        self.env = {
            **os.environ, "HOME": str(directory / "home"),
            "RABBITMQ_NODENAME": f"hekapy{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1", "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(directory / "log"),
            "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(directory / "rabbit.pid"),
            "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface "
                                                   "{127,0,0,1}",
            "PATH": f"{RABBITMQ_BIN}:{os.environ.get('PATH', '')}",
        }
        self.proc: subprocess.Popen | None = None

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"AMQP\x00\x00\x09\x01")
                return s.recv(1)[:1] == b"\x01"  # Connection.Start
        except OSError:
            return False

    async def start(self, timeout: float = 60.0) -> None:
        log = open(self.directory / "server.out", "ab")  # the child keeps it
        self.proc = subprocess.Popen([str(RABBITMQ_BIN / "rabbitmq-server")], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        # The broker offers no event before it listens: ask it every 0.1 s.
        await wait_for(lambda: asyncio.to_thread(self._ready), "rabbitmq-server to speak AMQP",
                       timeout=timeout, interval=0.1, process=self.proc,
                       details=lambda: _output(self.directory / "server.out"))

    async def stop(self) -> None:
        """A clean stop (the script traps TERM and runs rabbitmqctl stop), then epmd."""
        if self.proc is None:
            return
        beam = None
        with contextlib.suppress(OSError, ValueError):
            beam = int((self.directory / "rabbit.pid").read_text().strip())
        await stop_process(self.proc, timeout=30)
        self.proc = None
        for pid in filter(None, [beam, *self._epmd_pids()]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        await wait_for(lambda: asyncio.to_thread(self._port_free),
                       f"the AMQP port {self.port} to be free", interval=0.05)

    def _port_free(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) != 0

    def _epmd_pids(self) -> list[int]:
        """Our epmd daemonises and outlives the broker: found by its private port."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if (entry / "comm").read_text().strip() != "epmd":
                    continue
                env = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"ERL_EPMD_PORT={self.epmd_port}".encode() in env:
                pids.append(int(entry.name))
        return pids


@contextlib.asynccontextmanager
async def rabbitmq(directory: Path) -> AsyncIterator[RabbitMQ]:
    broker = RabbitMQ(directory)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()
