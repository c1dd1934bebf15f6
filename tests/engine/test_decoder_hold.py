"""Multi-line decoders in the pipeline: held-back records stay unacknowledged until the
message they belong to is delivered; holds never stall an input; deployment tags."""

from __future__ import annotations

from hekapy.collector.engine.pipeline import Pipeline
from tests.helpers.plugins import CollectOutput, ScriptInput, config_from
from tests.helpers.wait import settle, wait_for

CONFIG = """
    [src]
    type = "ScriptInput"
    decoder = "dec"
    [dec]
    type = "OpenStackLogDecoder"
    tz = "UTC"
    [sink]
    type = "CollectOutput"
    mode = "%s"
    message_matcher = "TRUE"
"""

L = "2015-12-15 10:00:00.123 1234 "


async def test_records_of_a_held_traceback_stay_unacknowledged(tmp_path):
    ScriptInput.script = [
        [L + "ERROR m [-] failed\n", L + "ERROR m Traceback (most recent call last):\n"],
        [L + 'ERROR m   File "x.py", line 1, in f\n'],
        [L + "ERROR m ValueError: boom\n", "2015-12-15 10:00:01 1234 INFO m next\n"],
    ]
    ScriptInput.linger = False
    p = Pipeline(config_from(tmp_path, CONFIG % "hold"))
    await p.start()
    src, sink = ScriptInput.last, CollectOutput.instances["sink"]
    await wait_for(lambda: len(sink.messages) == 3, "three messages")
    assert [m.payload.splitlines()[0] for m in sink.messages] == [
        "[-] failed", "Traceback (most recent call last):", "next"]
    assert sink.messages[1].payload.count("\n") == 3
    first, tb, last = (next(b for b in sink.held if m in b.messages)
                       for m in sink.messages)
    # The first batch's own message is done, but its second record (the traceback's
    # first line) is only safe once the traceback message is: no progress yet.
    first.done()
    for b in sink.held:
        if not b.messages:
            b.done()  # the second batch: all its records are in the traceback
    await settle()
    assert src.acked == []
    # The traceback is stored: positions 1 and 2 are safe; 3 waits for "next", which
    # the decoder held until the input ended.
    tb.done()
    await wait_for(lambda: src.acked == [1, 2], "positions up to the traceback's end")
    await settle()
    assert src.acked == [1, 2]
    last.done()
    await wait_for(lambda: src.acked == [1, 2, 3], "all positions acknowledged")
    await p.stop()


async def test_held_message_is_flushed_after_hold_timeout(tmp_path):
    ScriptInput.script = [[L + "INFO m only line\n"]]
    ScriptInput.linger = True
    p = Pipeline(config_from(tmp_path, (CONFIG % "ack").replace(
        'tz = "UTC"', 'tz = "UTC"\n    hold_timeout = "10ms"')))
    assert p.inputs[0][1].decoder.hold_timeout == 0.01
    await p.start()
    src, sink = ScriptInput.last, CollectOutput.instances["sink"]
    await wait_for(lambda: src.acked == [1], "flush after hold_timeout", timeout=120)
    assert [m.payload for m in sink.messages] == ["only line\n"]
    await p.stop()


async def test_holds_never_fill_the_input_window(tmp_path):
    # Every batch leaves a message held; with an hour-long hold_timeout, only the
    # flush-before-the-window-fills rule lets the input go on.
    ScriptInput.script = [[L + f"INFO m line {i}\n"] for i in range(50)]
    ScriptInput.linger = True
    p = Pipeline(config_from(tmp_path, "[hekad]\npoolsize = 4\n" + CONFIG % "ack"))
    p.inputs[0][1].decoder.hold_timeout = 3600
    await p.start()
    src = ScriptInput.last
    await wait_for(lambda: src.delivered == 50, "every batch delivered")
    await p.stop()
    sink = CollectOutput.instances["sink"]
    assert [m.payload for m in sink.messages] == [f"line {i}\n" for i in range(50)]
    assert src.acked[-1] == 50


async def test_holds_never_fill_the_input_window_by_bytes(tmp_path):
    # The same with the byte budget as the limit (it once waited forever: the window
    # full of held batches, which close only once the held message is delivered).
    line = L + "INFO m " + "x" * 200 + " line %d\n"
    ScriptInput.script = [[line % i] for i in range(60)]
    ScriptInput.linger = True
    p = Pipeline(config_from(tmp_path, "[hekad]\nmax_inflight_bytes = 1500\n"
                             + CONFIG % "ack"))
    p.inputs[0][1].decoder.hold_timeout = 3600
    await p.start()
    src = ScriptInput.last
    await wait_for(lambda: src.delivered == 60, "every batch delivered")
    await p.stop()
    sink = CollectOutput.instances["sink"]
    assert [m.payload.rsplit(" ", 1)[1] for m in sink.messages] == [
        f"{i}\n" for i in range(60)]
    assert src.acked[-1] == 60


async def test_deployment_tags_are_added_unless_present(tmp_path):
    ScriptInput.script = [[L + "INFO m [-] hello\n"]]
    ScriptInput.linger = False
    cfg = config_from(tmp_path, """
        [hekad]
        deployment_tags = { deployment_id = "3", openstack_region = "RegionOne", \
programname = "never-overrides", build = 7 }
    """ + CONFIG % "ack")
    p = Pipeline(cfg)
    await p.start()
    sink = CollectOutput.instances["sink"]
    await wait_for(lambda: len(sink.messages) == 1, "message")
    await p.stop()
    fields = [(f.name, f.values) for f in sink.messages[0].fields]
    assert ("deployment_id", ["3"]) in fields
    assert ("openstack_region", ["RegionOne"]) in fields
    assert ("build", [7]) in fields
    assert [v for n, v in fields if n == "programname"] == [["nova-api"]]


def test_bad_deployment_tag_names_the_key(tmp_path):
    from hekapy.collector.engine.config import load_config
    from tests.helpers.plugins import write_config
    cfg = load_config(write_config(tmp_path, """
        [hekad]
        deployment_tags = { openstack_roles = ["compute"] }
    """))
    assert any("[hekad] deployment_tags.openstack_roles" in str(e) for e in cfg.errors)
