"""The router, bounded queues, acknowledgements, restarts and draining."""

from __future__ import annotations

import asyncio

import psutil

from hekapy.collector.engine.pipeline import Pipeline
from tests.helpers.plugins import CollectOutput, config_from
from tests.helpers.wait import settle, wait_for


def _input(p: Pipeline):
    return p.inputs[0]


async def test_messages_flow_through_matcher_to_output(tmp_path):
    cfg = config_from(tmp_path, """
        [src]
        type = "SequenceInput"
        count = 25
        batch = 10
        [wanted]
        type = "CollectOutput"
        message_matcher = "Type == 'test' && Payload =~ /line 1/"
        [everything]
        type = "CollectOutput"
        message_matcher = "TRUE"
        [nothing]
        type = "CollectOutput"
        message_matcher = "FALSE"
    """)
    p = Pipeline(cfg)
    await p.start()
    src, _ = _input(p)
    await src.finished.wait()
    await p.stop()
    out = CollectOutput.instances
    assert len(out["everything"].messages) == 25
    assert [m.payload for m in out["wanted"].messages] == [
        f"line {i}\n" for i in [1, *range(10, 20)]]
    assert out["nothing"].messages == []
    m = out["everything"].messages[0]
    assert (m.type, m.logger, m.hostname) == ("test", "src", cfg.hekad.hostname)
    # Every batch was acknowledged by both outputs; the final checkpoint is the end.
    assert src.acked[-1] == 25 and src.closed_at == 25


async def test_output_that_never_acknowledges_stops_the_input(tmp_path):
    cfg = config_from(tmp_path, """
        [hekad]
        poolsize = 8
        plugin_chansize = 4
        [src]
        type = "SequenceInput"
        count = -1
        batch = 100
        [sink]
        type = "CollectOutput"
        mode = "hold"
        message_matcher = "TRUE"
    """)
    p = Pipeline(cfg)
    await p.start()
    src, ctx = _input(p)
    await wait_for(lambda: ctx.tracker.in_flight == 8, "the in-flight window to fill")
    produced = src.produced
    await settle()
    # Nothing more was read: the input is parked waiting for acknowledgements.
    assert src.produced == produced == 8 * 100
    assert len(CollectOutput.instances["sink"].messages) <= 8 * 100
    assert src.acked == []
    # Acknowledging releases the window and reading resumes, in order.
    for b in CollectOutput.instances["sink"].held[:3]:
        b.done()
    await wait_for(lambda: src.produced > produced, "reading to resume")
    assert src.acked == [100, 200, 300]
    p.stopping.set()
    for t in p._tasks["Input"] + p._tasks["Output"]:
        t.cancel()


async def test_stuck_output_blocks_router_and_memory_stays_bounded(tmp_path):
    cfg = config_from(tmp_path, """
        [hekad]
        poolsize = 1000
        plugin_chansize = 5
        [src]
        type = "SequenceInput"
        count = -1
        batch = 1000
        [sink]
        type = "CollectOutput"
        mode = "stuck"
        message_matcher = "TRUE"
    """)
    rss_before = psutil.Process().memory_info().rss
    p = Pipeline(cfg)
    await p.start()
    src, _ctx = _input(p)
    q = p.outputs[0][1].queue
    await wait_for(lambda: len(q) == 5, "the output queue to fill")
    produced = src.produced
    await settle()
    # The queue holds 5 batches and the input is blocked routing the 6th.
    assert src.produced == produced == 5 * 1000
    assert len(q) == 5
    assert psutil.Process().memory_info().rss - rss_before < 50 << 20
    p.stopping.set()
    for t in p._tasks["Input"] + p._tasks["Output"]:
        t.cancel()


async def test_queue_bound_by_bytes(tmp_path):
    cfg = config_from(tmp_path, """
        [hekad]
        max_queue_bytes = 1000
        [src]
        type = "SequenceInput"
        count = -1
        batch = 50
        [sink]
        type = "CollectOutput"
        mode = "stuck"
        message_matcher = "TRUE"
    """)
    p = Pipeline(cfg)
    await p.start()
    src, _ = _input(p)
    q = p.outputs[0][1].queue
    await wait_for(lambda: q.nbytes >= 1000, "the byte bound")
    await settle()
    # Each batch is ~400 bytes: the 3rd crosses 1000 bytes, the 4th waits in the router.
    assert len(q) == 3
    assert src.produced == 3 * 50
    p.stopping.set()
    for t in p._tasks["Input"] + p._tasks["Output"]:
        t.cancel()


async def test_ack_waits_for_every_matching_output(tmp_path):
    cfg = config_from(tmp_path, """
        [src]
        type = "SequenceInput"
        count = 30
        batch = 10
        [fast]
        type = "CollectOutput"
        message_matcher = "TRUE"
        [slow]
        type = "CollectOutput"
        mode = "hold"
        message_matcher = "Payload =~ /line 1./"
    """)
    p = Pipeline(cfg)
    await p.start()
    src, _ctx = _input(p)
    await src.finished.wait()
    await wait_for(lambda: len(CollectOutput.instances["fast"].messages) == 30, "fast output")
    # Batch 1 (lines 0-9) did not match the slow output: acknowledged by `fast` alone.
    # Batch 2 is held by `slow`, so the watermark stops at 10 even though batch 3 is done.
    assert src.acked == [10]
    held = CollectOutput.instances["slow"].held
    assert len(held) == 1
    held[0].done()
    await wait_for(lambda: src.acked[-1] == 30, "the watermark to pass batch 3")
    assert src.acked == [10, 20, 30]
    await p.stop()


async def test_out_of_order_acks_move_the_watermark_in_order(tmp_path):
    cfg = config_from(tmp_path, """
        [src]
        type = "SequenceInput"
        count = 40
        batch = 10
        [sink]
        type = "CollectOutput"
        mode = "hold"
        message_matcher = "TRUE"
    """)
    p = Pipeline(cfg)
    await p.start()
    src, _ = _input(p)
    held = CollectOutput.instances["sink"].held
    await wait_for(lambda: len(held) == 4, "four held batches")
    held[2].done()
    held[1].done()
    await settle(10)
    assert src.acked == []
    held[0].done()
    assert src.acked == [10, 20, 30]
    held[3].done()
    assert src.acked == [10, 20, 30, 40]
    await p.stop()


async def test_filter_injection_respects_max_message_loops(tmp_path):
    cfg = config_from(tmp_path, """
        [hekad]
        max_message_loops = 3
        [src]
        type = "SequenceInput"
        count = 1
        [ping]
        type = "RelayFilter"
        message_matcher = "Type == 'test' || Type == 'pong'"
        inject_type = "ping"
        [pong]
        type = "RelayFilter"
        message_matcher = "Type == 'ping'"
        inject_type = "pong"
        [sink]
        type = "CollectOutput"
        message_matcher = "TRUE"
    """)
    p = Pipeline(cfg)
    await p.start()
    src, _ = _input(p)
    await src.finished.wait()
    filters = {c.name: (f, c) for f, c, _ in p.filters}
    await wait_for(lambda: filters["ping"][1].stats.dropped + filters["pong"][1].stats.dropped
                   == 1, "the loop limit")
    await p.stop()
    types = [m.type for m in CollectOutput.instances["sink"].messages]
    # original, then 3 re-injections; the 4th is dropped.
    assert types == ["test", "ping", "pong", "ping"]


async def test_filter_cannot_inject_into_itself(tmp_path):
    cfg = config_from(tmp_path, """
        [src]
        type = "SequenceInput"
        count = 3
        [echo]
        type = "RelayFilter"
        message_matcher = "TRUE"
        inject_type = "again"
        [sink]
        type = "CollectOutput"
        message_matcher = "Type == 'again'"
    """)
    p = Pipeline(cfg)
    await p.start()
    await _input(p)[0].finished.wait()
    await p.stop()
    ctx = p.filters[0][1]
    assert ctx.stats.errors == 3 and ctx.stats.injected == 0
    assert CollectOutput.instances["sink"].messages == []


async def test_failed_output_restarts_and_resends_unacknowledged(tmp_path):
    cfg = config_from(tmp_path, """
        [src]
        type = "SequenceInput"
        count = 50
        batch = 10
        [sink]
        type = "CollectOutput"
        mode = "fail:2"
        message_matcher = "TRUE"
        [sink.retries]
        delay = "1ms"
        max_jitter = "0s"
        max_retries = 5
    """)
    p = Pipeline(cfg)
    await p.start()
    src, _ = _input(p)
    await src.finished.wait()
    await wait_for(lambda: src.acked and src.acked[-1] == 50, "all acknowledged")
    await p.stop()
    sink = CollectOutput.instances["sink"]
    assert [m.payload for m in sink.messages] == [f"line {i}\n" for i in range(50)]
    assert p.outputs[0][1].stats.restarts == 2
    assert p.failed is None


async def test_plugin_that_gives_up_stops_hekapy_unless_can_exit(tmp_path):
    text = """
        [src]
        type = "SequenceInput"
        count = 10
        [sink]
        type = "CollectOutput"
        mode = "fail:100"
        message_matcher = "TRUE"
        {can_exit}
        [sink.retries]
        delay = "1ms"
        max_jitter = "0s"
        max_retries = 2
    """
    p = Pipeline(config_from(tmp_path, text.format(can_exit="")))
    await p.start()
    await asyncio.wait_for(p.wait(), 10)
    await p.stop()
    assert "sink" in p.failed

    p = Pipeline(config_from(tmp_path, text.format(can_exit="can_exit = true")))
    await p.start()
    await wait_for(lambda: p.outputs[0][1].queue.closed, "the output to give up")
    await p.stop()
    assert p.failed is None


async def test_stop_drains_every_queue_before_the_final_checkpoint(tmp_path):
    cfg = config_from(tmp_path, """
        [hekad]
        plugin_chansize = 50
        [src]
        type = "SequenceInput"
        count = 1000
        batch = 10
        [counter]
        type = "CounterFilter"
        message_matcher = "TRUE"
        [sink]
        type = "CollectOutput"
        message_matcher = "Type == 'test'"
    """)
    p = Pipeline(cfg)
    await p.start()
    src, _ = _input(p)
    await src.finished.wait()
    await p.stop()
    assert len(CollectOutput.instances["sink"].messages) == 1000
    assert p.filters[0][0].count == 1000
    assert src.closed_at == 1000


async def test_acknowledged_batches_are_not_kept_by_the_output_context(tmp_path):
    """An output's context forgets a batch once it is acknowledged (it kept up to 64
    of them, and their messages, alive: a whole corpus in memory for large batches)."""
    p = Pipeline(config_from(tmp_path, """
        [src]
        type = "SequenceInput"
        count = 3000
        batch = 10
        [sink]
        type = "CollectOutput"
        message_matcher = "TRUE"
    """))
    await p.start()
    src = p.inputs[0][0]
    await wait_for(lambda: src.acked and src.acked[-1] == 3000, "all acknowledged", timeout=120)
    ctx = p.outputs[0][1]
    assert len(ctx._outstanding) <= 1
    await p.stop()


def test_release_memory_gives_freed_heap_back():
    """After a burst is freed, release_memory() returns the heap pages glibc kept."""
    from hekapy.collector.app.gc_tuning import _malloc_trim, release_memory
    assert _malloc_trim is not None, "glibc's malloc_trim not found"

    def rss_mib() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    burst = [bytes(2000) for _ in range(50_000)]  # ~100 MiB outside pymalloc
    pin = bytes(2000)  # allocated after the burst: the heap cannot just shrink at its top
    peak = rss_mib()
    del burst
    release_memory(collect=True)
    assert rss_mib() < peak - 50, (peak, rss_mib())
    del pin
