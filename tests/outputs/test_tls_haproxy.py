"""TLS to every server, against a real TLS terminator: HAProxy in front of the
Elasticsearch double and of InfluxDB, presenting a certificate from a private CA and
requiring a client certificate from the same CA (`verify required`). The daemon
(`hekapy run`) ships log documents and log-derived metrics through it with `root_cafile`,
`cert_file` and `key_file`; its passwords never appear in its log. Without a client
certificate HAProxy refuses the handshake; with another CA hekapy refuses the server,
says so, and keeps the documents."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from hekapy.benchmarks.es_double import EsDouble
from tests.fault_harness import (
    Daemon,
    config,
    finish_writer,
    settle_to,
    wait_for,
    write_lines,
)
from tests.helpers.plugins import write_config
from tests.services import free_port, haproxy, influxdb, make_certificates

pytestmark = pytest.mark.services

ES_PASSWORD = "es-s3cret-Pa55"
INFLUX_PASSWORD = "influx-s3cret-Pa55"


def haproxy_config(certs: dict[str, Path], bundle: Path, es_front: int, es_port: int,
                   influx_front: int, influx_port: int) -> str:
    tls = f"ssl crt {bundle} ca-file {certs['ca']} verify required"
    return f"""
global
    log stdout format raw local0 info
defaults
    mode http
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend es_tls
    bind 127.0.0.1:{es_front} {tls}
    default_backend es
backend es
    server es1 127.0.0.1:{es_port}
frontend influx_tls
    bind 127.0.0.1:{influx_front} {tls}
    default_backend influx
backend influx
    server influx1 127.0.0.1:{influx_port}
"""


def daemon_config(state: Path, logs: Path, es_url: str, influx_url: str, tls: str,
                  buffering: bool = False) -> str:
    """The fault suite's daemon (nova-api.log → Elasticsearch) with credentials and
    `tls` for its output, plus LMA's log counter into an InfluxdbOutput over `tls`."""
    output_keys = (f'username = "hekapy"\npassword = "{ES_PASSWORD}"\n'
                   f"[elasticsearch_output.tls]\n{tls}")
    extra = f"""
[logs_counter]
type = "LogCounterFilter"
ticker_interval = 1

[influxdb_output]
type = "InfluxdbOutput"
message_matcher = "Type =~ /metric$/"
url = "{influx_url}"
database = "lma"
username = "hekapy"
password = "{INFLUX_PASSWORD}"
flush_interval = 50
use_buffering = false
[influxdb_output.tls]
{tls}
"""
    return config(state, logs, es_url, buffering=buffering, output_keys=output_keys,
                  extra=extra)


@pytest.fixture
def certs(tmp_path) -> dict[str, Path]:
    certs = make_certificates(tmp_path / "certs")
    bundle = tmp_path / "certs" / "server-bundle.pem"
    bundle.write_text(certs["server_cert"].read_text() + certs["server_key"].read_text())
    certs["bundle"] = bundle
    return certs


async def test_logs_and_metrics_through_a_tls_terminating_haproxy(tmp_path, certs):
    total = 3000
    es_front, influx_front = free_port(), free_port()
    async with EsDouble(username="hekapy", password=ES_PASSWORD) as es, \
            influxdb(tmp_path / "influx") as db:
        await db.query("CREATE DATABASE lma")
        influx_port = int(db.url.rsplit(":", 1)[1])
        cfg = haproxy_config(certs, certs["bundle"], es_front, es.port, influx_front,
                             influx_port)
        (tmp_path / "haproxy").mkdir(exist_ok=True)
        async with haproxy(cfg, tmp_path / "haproxy", wait_port=es_front) as proxy:
            # HAProxy requires a client certificate: a handshake without one fails.
            plain = ssl.create_default_context(cafile=str(certs["ca"]))
            try:
                r, w = await asyncio.open_connection("127.0.0.1", es_front, ssl=plain)
                w.write(b"GET / HTTP/1.0\r\n\r\n")
                await w.drain()
                answer = await r.read()
            except (ssl.SSLError, ConnectionError):
                answer = b""
            assert answer == b"", answer[:200]

            tls = (f'root_cafile = "{certs["ca"]}"\ncert_file = "{certs["client_cert"]}"\n'
                   f'key_file = "{certs["client_key"]}"')
            conf = write_config(tmp_path, daemon_config(
                tmp_path / "state", tmp_path / "logs", f"https://127.0.0.1:{es_front}",
                f"https://127.0.0.1:{influx_front}", tls))
            daemon = Daemon(conf, tmp_path / "hekapy.log")
            await daemon.start()
            writer = await write_lines(tmp_path / "logs", total)
            await finish_writer(writer)
            await settle_to(es, total, daemon)
            rows: list = []

            async def counted() -> bool:  # the counter ticks every second
                nonlocal rows
                rows = await db.query("SELECT sum(value) FROM log_messages WHERE "
                                      "service = 'nova' AND level = 'info'", db="lma")
                return bool(rows) and round(rows[0]["sum"]) >= total

            await wait_for(counted, daemon, "every line counted in InfluxDB", timeout=30,
                           required=False)
            assert await daemon.stop() == 0
            assert proxy.poll() is None
        log = daemon.output()
    assert rows and round(rows[0]["sum"]) == total  # rate x 1 s interval = lines
    assert ES_PASSWORD not in log and INFLUX_PASSWORD not in log


async def test_a_server_from_another_ca_is_refused_and_nothing_is_lost(tmp_path, certs):
    """hekapy trusts only its root_cafile: a server certificate from another CA fails
    the handshake, the error says why, and the documents wait (then arrive once the
    right CA is configured)."""
    other = make_certificates(tmp_path / "other-ca")
    es_front = free_port()
    async with EsDouble(username="hekapy", password=ES_PASSWORD) as es:
        cfg = haproxy_config(certs, certs["bundle"], es_front, es.port, free_port(),
                             free_port())
        (tmp_path / "haproxy").mkdir(exist_ok=True)
        async with haproxy(cfg, tmp_path / "haproxy", wait_port=es_front):
            wrong = (f'root_cafile = "{other["ca"]}"\ncert_file = "{certs["client_cert"]}"\n'
                     f'key_file = "{certs["client_key"]}"')
            text = daemon_config(tmp_path / "state", tmp_path / "logs",
                                 f"https://127.0.0.1:{es_front}", "http://127.0.0.1:9",
                                 wrong, buffering=True)
            conf = write_config(tmp_path, text)
            daemon = Daemon(conf, tmp_path / "hekapy.log")
            await daemon.start()
            writer = await write_lines(tmp_path / "logs", 500)
            await finish_writer(writer)
            await wait_for(lambda: "certificate verify failed" in daemon.output(), daemon,
                           "the refused handshake", timeout=30, required=False)
            assert await daemon.stop() == 0
            assert es.count() == 0
            assert "certificate verify failed" in daemon.output()
            # The right CA: what waited in the disk buffer is delivered.
            right = (f'root_cafile = "{certs["ca"]}"\ncert_file = "{certs["client_cert"]}"\n'
                     f'key_file = "{certs["client_key"]}"')
            conf.write_text(text.replace(wrong, right))
            await daemon.start()
            await settle_to(es, 500, daemon)
            assert await daemon.stop() == 0
    assert ES_PASSWORD not in daemon.output()
