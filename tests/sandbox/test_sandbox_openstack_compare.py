"""The same oslo.log lines through an LMA-style Lua decoder (tests/data/lua/
openstack_log.lua, run by SandboxDecoder with native = false) and through the native
OpenStackLogDecoder, compared header by header and field by field.

Lines: LMA's decoder cases (tests/data/lma/openstack_log.json), the lab capture of
oslo.log output (tests/data/lab/oslo_log_sample.log) and lines of the demo generators
(collector/app/demo.py) for the services hekapy's benchmarks use. The Lua decoder makes
one message per line; the native one merges tracebacks and continuation lines, so each
line is compared alone (the native decoder is flushed after every line).
"""

from __future__ import annotations

import json
import random

import pytest

from hekapy.collector.app.demo import generate
from hekapy.collector.engine.message import Message, new_record_message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.plugin import DecodeError
from hekapy.collector.sandbox.sandbox_decoder import SandboxDecoder
from hekapy.decoders.openstack_log import _LINE_RE, OpenStackLogDecoder
from tests.helpers.paths import LUA, TEST_DATA
from tests.helpers.plugins import config_from


def lma_lines() -> list[tuple[str, str]]:
    cases = json.loads((TEST_DATA / "lma" / "openstack_log.json").read_text())["decoder_cases"]
    out = []
    for case in cases:
        for line in case.get("input_sequence") or [case["input"]]:
            out.append((case["input_logger"], line))
    return out


def lab_lines() -> list[tuple[str, str]]:
    text = (TEST_DATA / "lab" / "oslo_log_sample.log").read_text()
    return [("neutron_lbaas-agent", line) for line in text.splitlines(keepends=True)]


def demo_lines() -> list[tuple[str, str]]:
    rng = random.Random(11)
    out = []
    now = 1_700_000_000.0
    for service, logger in (("nova-api", "nova_nova-api"), ("nova-compute", "nova_nova-compute"),
                            ("neutron-server", "neutron_server"),
                            ("lbaas-agent", "neutron_lbaas-agent")):
        for _ in range(150):
            now += rng.random()
            out.extend((logger, line + "\n") for line in generate(service, rng, now))
    return out


@pytest.fixture(scope="module")
def decoders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    cfg = config_from(tmp, f"""
        [lua]
        type = "SandboxDecoder"
        filename = "{LUA / 'openstack_log.lua'}"
        module_directory = "{LUA / 'modules'}"
        native = false
        [native]
        type = "SandboxDecoder"
        filename = "/usr/share/lma_collector/decoders/openstack_log.lua"
          [native.config]
          tz = "UTC"
    """)
    p = Pipeline(cfg)
    lua, native = p.build_plugin("lua", "Decoder"), p.build_plugin("native", "Decoder")
    assert isinstance(lua, SandboxDecoder) and isinstance(native, OpenStackLogDecoder)
    return lua, native


def record(logger: str, line: str, n: int) -> Message:
    m = new_record_message(1_000, "logfile", logger, "node-1", line)
    m.uuid = n.to_bytes(16, "big")
    return m


def native_one(native: OpenStackLogDecoder, rec: Message) -> Message:
    held = native.decode(rec)
    flushed = native.flush()
    out = ([] if held is None else [held]) + flushed
    assert len(out) == 1
    return out[0]


def fields(m: Message) -> dict[str, tuple]:
    out = {}
    for f in m.fields:
        assert f.name not in out, f"field {f.name} twice"
        out[f.name] = (f.value_type, f.values, f.representation)
    return out


@pytest.mark.parametrize("source", [lma_lines, lab_lines, demo_lines])
def test_lua_and_native_decoders_agree(decoders, source):
    lua, native = decoders
    lines = source()
    compared = 0
    for n, (logger, line) in enumerate(lines):
        if _LINE_RE.match(line) is None:
            with pytest.raises(DecodeError, match=r"not an oslo\.log line"):
                lua.decode(record(logger, line, n))
            continue
        [got] = lua.decode(record(logger, line, n))
        want = native_one(native, record(logger, line, n))
        where = f"{source.__name__} line {n}: {line!r}"
        assert (got.uuid, got.type, got.logger, got.hostname, got.pid, got.severity,
                got.payload, got.env_version) == (
            want.uuid, want.type, want.logger, want.hostname, want.pid, want.severity,
            want.payload, want.env_version), where
        # A Lua number is a double: nanoseconds near 2**60 are exact to 256 ns only.
        assert abs(got.timestamp - want.timestamp) <= 256, where
        assert fields(got) == fields(want), where
        compared += 1
    assert compared >= len(lines) * 0.8
