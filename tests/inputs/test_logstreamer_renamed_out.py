"""A stream whose file_match has no sequence group (LMA's haproxy.log): logrotate renames
the file out of the stream while hekapy is stopped or reloading. The journaled position
is found in the renamed file by its hash and its rest is read, the files rotated out
after it are read whole, then the new file from its start: nothing lost, nothing twice.
(Found by the soak, benchmarks/soak.py: a SIGHUP during a rotation lost the lines
written between the drain and the rename.)"""

from __future__ import annotations

from tests.helpers.logstreamer import numbered_lines as lines
from tests.helpers.logstreamer import out_messages, payloads
from tests.helpers.logstreamer import start_logstreamer as start
from tests.helpers.plugins import CollectOutput
from tests.helpers.wait import wait_for


async def eventually(condition, what: str) -> None:
    await wait_for(condition, what, timeout=30, interval=0.01)


async def test_rest_of_a_file_renamed_out_of_the_stream_is_read(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    live = logdir / "app.log"
    live.write_bytes(lines("a", 0, 50))
    body = "file_match = 'app\\.log'"
    p = await start(tmp_path, logdir, body)
    await eventually(lambda: len(out_messages()) == 50, "50 messages")
    await p.stop()
    with live.open("ab") as f:
        f.write(lines("a", 50, 60))  # written after the stop, before the rotation
    live.rename(logdir / "app.log.1")  # not matched by file_match any more
    live.write_bytes(lines("b", 0, 20))
    CollectOutput.instances.clear()
    p = await start(tmp_path, logdir, body)
    await eventually(lambda: len(out_messages()) >= 30, "the rest and the new file")
    await p.stop()
    assert sorted(payloads()) == sorted([f"a {i}\n" for i in range(50, 60)]
                                        + [f"b {i}\n" for i in range(20)])


async def test_files_rotated_out_twice_while_stopped_are_all_read(tmp_path):
    """Two rotations during one stop (a reload that drained for long): the journaled
    file is app.log.2 now, and app.log.1 was never seen; both are read."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    live = logdir / "app.log"
    live.write_bytes(lines("a", 0, 50))
    body = "file_match = 'app\\.log'"
    p = await start(tmp_path, logdir, body)
    await eventually(lambda: len(out_messages()) == 50, "50 messages")
    await p.stop()
    with live.open("ab") as f:
        f.write(lines("a", 50, 60))
    live.rename(logdir / "app.log.1")
    live.write_bytes(lines("b", 0, 20))
    (logdir / "app.log.1").rename(logdir / "app.log.2")
    live.rename(logdir / "app.log.1")
    live.write_bytes(lines("c", 0, 20))
    CollectOutput.instances.clear()
    p = await start(tmp_path, logdir, body)
    await eventually(lambda: len(out_messages()) >= 50, "the rest and two files")
    await p.stop()
    assert sorted(payloads()) == sorted([f"a {i}\n" for i in range(50, 60)]
                                        + [f"{g} {i}\n" for g in "bc" for i in range(20)])


async def test_a_file_not_found_anywhere_is_still_read_again_from_the_oldest(tmp_path):
    """The journaled file is gone (deleted, not renamed): Heka's rule holds, the
    stream is read from its oldest file."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    live = logdir / "app.log"
    live.write_bytes(lines("a", 0, 50))
    body = "file_match = 'app\\.log'"
    p = await start(tmp_path, logdir, body)
    await eventually(lambda: len(out_messages()) == 50, "50 messages")
    await p.stop()
    live.unlink()
    (logdir / "app.log.1").write_bytes(lines("x", 0, 50))  # same size, other bytes
    live.write_bytes(lines("b", 0, 20))
    CollectOutput.instances.clear()
    p = await start(tmp_path, logdir, body)
    await eventually(lambda: len(out_messages()) >= 20, "the new file")
    await p.stop()
    assert payloads() == [f"b {i}\n" for i in range(20)]
