"""Undecodable input under `hekapy replay` is loud: per file counts with the first
reason in the summary, a file mostly undecodable named and exit code 3 once what did
decode is stored; --max-undecodable moves the line; a file with a few bad lines is
counted, not named. Output that is not a terminal has no control characters."""

from __future__ import annotations

from pathlib import Path

import pytest

from hekapy.benchmarks.es_double import EsDouble
from hekapy.benchmarks.openstack_config import es_output, openstack_logs
from hekapy.collector.app.replay import EXIT_UNDECODABLE
from tests.helpers.plugins import write_config
from tests.helpers.replay import DAY, expected_messages, run_replay
from tests.helpers.replay import events as events_from

pytestmark = pytest.mark.services


def events(service: str, n: int, seed: int) -> list[list[str]]:
    return events_from(service, n, DAY, seed)


def write(path: Path, evs: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for ev in evs for line in ev))


replay = run_replay


async def test_a_mostly_undecodable_file_is_named_and_the_exit_code_says_so(tmp_path):
    archive = tmp_path / "archive"
    good = events("nova-api", 300, 1)
    write(archive / "nova" / "nova-api.log", good)
    # HAProxy's lines where nova-compute's log should be: the OpenStack decoder's.
    haproxy = events("haproxy", 200, 2)
    write(archive / "nova" / "nova-compute.log", haproxy)
    # A few bad lines in an otherwise good file: counted, not named. (They come first:
    # after an oslo.log line, the OpenStack decoder takes a line that is not one as its
    # continuation, as LMA's did.)
    mixed = events("neutron-server", 200, 3)
    mixed_lines = [ln for ev in mixed for ln in ev]
    write(archive / "neutron" / "server.log", [["not a log line"] * 5, *mixed])
    async with EsDouble() as es:
        conf = write_config(tmp_path, openstack_logs(tmp_path / "state", hostname="ctl-1")
                            + es_output(es.url, flush_count=500, flush_interval=20))
        rc, out = await replay(conf, "--workers", "2", str(archive))
        assert rc == EXIT_UNDECODABLE, out
        stored = es.count()
    bad = archive / "nova" / "nova-compute.log"
    assert f"MOSTLY UNDECODABLE (100% > 50%): {bad}, given to openstack_decoder " \
           "(section nova_logstreamer)" in out
    assert f"undecodable: 200 of 200 records in {bad} (first: " in out
    server = archive / "neutron" / "server.log"
    assert f"undecodable: 5 of {len(mixed_lines) + 5} records in {server}" in out
    assert "MOSTLY UNDECODABLE (2%" not in out and f"{server}, given to" not in out
    # Everything that did decode is stored before the replay ends with 3.
    assert stored == expected_messages(good) + expected_messages(mixed)
    # Not a terminal: plain lines only.
    assert "\r" not in out and "\x1b" not in out
    assert out.count("hekapy replay: done in ") == 1


async def test_max_undecodable_is_the_percentage_that_fails(tmp_path):
    archive = tmp_path / "archive"
    write(archive / "nova" / "nova-api.log", events("nova-api", 90, 1))
    # 10 undecodable lines of about 100: over 5%, under 50%.
    write(archive / "nova" / "nova-compute.log",
          [*events("haproxy", 10, 3), *events("nova-compute", 90, 2)])
    async with EsDouble() as es:
        conf = write_config(tmp_path, openstack_logs(tmp_path / "state", hostname="ctl-1")
                            + es_output(es.url, flush_count=500, flush_interval=20))
        rc, out = await replay(conf, str(archive))
        assert rc == 0, out
        rc, out = await replay(conf, "--max-undecodable", "5", str(archive))
        assert rc == EXIT_UNDECODABLE, out
        assert "MOSTLY UNDECODABLE" in out and "nova-compute.log, given to" in out
        rc, out = await replay(conf, "--max-undecodable", "120", str(archive))
        assert rc == 2 and "0 to 100" in out
