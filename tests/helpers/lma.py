"""The shipped LMA configurations as the tests run them: the environment they read,
and the patches that point them at the test's paths and ports."""

from __future__ import annotations

import time

HOST = "node-7"
LMA_ENV = {"HOSTNAME": HOST, "HEKAPY_DEPLOYMENT_ID": "42", "ES_URL": "http://127.0.0.1:9200",
           "INFLUXDB_URL": "http://127.0.0.1:8086", "INFLUXDB_PASSWORD": "lmapass"}


def replace_exactly(text: str, old: str, new: str, count: int = 1) -> str:
    """`text` with `old` replaced; fails when the shipped config no longer has it
    `count` times."""
    assert text.count(old) == count, f"{old!r} appears {text.count(old)} times, not {count}"
    return text.replace(old, new)


def oslo_now() -> str:
    """The current UTC time as oslo.log writes it (milliseconds)."""
    now = time.time()
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"
