"""The fault-injection suite (marker `faults`, run by CI): the real daemon (`hekapy run`)
tails a log written at full speed into the Elasticsearch double while something breaks:
rotation storms, kill -9 loops, Elasticsearch outages and 429 storms with per-item
failures and mapping conflicts, a full disk under the output buffer, a read-only
journal directory. Each test ends with the exact accounting of tests/fault_harness.py:
lines written = documents stored + dead-lettered + counted drops, no duplicates."""

from __future__ import annotations

import asyncio
import time

import pytest

from hekapy.benchmarks.es_double import EsDouble
from tests.fault_harness import (
    Daemon,
    account,
    config,
    finish_writer,
    mount_tmpfs,
    on_disk_size,
    remount,
    settle_to,
    stream_lines,
    umount,
    wait_for,
    write_lines,
)
from tests.helpers.plugins import write_config

pytestmark = [pytest.mark.faults, pytest.mark.services]


async def start(tmp_path, es: EsDouble, **keys) -> Daemon:
    conf = write_config(tmp_path, config(tmp_path / "state", tmp_path / "logs", es.url,
                                         **keys))
    daemon = Daemon(conf, tmp_path / "hekapy.log")
    await daemon.start()
    return daemon


async def test_rotation_storm_at_full_speed(tmp_path):
    total = 40_000
    async with EsDouble() as es:
        (tmp_path / "logs").mkdir()
        daemon = await start(tmp_path, es)
        writer = await write_lines(tmp_path / "logs", total, rotate_every=1000)
        await finish_writer(writer)
        await settle_to(es, total, daemon)
        assert await daemon.stop() == 0, daemon.output()[-3000:]
        account("rotation storm (40 renames during 40k lines at full speed)", total, es,
                tmp_path / "state")


async def test_kill9_loop(tmp_path):
    total = 40_000
    async with EsDouble() as es:
        (tmp_path / "logs").mkdir()
        daemon = await start(tmp_path, es)
        writer = await write_lines(tmp_path / "logs", total, rotate_every=8000, pause=0.01)
        for _ in range(4):
            await settle_to(es, es.count() + 3000, daemon)
            await daemon.kill9()
            await daemon.start()
        await finish_writer(writer)
        await settle_to(es, total, daemon)
        assert await daemon.stop() == 0
        writes = sum(es.write_counts.values())
        account(f"kill -9, {daemon.kills} times mid-stream, rotations", total, es,
                tmp_path / "state", note=f"{writes - total:,} documents written again "
                "(same _id: at least once)")


async def test_elasticsearch_outage_fills_the_disk_buffer_then_recovers(tmp_path):
    total = 30_000
    async with EsDouble() as es:
        (tmp_path / "logs").mkdir()
        es.faults.down_after = 3000  # down at that point, however fast hekapy is
        daemon = await start(tmp_path, es)
        writer = await write_lines(tmp_path / "logs", total, pause=0.01)
        await settle_to(es, 3000, daemon)
        await finish_writer(writer)
        buffer = tmp_path / "state" / "output_queue" / "elasticsearch_output"
        # Everything read lands in the disk buffer while the server is away.
        await wait_for(lambda: on_disk_size(buffer) >= 1 << 20, daemon,
                       "1 MiB in the disk buffer", required=False)
        peak = on_disk_size(buffer)
        back = time.monotonic()
        es.faults.down = False
        await settle_to(es, total, daemon)
        recovery = time.monotonic() - back
        assert await daemon.stop() == 0
        account("Elasticsearch down mid-stream, back later", total, es, tmp_path / "state",
                note=f"disk buffer peak {peak / 2**20:.1f} MiB, recovered in "
                f"{recovery:.1f} s")


async def test_429_storm_item_failures_and_mapping_conflicts(tmp_path):
    total = 20_000
    async with EsDouble() as es:
        es.faults.reject_429 = 40
        es.faults.item_failure_rate = 0.2
        es.faults.item_failure_status = 429
        es.faults.mapping_conflicts = 25
        (tmp_path / "logs").mkdir()
        daemon = await start(tmp_path, es)
        writer = await write_lines(tmp_path / "logs", total, pause=0.005)
        await finish_writer(writer)
        await settle_to(es, total - 25, daemon)
        assert await daemon.stop() == 0
        row = account("40 bulk 429s, 20 % of items 429, 25 mapping conflicts", total, es,
                      tmp_path / "state")
    assert row["dead-lettered"] == 25


async def test_disk_full_under_the_output_buffer(tmp_path):
    """The buffer directory is a 2 MiB tmpfs and Elasticsearch is down: the buffer hits
    ENOSPC. Reading waits (full_action = block) rather than losing lines; when the
    server returns everything is delivered."""
    total = 30_000
    buffer = tmp_path / "state" / "output_queue" / "elasticsearch_output"
    mount_tmpfs(buffer, "2m")
    try:
        async with EsDouble() as es:
            await es.go_down()
            (tmp_path / "logs").mkdir()
            daemon = await start(tmp_path, es, output_keys="[elasticsearch_output.buffering]"
                                 "\nmax_buffer_size = 0\nfull_action = \"block\"")
            writer = await write_lines(tmp_path / "logs", total)
            await finish_writer(writer)
            await wait_for(lambda: on_disk_size(buffer) >= (2 << 20) - (256 << 10), daemon,
                           "a nearly full buffer file system", required=False)
            assert daemon.alive(), daemon.output()[-3000:]
            await es.come_back()
            await settle_to(es, total, daemon)
            assert await daemon.stop() == 0, daemon.output()[-3000:]
            account("disk full under the output buffer (2 MiB tmpfs), server down", total,
                    es, tmp_path / "state")
    finally:
        umount(buffer)


async def test_read_only_journal_directory(tmp_path):
    """The journal directory turns read-only mid-stream: delivery goes on (journal
    writes fail and are logged), and once writable again the journal catches up: after
    a clean stop it points at the end of the log."""
    import json
    total = 30_000
    journals = tmp_path / "state" / "logstreamer"
    mount_tmpfs(journals, "4m")
    try:
        async with EsDouble() as es:
            (tmp_path / "logs").mkdir()
            daemon = await start(tmp_path, es)
            writer = await write_lines(tmp_path / "logs", total, pause=0.01)
            await settle_to(es, 5000, daemon)
            remount(journals, "ro")
            await finish_writer(writer)
            await settle_to(es, total, daemon)
            # A journal write comes within a second.
            await wait_for(lambda: "cannot write journal" in daemon.output(), daemon,
                           "a failed journal write", timeout=30, required=False)
            remount(journals, "rw")
            assert await daemon.stop() == 0, daemon.output()[-3000:]
            log = daemon.output()
            account("journal directory read-only mid-stream", total, es,
                    tmp_path / "state")
            [journal] = journals.iterdir()
            position = json.loads(journal.read_text())
    finally:
        umount(journals)
    assert "cannot write journal" in log and "Read-only file system" in log
    assert position["seek"] == (tmp_path / "logs" / "nova-api.log").stat().st_size


async def test_influxdb_restarts_mid_stream(tmp_path):
    """Each line becomes a metric point (PayloadRegexDecoder, its own timestamp) sent by
    InfluxdbOutput with a disk buffer; InfluxDB is restarted twice while they flow."""
    from tests.fault_harness import account_seqs
    from tests.services import influxdb
    total = 20_000
    async with EsDouble() as es, influxdb(tmp_path / "influx") as db:
        await db.query("CREATE DATABASE lma")
        (tmp_path / "logs").mkdir()
        extra = f"""
[metric_decoder]
type = "PayloadRegexDecoder"
match_regex = '^(?P<Timestamp>\\S+ \\S+) \\d+ INFO \\S+ \\[-\\] fault seq=(?P<seq>\\d+) '
timestamp_layout = "2006-01-02 15:04:05.000"
[metric_decoder.message_fields]
Type = "metric"
name = "fault_seq"
value = "%seq%"

[influxdb_output]
type = "InfluxdbOutput"
message_matcher = "Type == 'metric'"
url = "{db.url}"
database = "lma"
flush_interval = 50
flush_count = 1000
retry_delay = "20ms"
retry_max_delay = "500ms"
[influxdb_output.buffering]
full_action = "block"
max_buffer_size = 0
"""
        conf_text = config(tmp_path / "state", tmp_path / "logs", es.url, extra=extra)
        conf_text = conf_text.replace('decoder = "openstack_decoder"',
                                      'decoder = "metric_decoder"')
        daemon = Daemon(write_config(tmp_path, conf_text), tmp_path / "hekapy.log")
        await daemon.start()
        writer = await write_lines(tmp_path / "logs", total, pause=0.02)

        async def points() -> list[int]:
            try:
                rows = await db.query("SELECT value FROM fault_seq", db="lma")
            except Exception:  # restarting
                return []
            return [int(r["value"]) for r in rows]

        async def stored(n: int) -> bool:
            return len(await points()) >= n

        for at in (3000, 9000):
            await wait_for(lambda at=at: stored(at), daemon, f"{at} points")
            await db.restart()
        await finish_writer(writer)
        await wait_for(lambda: stored(total), daemon, f"{total} points", timeout=90,
                       required=False)
        got = await points()
        assert await daemon.stop() == 0, daemon.output()[-3000:]
    account_seqs("InfluxDB restarted twice mid-stream (metric per line)", total, got, [])


LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


async def test_wall_clock_jumps(tmp_path):
    """The wall clock steps an hour forward, then a day back, mid-stream (libfaketime,
    re-read every second; the monotonic clock runs on, as with an NTP step): timers,
    retries and journals do not care, every line is stored once. Index names follow the
    daemon's wall clock here (es_index_from_timestamp = false), which is how the test
    sees that each jump has happened."""
    import os
    from datetime import UTC, datetime, timedelta
    assert os.path.exists(LIBFAKETIME), "libfaketime missing: apt-get install faketime " \
        "(scripts/install-system-deps installs it)"
    first_part = 10_000
    clock = tmp_path / "faketime"
    clock.write_text("+0\n")
    async with EsDouble() as es:
        (tmp_path / "logs").mkdir()
        text = config(tmp_path / "state", tmp_path / "logs", es.url).replace(
            'index = "%{Type}-%{%Y.%m.%d}"\nes_index_from_timestamp = true',
            'index = "%{Type}-%{%Y.%m.%d.%H}"\nes_index_from_timestamp = false')
        daemon = Daemon(write_config(tmp_path, text), tmp_path / "hekapy.log", env={
            "LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(clock),
            "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
        await daemon.start()
        writer = await write_lines(tmp_path / "logs", first_part, rotate_every=5_000)
        await finish_writer(writer)
        await settle_to(es, 3000, daemon)
        # Lines keep coming until both jumps show in the index names, however fast the
        # daemon stores them (a fixed amount could all be stored before a jump).
        stop = asyncio.Event()
        streaming = asyncio.create_task(stream_lines(tmp_path / "logs", first_part, stop))
        clock.write_text("+3600\n")
        ahead = datetime.now(UTC) + timedelta(hours=1)
        await es.wait_count(1, f"log-{ahead:%Y.%m.%d.%H},log-"
                            f"{ahead + timedelta(hours=1):%Y.%m.%d.%H}", timeout=60)
        clock.write_text("-86400\n")
        await es.wait_count(1, f"log-{datetime.now(UTC) - timedelta(days=1):%Y.%m.%d}.*",
                            timeout=60)
        stop.set()
        total = await streaming
        await settle_to(es, total, daemon)
        assert await daemon.stop() == 0, daemon.output()[-3000:]
        indices = sorted(es.indices)
        account("wall clock +1 h, then -1 day, mid-stream", total, es, tmp_path / "state",
                note=f"documents in {len(indices)} hourly indices")
    # The daemon's own log stamps its clean stop a day back.
    [stopped] = [ln for ln in daemon.output().splitlines() if "stopped cleanly" in ln]
    assert stopped.startswith(f"{datetime.now() - timedelta(days=1):%Y-%m-%d}"), stopped


async def test_full_buffer_with_the_drop_policy_counts_every_drop(tmp_path):
    """full_action = "drop" with a 1 MiB buffer while Elasticsearch is down: what does
    not fit is dropped, and every drop is counted (the status server's /stats): lines
    written = stored + dropped, exactly."""
    import aiohttp

    from tests.services import free_port
    total = 30_000
    port = free_port()
    async with EsDouble() as es, aiohttp.ClientSession() as http:
        await es.go_down()
        (tmp_path / "logs").mkdir()
        keys = ('[elasticsearch_output.buffering]\nmax_buffer_size = 1048576\n'
                'max_file_size = 262144\nfull_action = "drop"')
        text = config(tmp_path / "state", tmp_path / "logs", es.url, output_keys=keys)
        text = text.replace('hostname = "fault-1"',
                            f'hostname = "fault-1"\nstatus_address = "127.0.0.1:{port}"')
        daemon = Daemon(write_config(tmp_path, text), tmp_path / "hekapy.log")
        await daemon.start()
        await finish_writer(await write_lines(tmp_path / "logs", total))

        async def output_row() -> dict:
            try:
                async with http.get(f"http://127.0.0.1:{port}/stats") as r:
                    stats = await r.json()
            except aiohttp.ClientError:
                return {"messages_in": 0, "dropped": 0}  # not listening yet
            [row] = [p for p in stats["plugins"] if p["name"] == "elasticsearch_output"]
            return row

        async def routed() -> bool:  # everything routed to the output
            return (await output_row())["messages_in"] >= total

        async def settled() -> bool:
            return es.count() + (await output_row())["dropped"] >= total

        await wait_for(routed, daemon, "every line routed to the output")
        await es.come_back()
        await wait_for(settled, daemon, "every line stored or dropped")
        row = await output_row()
        assert await daemon.stop() == 0
        dropped = row["dropped"]
        assert dropped > 0 and row["buffer"]["dropped"] == dropped
        account("buffer full with full_action = drop, server down", total, es,
                tmp_path / "state", dropped=dropped, note="drops counted in /stats")


async def test_read_only_dead_letter_directory(tmp_path):
    """Mapping conflicts while the dead-letter directory is read-only: the rejected
    documents wait (they are acknowledged only once written), the rest flows, and once
    the directory is writable again they are in the file."""
    total = 5000
    dead = tmp_path / "state" / "dead_letter"
    mount_tmpfs(dead, "1m")
    remount(dead, "ro")
    try:
        async with EsDouble() as es:
            es.faults.mapping_conflicts = 10
            (tmp_path / "logs").mkdir()
            daemon = await start(tmp_path, es)
            await finish_writer(await write_lines(tmp_path / "logs", total))
            await settle_to(es, total - 10, daemon)
            await wait_for(lambda: "cannot write the dead-letter file" in daemon.output(),
                           daemon, "a failed dead-letter write", timeout=30,
                           required=False)
            log = daemon.output()
            assert "cannot write the dead-letter file" in log and "Read-only" in log
            remount(dead, "rw")
            path = dead / "elasticsearch_output.ndjson"
            await wait_for(lambda: path.exists() and len(path.read_bytes().splitlines()) >= 10,
                           daemon, "10 dead-lettered documents", timeout=60, required=False)
            assert await daemon.stop() == 0
            row = account("dead-letter directory read-only during mapping conflicts",
                          total, es, tmp_path / "state")
    finally:
        umount(dead)
    # The refused documents waited for the file (the output never died and resent them).
    assert row["dead-lettered"] == 10 and "restarting" not in daemon.output()
