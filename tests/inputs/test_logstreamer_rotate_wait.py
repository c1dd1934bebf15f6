"""LogstreamerInput's rotate_wait: after a rename rotation the stream moves on to the new
file, and the renamed file stays open for late writes (an application that reopens its
log only when logrotate's signal reaches it) until it has not changed for rotate_wait.
Late lines are delivered once each, after the lines already read from the new file; the
journal keeps the lingering file's position too, so a restart reads its late lines."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

import hekapy.collector.inputs.logstreamer  # noqa: F401  (registers LogstreamerInput)
from hekapy.collector.engine.config import ConfigInvalid
from hekapy.collector.inputs.logstreamer.discovery import Discovery
from hekapy.collector.inputs.logstreamer.journal import Position, decode, encode, window_hash
from hekapy.collector.inputs.logstreamer.reader import READ_SIZE, StreamReader, Switched
from tests.helpers.logstreamer import (
    SEQ_MATCH,
    check_complete,
    journal_of,
    logstreamer_config,
    numbered_lines,
    out_messages,
    payloads,
    start_logstreamer,
)
from tests.helpers.plugins import CollectOutput, config_from
from tests.helpers.wait import settle, wait_for

BODY = f'file_match = \'{SEQ_MATCH}\'\npriority = ["^Seq"]'


def open_fds_on(path: Path) -> list[int]:
    """This process's descriptors open on `path`'s inode (whatever its name now)."""
    st = path.stat()
    out = []
    for name in os.listdir("/proc/self/fd"):
        try:
            fst = os.stat(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if (fst.st_dev, fst.st_ino) == (st.st_dev, st.st_ino):
            out.append(int(name))
    return out


async def rotate_and_move_on(logdir: Path, body: str, tmp_path: Path, **kw):
    """app.log gets "a 0..9" through a descriptor kept open (the application's), is
    renamed to app.log.1, a new app.log gets "b 0..4"; returns once the b lines are out,
    i.e. once the stream has moved on to the new file."""
    old = open(logdir / "app.log", "ab", buffering=0)
    old.write(numbered_lines("a", 0, 10))
    p = await start_logstreamer(tmp_path, logdir, body, **kw)
    await wait_for(lambda: len(out_messages()) == 10, "the first 10 lines")
    (logdir / "app.log").rename(logdir / "app.log.1")
    with open(logdir / "app.log", "ab") as new:
        new.write(numbered_lines("b", 0, 5))
    await wait_for(lambda: len(out_messages()) == 15, "the new file's lines")
    return p, old


async def test_late_writes_to_the_renamed_file_are_delivered_once(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    p, old = await rotate_and_move_on(logdir, BODY, tmp_path)
    plugin, _ = p.inputs[0]
    s = plugin._streams["logs"]
    assert s.reader.cur.path == str(logdir / "app.log")
    # Well after check_data_interval (the stream already reads the new file): the
    # application writes on to its old descriptor.
    old.write(numbered_lines("a", 10, 20))
    await wait_for(lambda: len(out_messages()) == 25, "the late lines", timeout=10)
    old.write(numbered_lines("a", 20, 25))  # and again, later still
    await wait_for(lambda: len(out_messages()) == 30, "the later lines", timeout=10)
    old.close()
    await p.stop()
    counts = Counter(payloads())
    expected = ([f"a {i}\n" for i in range(25)] + [f"b {i}\n" for i in range(5)])
    assert counts == Counter(expected)  # every line, exactly once
    # Each file's lines in order; the late ones after what the new file gave by then.
    got = payloads()
    assert [x for x in got if x.startswith("a")] == [f"a {i}\n" for i in range(25)]
    assert got[10:15] == [f"b {i}\n" for i in range(5)]
    assert s.reader.counters["lingered"] == 1
    assert s.reader.counters["late_bytes"] == len(numbered_lines("a", 10, 25))


async def test_lingering_file_is_closed_after_rotate_wait_without_change(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    p, old = await rotate_and_move_on(logdir, BODY + '\nrotate_wait = "1s"', tmp_path)
    plugin, _ = p.inputs[0]
    s = plugin._streams["logs"]
    renamed = logdir / "app.log.1"
    old.write(numbered_lines("a", 10, 12))
    await wait_for(lambda: len(out_messages()) == 17, "the late lines", timeout=10)
    # Still open (ours and the application's descriptor), and journaled: a restart now
    # would read its late lines.
    assert [lf.file.path for lf in s.reader.lingering] == [str(renamed)]
    assert len(open_fds_on(renamed)) == 2
    saved = plugin._saved_position("logs")  # what the next journal write saves
    assert (saved.file_name, saved.seek) == (str(logdir / "app.log"), 20)
    assert [(x.file_name, x.seek) for x in saved.lingering] == [
        (str(renamed), renamed.stat().st_size)]
    # One second without a change: closed; only the application's descriptor is left,
    # and the journal moves to the new file.
    await wait_for(lambda: not s.reader.lingering, "the lingering file to close",
                   timeout=10)
    assert open_fds_on(renamed) == [old.fileno()]
    await wait_for(lambda: (journal_of(tmp_path, "logs") or None) is not None
                   and not journal_of(tmp_path, "logs").lingering,
                   "the journal without the lingering file")
    assert journal_of(tmp_path, "logs") == Position(
        len(numbered_lines("b", 0, 5)), str(logdir / "app.log"),
        window_hash(numbered_lines("b", 0, 5)))
    # Heka's bytes again.
    assert b'"lingering"' not in (tmp_path / "state" / "logstreamer" / "logs").read_bytes()
    old.close()
    await p.stop()
    assert sorted(payloads()) == sorted([f"a {i}\n" for i in range(12)]
                                        + [f"b {i}\n" for i in range(5)])


async def test_restart_while_lingering_reads_the_late_lines(tmp_path):
    """Stopped while the renamed file lingers: the journal holds the new file's position
    (Heka's keys) and the renamed file's (hekapy's "lingering"), so lines the
    application wrote to the renamed file meanwhile are read after the restart, and
    nothing else is read again."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    p, old = await rotate_and_move_on(logdir, BODY + '\nrotate_wait = "1h"', tmp_path)
    await p.stop()
    first = {m.payload: m.uuid for m in out_messages()}
    raw = (tmp_path / "state" / "logstreamer" / "logs").read_bytes()
    assert raw.startswith(b'{"seek":20,"file_name":"') and b',"lingering":[{"seek":40,' in raw
    pos = journal_of(tmp_path, "logs")
    assert (pos.file_name, pos.seek) == (str(logdir / "app.log"), 20)
    assert pos.lingering == [Position(40, str(logdir / "app.log.1"),
                                      window_hash(numbered_lines("a", 0, 10)))]
    old.write(numbered_lines("a", 10, 20))  # while hekapy is down
    old.close()
    CollectOutput.instances.clear()
    p = await start_logstreamer(tmp_path, logdir, BODY + '\nrotate_wait = "1h"')
    await wait_for(lambda: len(out_messages()) == 10, "the late lines", timeout=10)
    plugin, _ = p.inputs[0]
    [lf] = plugin._streams["logs"].reader.lingering
    assert lf.file.path == str(logdir / "app.log.1")
    with open(logdir / "app.log", "ab") as new:  # the current file goes on too
        new.write(numbered_lines("b", 5, 7))
    await wait_for(lambda: len(out_messages()) == 12, "the new file's next lines")
    await p.stop()
    assert payloads() == [f"a {i}\n" for i in range(10, 20)] + ["b 5\n", "b 6\n"]
    assert not set(first) & set(payloads())
    pos = journal_of(tmp_path, "logs")
    assert (pos.seek, [x.seek for x in pos.lingering]) == (
        len(numbered_lines("b", 0, 7)), [len(numbered_lines("a", 0, 20))])


async def test_restart_finds_a_lingering_file_renamed_while_down(tmp_path):
    """The lingering file was renamed again (the next rotation) while hekapy was down: it
    is found by the 500 bytes before its position, as Heka finds the main one."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    p, old = await rotate_and_move_on(logdir, BODY, tmp_path)
    await p.stop()
    old.write(numbered_lines("a", 10, 13))
    old.close()
    (logdir / "app.log.1").rename(logdir / "app.log.2")
    (logdir / "app.log").rename(logdir / "app.log.1")
    (logdir / "app.log").write_bytes(numbered_lines("c", 0, 2))
    CollectOutput.instances.clear()
    p = await start_logstreamer(tmp_path, logdir, BODY)
    await wait_for(lambda: len(out_messages()) == 5, "the late lines and the new file")
    await p.stop()
    assert sorted(payloads()) == ["a 10\n", "a 11\n", "a 12\n", "c 0\n", "c 1\n"]


async def test_late_writes_respect_backpressure(tmp_path):
    """A lingering file is read like the current one: a chunk at a time, each delivered
    (and waiting for room) before the next is read. With the output holding everything
    and poolsize 2, the input reads at most one chunk of 3 MiB of late lines ahead."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    p, old = await rotate_and_move_on(logdir, BODY, tmp_path, mode="hold",
                                      hekad="poolsize = 2")
    plugin, ctx = p.inputs[0]
    [lf] = plugin._streams["logs"].reader.lingering
    assert ctx.tracker.full  # the first file's batch and the new file's
    base = lf.file.offset
    late = b"".join(b"late %06d %s\n" % (i, b"x" * 88) for i in range(30_000))
    old.write(late)
    await wait_for(lambda: lf.file.offset > base, "a late chunk read")
    await settle()
    assert lf.file.offset - base <= READ_SIZE and len(out_messages()) == 15
    out = CollectOutput.instances["out"]
    out.cfg.mode = "ack"
    for b in out.held:
        b.done()
    await wait_for(lambda: len(out_messages()) == 15 + 30_000, "the late lines")
    old.close()
    await p.stop()
    assert Counter(payloads()) == Counter(
        [f"a {i}\n" for i in range(10)] + [f"b {i}\n" for i in range(5)]
        + [x.decode() for x in late.splitlines(keepends=True)])


async def test_file_renamed_out_of_the_stream_still_lingers(tmp_path):
    """file_match names only app.log: the renamed file is not one of the stream's, but
    its late lines are still read while it lingers (found by the poll, no event names
    it); the journal does not wait for it, a restart could not find it."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    p, old = await rotate_and_move_on(logdir, 'file_match = "app.log"\nrotate_wait = "1h"',
                                      tmp_path)
    plugin, _ = p.inputs[0]
    [lf] = plugin._streams["logs"].reader.lingering
    assert not lf.findable
    old.write(numbered_lines("a", 10, 20))
    await wait_for(lambda: len(out_messages()) == 25, "the late lines", timeout=10)
    old.close()
    await wait_for(lambda: (journal_of(tmp_path, "logs") or None) is not None
                   and journal_of(tmp_path, "logs").file_name == str(logdir / "app.log"),
                   "the journal in the new file")
    await p.stop()
    check_complete([f"a {i}\n" for i in range(20)] + [f"b {i}\n" for i in range(5)])
    assert len(payloads()) == 25


async def test_rotate_wait_zero_closes_at_once(tmp_path):
    """rotate_wait = 0 is Heka's behaviour: the renamed file is closed when the stream
    moves on; what the application writes to it later is not read."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    p, old = await rotate_and_move_on(logdir, BODY + "\nrotate_wait = 0", tmp_path)
    plugin, _ = p.inputs[0]
    s = plugin._streams["logs"]
    assert s.reader.lingering == [] and s.reader.counters["lingered"] == 0
    assert open_fds_on(logdir / "app.log.1") == [old.fileno()]
    old.close()
    await p.stop()


# --- the reader alone, on a clock of its own -----------------------------------------------

def test_reader_lingers_releases_after_quiet_and_caps(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    disc = Discovery(str(logdir), SEQ_MATCH, priority=["^Seq"], default_name="x")

    def files():
        return disc.scan().streams.get("x", [])

    live = logdir / "app.log"
    live.write_bytes(b"one\n")
    r = StreamReader("x", files(), switch_wait=0.25, rotate_wait=5.0, max_lingering=2,
                     refresh=lambda force: files())
    assert r.start(None, False) == "oldest"
    assert r.next(100.0) == b"one\n"
    handles = []

    def rotate(k: int) -> None:
        # app.log.(n) -> app.log.(n+1), app.log -> app.log.1, new app.log
        for n in range(k, 0, -1):
            src = logdir / f"app.log.{n}"
            if src.exists():
                src.rename(logdir / f"app.log.{n + 1}")
        handles.append(open(live, "ab", buffering=0))
        live.rename(logdir / "app.log.1")
        live.write_bytes(b"")

    def switch(now: float) -> Switched:
        assert r.next(now) is None  # at EOF with a newer file: the switch wait starts
        ev = r.next(now + 1.0)
        assert isinstance(ev, Switched), ev
        return ev

    rotate(1)
    r.set_files(files())
    ev = switch(100.0)
    assert ev.lingering and ev.old.fd >= 0 and ev.old.path == str(logdir / "app.log.1")
    [lf] = r.lingering
    assert lf.findable
    # A late write to the old descriptor is read from the lingering file.
    handles[0].write(b"late\n")
    assert r.lingering_grew()
    assert r.read_lingering(lf, 103.0) == b"late\n"
    assert r.read_lingering(lf, 103.0) == b""
    # Released only once unchanged for rotate_wait (5 s since the late write).
    assert r.release(107.9) == []
    assert r.next_release() == pytest.approx(108.0)
    assert r.release(108.0) == [lf] and r.lingering == []
    assert lf.file.fd >= 0  # the caller closes it, once done with its last record
    lf.file.close()
    # More rotations than max_lingering: the oldest is released once read to its end,
    # even before rotate_wait.
    for k, now in ((2, 200.0), (3, 201.0), (4, 202.0)):
        live.write_bytes(b"gen %d\n" % k)
        r.set_files(files())
        data = r.next(now)
        assert data == b"gen %d\n" % k, data
        rotate(k)
        r.set_files(files())
        switch(now)
    assert len(r.lingering) == 3
    oldest = r.lingering[0]
    # Renamed twice since it was left: followed to its current name.
    assert oldest.file.path == str(logdir / "app.log.3") and oldest.findable
    assert r.release(203.5) == [oldest]
    assert len(r.lingering) == 2
    oldest.file.close()
    r.close()
    assert all(lf.file.fd < 0 for lf in r.lingering)
    for h in handles:
        h.close()


def test_reader_without_rotate_wait_closes_what_it_leaves(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    disc = Discovery(str(logdir), SEQ_MATCH, priority=["^Seq"], default_name="x")
    (logdir / "app.log.1").write_bytes(b"old\n")
    (logdir / "app.log").write_bytes(b"new\n")
    r = StreamReader("x", disc.scan().streams["x"], switch_wait=0.25)
    r.start(None, False)
    assert r.next(0.0) == b"old\n"
    ev = r.next(0.0)
    if ev is None:  # just written: the switch wait first
        ev = r.next(10.0)
    assert isinstance(ev, Switched) and not ev.lingering and ev.old.fd < 0
    assert r.lingering == []


def test_reader_closes_history_unchanged_for_rotate_wait(tmp_path):
    """Files left that have not changed for rotate_wait already (history read at
    start-up, a backlog) are closed at once: nothing is waited for."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    disc = Discovery(str(logdir), SEQ_MATCH, priority=["^Seq"], default_name="x")
    for name, body in (("app.log.2", b"two\n"), ("app.log.1", b"one\n")):
        (logdir / name).write_bytes(body)
        os.utime(logdir / name, (1e9, 1e9))
    (logdir / "app.log").write_bytes(b"live\n")
    r = StreamReader("x", disc.scan().streams["x"], switch_wait=0.25, rotate_wait=5.0)
    r.start(None, False)
    events = [r.next(0.0) for _ in range(5)]
    assert events[0] == b"two\n" and events[2] == b"one\n" and events[4] == b"live\n"
    assert all(isinstance(e, Switched) and not e.lingering for e in (events[1], events[3]))
    assert r.lingering == [] and r.counters["lingered"] == 0
    r.close()


# --- the journal ---------------------------------------------------------------------

def test_journal_lingering_key_round_trips_and_is_absent_otherwise():
    heka = Position(20, "/l/app.log", "ab")
    assert encode(heka) == b'{"seek":20,"file_name":"/l/app.log","last_hash":"ab"}'
    pos = Position(20, "/l/app.log", "ab", [Position(40, "/l/app.log.2", "cd"),
                                            Position(7, "/l/app.log.1", "ef")])
    raw = encode(pos)
    assert raw == (b'{"seek":20,"file_name":"/l/app.log","last_hash":"ab","lingering":['
                   b'{"seek":40,"file_name":"/l/app.log.2","last_hash":"cd"},'
                   b'{"seek":7,"file_name":"/l/app.log.1","last_hash":"ef"}]}')
    assert decode(raw) == pos
    # hekad's view (Go ignores unknown keys): the same main position.
    main = decode(raw)
    assert (main.seek, main.file_name, main.last_hash) == (20, "/l/app.log", "ab")
    with pytest.raises(ValueError):
        decode(b'{"seek":1,"file_name":"x","last_hash":"","lingering":[{"seek":-1}]}')
    with pytest.raises(ValueError):
        decode(b'{"seek":1,"file_name":"x","last_hash":"","lingering":{"seek":1}}')


# --- configuration -----------------------------------------------------------------------

def test_rotate_wait_default_and_bad_values(tmp_path):
    cfg = logstreamer_config(tmp_path, tmp_path, 'file_match = "x"')
    assert cfg.plugins["logs"].cfg.rotate_wait == 5.0
    cfg = logstreamer_config(tmp_path, tmp_path, 'file_match = "x"\nrotate_wait = "1m30s"')
    assert cfg.plugins["logs"].cfg.rotate_wait == 90.0
    cfg = logstreamer_config(tmp_path, tmp_path, 'file_match = "x"\nrotate_wait = 2')
    assert cfg.plugins["logs"].cfg.rotate_wait == 2.0  # bare numbers are seconds
    with pytest.raises(ConfigInvalid) as e:
        config_from(tmp_path, """
[a]
type = "LogstreamerInput"
file_match = "x"
rotate_wait = "soon"
[b]
type = "LogstreamerInput"
file_match = "x"
rotate_wait = -1
[c]
type = "LogstreamerInput"
file_match = "x"
rotate_wait = true
""")
    text = str(e.value)
    assert "[a] rotate_wait: invalid duration 'soon'" in text
    assert "[b] rotate_wait: duration must not be negative" in text
    assert "[c] rotate_wait: expected a duration" in text
