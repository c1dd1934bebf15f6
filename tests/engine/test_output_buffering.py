"""use_buffering on an output: inputs are acknowledged once their batches are on disk;
an outage fills the disk, not memory; what is on disk is delivered after a restart."""

from __future__ import annotations

import psutil

from hekapy.benchmarks.es_double import EsDouble
from hekapy.collector.engine.pipeline import Pipeline
from tests.helpers.plugins import config_from, sequence_to_es_config
from tests.helpers.wait import wait_for


def config(url: str, tmp_path, count: int, buffering: str = "", pad: int = 0) -> str:
    return sequence_to_es_config(url, tmp_path, count, use_buffering=True, pad=pad,
                                 extra="[es.buffering]\nmax_file_size = 1048576\n" + buffering)


async def test_outage_fills_the_disk_and_inputs_are_acknowledged(tmp_path):
    n = 20_000
    async with EsDouble() as es:
        await es.go_down()
        p = Pipeline(config_from(tmp_path, config(es.url, tmp_path, n)))
        await p.start()
        src = p.inputs[0][0]
        buf = p.buffers["es"]
        # With the server down, every batch is still acknowledged: it is on disk.
        await wait_for(lambda: src.acked and src.acked[-1] == n, "input acknowledged",
                       timeout=300)
        assert es.count() == 0 and buf.disk.size_bytes > 1_000_000
        segments = len(list(buf.disk.path.glob("*.log")))
        assert segments > 1
        await es.come_back()
        await es.wait_count(n)
        await wait_for(lambda: buf.disk.size_bytes == 0, "buffer emptied", timeout=300)
        await p.stop()
        assert set(es.write_counts.values()) == {1}
        assert len(list(buf.disk.path.glob("*.log"))) == 1


async def test_restart_delivers_what_waited_on_disk(tmp_path):
    n = 10_000
    async with EsDouble() as es:
        await es.go_down()
        p = Pipeline(config_from(tmp_path, config(es.url, tmp_path, n)))
        await p.start()
        src = p.inputs[0][0]
        await wait_for(lambda: src.acked and src.acked[-1] == n, "on disk", timeout=300)
        await p.stop()  # the server never came back during this run
        assert es.count() == 0
        await es.come_back()
        # The next run has nothing new to read (count = 0): only the buffered documents.
        p2 = Pipeline(config_from(tmp_path, config(es.url, tmp_path, 0)))
        await p2.start()
        await es.wait_count(n)
        await p2.stop()
        assert set(es.write_counts.values()) == {1}
        assert p2.buffers["es"].disk.size_bytes == 0


async def test_memory_stays_flat_while_the_disk_buffer_grows(tmp_path):
    n = 250_000
    proc = psutil.Process()
    async with EsDouble() as es:
        await es.go_down()
        p = Pipeline(config_from(tmp_path, config(es.url, tmp_path, n, pad=600)))
        await p.start()
        src = p.inputs[0][0]
        # Past the warm-up the output's queue and requests are full: from here on only
        # the disk may grow.
        await wait_for(lambda: src.acked and src.acked[-1] >= 100_000, "warm up",
                       timeout=300)
        rss_before = proc.memory_info().rss
        disk_before = p.buffers["es"].disk.size_bytes
        await wait_for(lambda: src.acked and src.acked[-1] == n, "all on disk", timeout=300)
        grew_disk = p.buffers["es"].disk.size_bytes - disk_before
        grew_rss = proc.memory_info().rss - rss_before
        await p.stop()
    assert grew_disk > 60 << 20
    assert grew_rss < grew_disk / 4, (grew_rss, grew_disk)


async def test_full_action_drop_counts_what_it_drops(tmp_path):
    async with EsDouble() as es:
        await es.go_down()
        p = Pipeline(config_from(tmp_path, config(
            es.url, tmp_path, 20_000, 'max_buffer_size = 500000\nfull_action = "drop"')))
        await p.start()
        src = p.inputs[0][0]
        await wait_for(lambda: src.acked and src.acked[-1] == 20_000, "acknowledged",
                       timeout=300)
        ctx = p.outputs[0][1]
        assert ctx.stats.dropped > 0
        assert p.buffers["es"].disk.size_bytes <= 500_000
        await es.come_back()
        await wait_for(lambda: p.buffers["es"].disk.size_bytes == 0, "drained", timeout=300)
        await p.stop()
        assert es.count() + ctx.stats.dropped == 20_000
