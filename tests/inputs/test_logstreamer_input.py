"""LogstreamerInput in a real pipeline on real files: messages, journal, resume,
rotation, truncation, deletion, gzip, partial lines, odd bytes."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import hekapy.collector.inputs.logstreamer  # noqa: F401  (registers LogstreamerInput)
from hekapy.collector.engine.config import ConfigInvalid
from hekapy.collector.inputs.logstreamer.journal import Journal, Position, decode, window_hash
from hekapy.collector.inputs.logstreamer.logstreamer_input import (
    identity_key,
    record_offsets,
    record_uuid,
)
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
from tests.helpers.wait import wait_for

GZ_MATCH = r"app\.log(\.(?P<Seq>\d+))?(\.gz)?$"


# --- messages, Uuids, journal --------------------------------------------------------------

async def test_streams_messages_and_journal(tmp_path):
    logdir = tmp_path / "nova"
    logdir.mkdir()
    (logdir / "nova-api.log").write_bytes(numbered_lines("api", 0, 3))
    (logdir / "nova-compute.log").write_bytes(numbered_lines("compute", 0, 2))
    p = await start_logstreamer(tmp_path, logdir, r"""
file_match = '(?P<Service>.+)\.log\.?(?P<Seq>\d*)$'
differentiator = ['nova', '_', 'Service']
priority = ["^Seq"]
""")
    await wait_for(lambda: len(out_messages()) == 5, "5 messages")
    await p.stop()
    msgs = out_messages()
    by_logger = {}
    for m in msgs:
        by_logger.setdefault(m.logger, []).append(m.payload)
    assert by_logger == {"nova_nova-api": ["api 0\n", "api 1\n", "api 2\n"],
                         "nova_nova-compute": ["compute 0\n", "compute 1\n"]}
    m = msgs[0]
    assert (m.type, m.hostname) == ("logfile", "node-1")
    u = uuid.UUID(bytes=m.uuid)
    assert u.version == 5 and u.variant == uuid.RFC_4122
    assert len({m.uuid for m in msgs}) == 5
    # The Uuid is (hostname, stream, first line, offset): computable from outside.
    api = [m for m in msgs if m.logger == "nova_nova-api"]
    key = identity_key("node-1", "nova_nova-api", b"api 0\n")
    assert [x.uuid for x in api] == [record_uuid(key, o) for o in (0, 6, 12)]
    # Journals, in Heka's format, at the end of each file (written at stop).
    data = (logdir / "nova-api.log").read_bytes()
    assert journal_of(tmp_path, "nova_nova-api") == Position(
        len(data), str(logdir / "nova-api.log"), window_hash(data))
    raw = (tmp_path / "state" / "logstreamer" / "nova_nova-compute").read_bytes()
    assert raw.startswith(b'{"seek":20,"file_name":"')


async def test_journal_moves_only_after_outputs_acknowledge(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    (logdir / "app.log").write_bytes(numbered_lines("line", 0, 10))
    p = await start_logstreamer(tmp_path, logdir, 'file_match = "app.log"', mode="hold")
    plugin, ctx = p.inputs[0]
    await wait_for(lambda: len(out_messages()) == 10, "10 messages held")
    # Delivered but not acknowledged: nothing to journal.
    assert plugin._acked == {} and ctx.tracker.in_flight == 1
    for b in CollectOutput.instances["out"].held:
        b.done()
    await wait_for(lambda: (journal_of(tmp_path, "logs") or Position()).seek == 70,
                   "the journal to reach the end")
    p.stopping.set()
    await p.stop()


async def test_resume_from_heka_journal(tmp_path):
    """A journal as hekad wrote it: start right after its seek."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    data = numbered_lines("line", 0, 100)
    path = logdir / "app.log"
    path.write_bytes(data)
    seek = data.index(b"line 40\n")
    jdir = tmp_path / "state" / "logstreamer"
    jdir.mkdir(parents=True)
    # Heka: the SHA-1 of the 500 bytes before seek, keys in Heka's order.
    (jdir / "logs").write_text(f'{{"seek":{seek},"file_name":"{path}",'
                               f'"last_hash":"{window_hash(data[:seek])}"}}')
    p = await start_logstreamer(tmp_path, logdir, 'file_match = "app.log"')
    await wait_for(lambda: len(out_messages()) == 60, "60 messages")
    await p.stop()
    assert payloads() == [f"line {i}\n" for i in range(40, 100)]
    assert journal_of(tmp_path, "logs").seek == len(data)


async def test_resume_after_renames_while_down_and_gzip_history(tmp_path):
    """Stopped; the file is rotated three times (the oldest compressed); restarted:
    it finds its position by hash and reads forward in priority order, nothing twice."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    live = logdir / "app.log"
    live.write_bytes(numbered_lines("a", 0, 50))
    body = f'file_match = \'{GZ_MATCH}\'\npriority = ["^Seq"]'
    p = await start_logstreamer(tmp_path, logdir, body)
    await wait_for(lambda: len(out_messages()) == 50, "50 messages")
    await p.stop()
    with live.open("ab") as f:
        f.write(numbered_lines("a", 50, 60))  # written after the stop, before the rotation
    for gen in ("b", "c", "d"):
        for k in (2, 1):
            src = logdir / f"app.log.{k}"
            if src.exists():
                src.rename(logdir / f"app.log.{k + 1}")
        live.rename(logdir / "app.log.1")
        live.write_bytes(numbered_lines(gen, 0, 20))
    # logrotate's compress: app.log.3 (the journaled file) becomes a gzip of 2 members.
    old = (logdir / "app.log.3").read_bytes()
    with open(logdir / "app.log.3.gz", "wb") as f:
        f.write(gzip.compress(old[:100]) + gzip.compress(old[100:]))
    (logdir / "app.log.3").unlink()
    first = len(out_messages())
    CollectOutput.instances.clear()
    p = await start_logstreamer(tmp_path, logdir, body)
    await wait_for(lambda: len(out_messages()) == 10 + 60, "the rest")
    await p.stop()
    assert first == 50
    assert payloads() == ([f"a {i}\n" for i in range(50, 60)]
                          + [f"{g} {i}\n" for g in "bcd" for i in range(20)])


async def test_initial_tail_skips_existing_lines(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    path = logdir / "app.log"
    path.write_bytes(numbered_lines("old", 0, 5))
    p = await start_logstreamer(tmp_path, logdir, 'file_match = "app.log"\ninitial_tail = true')
    plugin, _ = p.inputs[0]
    await wait_for(lambda: "logs" in plugin._streams and plugin._streams["logs"].reader.cur,
                   "the stream to open")
    with path.open("ab") as f:
        f.write(numbered_lines("new", 0, 3))
    await wait_for(lambda: len(out_messages()) == 3, "3 new messages")
    await p.stop()
    assert payloads() == ["new 0\n", "new 1\n", "new 2\n"]


# --- rotation while writing ----------------------------------------------------------------

# A writer in its own process, as fast as it can: "rename" rotates every `every` lines
# the way logrotate's `create` does (older files shifted, app.log renamed to app.log.1,
# a new app.log) and keeps writing `late` lines to the old file before it reopens, as an
# application does until logrotate's signal reaches it; "copytruncate" copies app.log to
# app.log.1 and truncates it (atomically with respect to the writer, which appends).
WRITER = r"""
import os, shutil, sys
style, logdir, total, every, late = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
path = os.path.join(logdir, "app.log")

def shift(upto):
    for k in range(upto, 0, -1):
        src = f"{path}.{k}"
        if os.path.exists(src):
            os.rename(src, f"{path}.{k + 1}")

fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
rotations, reopen_at = 0, -1
for i in range(total):
    os.write(fd, b"line %d\n" % i)
    if i == reopen_at:
        os.close(fd)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    if i % every == every - 1:
        rotations += 1
        shift(rotations)
        if style == "rename":
            os.rename(path, f"{path}.1")
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
            reopen_at = i + late
        else:
            shutil.copyfile(path, f"{path}.1")
            os.truncate(path, 0)
os.close(fd)
"""


def start_writer(style: str, logdir: Path, total: int, every: int, late: int = 0
                 ) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, style, str(logdir), str(total),
                             str(every), str(late)])


@pytest.mark.parametrize("style", ["rename", "copytruncate"])
async def test_rotation_while_writing_at_full_speed(tmp_path, style):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    (logdir / "app.log").touch()
    total, every, late = 120_000, 15_000, 500
    # The writer keeps writing its `late` lines to the renamed file, also after the stream
    # has moved on to the new file (a loaded machine pauses the writer longer than
    # check_data_interval): the renamed file lingers (rotate_wait) and they are read.
    p = await start_logstreamer(tmp_path, logdir,
                                f'file_match = \'{SEQ_MATCH}\'\npriority = ["^Seq"]')
    plugin, _ = p.inputs[0]
    await wait_for(lambda: "logs" in plugin._streams, "the stream")
    writer = start_writer(style, logdir, total, every, late=late)
    await wait_for(lambda: writer.poll() is not None, "the writer", timeout=60)
    assert writer.returncode == 0
    expected = [f"line {i}\n" for i in range(total)]
    await wait_for(lambda: len(out_messages()) >= total, f"{total} messages", timeout=60)
    await p.stop()
    check_complete(expected)
    # Nothing was read twice (no crash here), and each file's lines in order.
    got = [int(x.split()[1]) for x in payloads()]
    assert len(got) == total
    if style == "copytruncate":
        assert got == list(range(total))
    else:
        # The renamed file's late lines may come after the new file's first ones (the
        # new file starts after the writer's last late line).
        starts = [k * every + late for k in range(1, total // every)]
        for k in range(len(starts) + 1):
            lo = starts[k - 1] if k else 0
            hi = starts[k] if k < len(starts) else total
            assert [i for i in got if lo <= i < hi] == list(range(lo, hi)), k
    counters = plugin._streams["logs"].reader.counters
    if style == "copytruncate":
        assert counters["truncations"] >= 1
    else:
        # The last rotation leaves an empty live file that need not have been opened yet.
        assert counters["rotations"] >= total // every - 1


async def test_in_place_truncation_restarts_the_file(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    path = logdir / "app.log"
    path.write_bytes(numbered_lines("old", 0, 100))
    p = await start_logstreamer(tmp_path, logdir, 'file_match = "app.log"')
    await wait_for(lambda: len(out_messages()) == 100, "100 messages")
    with path.open("r+b") as f:
        f.truncate(0)
    path.write_bytes(numbered_lines("new", 0, 200))  # longer than before: only the hash tells
    await wait_for(lambda: len(out_messages()) == 300, "300 messages")
    await p.stop()
    assert payloads()[100:] == [f"new {i}\n" for i in range(200)]
    assert p.inputs[0][0]._streams["logs"].reader.counters["truncations"] == 1


async def test_deleted_while_open_is_drained_then_new_file_read(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    path = logdir / "app.log"
    f = open(path, "ab", buffering=0)
    f.write(numbered_lines("a", 0, 10))
    p = await start_logstreamer(tmp_path, logdir,
                                'file_match = "app.log"\ncheck_data_interval = "50ms"')
    await wait_for(lambda: len(out_messages()) == 10, "10 messages")
    path.unlink()
    f.write(numbered_lines("b", 0, 10))  # into the deleted file, still open on both sides
    await wait_for(lambda: len(out_messages()) == 20, "the deleted file's new lines")
    f.close()
    path.write_bytes(numbered_lines("c", 0, 5))
    await wait_for(lambda: len(out_messages()) == 25, "the new file")
    await p.stop()
    assert payloads() == [f"{g} {i}\n" for g, n in (("a", 10), ("b", 10), ("c", 5))
                          for i in range(n)]


async def test_replaced_by_file_of_same_name(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    path = logdir / "app.log"
    path.write_bytes(numbered_lines("first", 0, 5))
    p = await start_logstreamer(tmp_path, logdir,
                                'file_match = "app.log"\ncheck_data_interval = "50ms"')
    await wait_for(lambda: len(out_messages()) == 5, "5 messages")
    tmp = tmp_path / "staging.log"
    tmp.write_bytes(numbered_lines("second", 0, 7))
    os.replace(tmp, path)
    await wait_for(lambda: len(out_messages()) == 12, "the replacement")
    await p.stop()
    assert payloads()[5:] == [f"second {i}\n" for i in range(7)]


# --- records -----------------------------------------------------------------------------

async def test_partial_last_line_waits_for_newline(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    path = logdir / "app.log"
    path.write_bytes(b"one\ntw")
    p = await start_logstreamer(tmp_path, logdir,
                                'file_match = "app.log"\npartial_line_timeout = "1h"')
    await wait_for(lambda: len(out_messages()) == 1, "the complete line")
    with path.open("ab") as f:
        f.write(b"o\nthree\n")
    await wait_for(lambda: len(out_messages()) == 3, "the rest")
    await p.stop()
    assert payloads() == ["one\n", "two\n", "three\n"]
    assert journal_of(tmp_path, "logs").seek == len(b"one\ntwo\nthree\n")


async def test_partial_last_line_delivered_after_timeout(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    path = logdir / "app.log"
    path.write_bytes(b"one\nno newline at the end")
    p = await start_logstreamer(tmp_path, logdir,
                                'file_match = "app.log"\npartial_line_timeout = "200ms"'
                                '\ncheck_data_interval = "50ms"')
    await wait_for(lambda: len(out_messages()) == 2, "the unterminated line")
    await p.stop()
    assert payloads() == ["one\n", "no newline at the end"]
    assert journal_of(tmp_path, "logs").seek == path.stat().st_size


async def test_invalid_utf8_and_nul_bytes_pass_through(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    (logdir / "app.log").write_bytes(b"caf\xe9 \xff\xfe\nnul\x00inside\n\x00\x00\x00\nok\n")
    p = await start_logstreamer(tmp_path, logdir, 'file_match = "app.log"')
    await wait_for(lambda: len(out_messages()) == 4, "4 messages")
    await p.stop()
    assert payloads() == ["caf\ufffd \ufffd\ufffd\n", "nul\x00inside\n", "\x00\x00\x00\n",
                          "ok\n"]


async def test_gzip_history_read_in_order(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    (logdir / "app.log.2.gz").write_bytes(gzip.compress(numbered_lines("x", 0, 1000)))
    # No .gz name, but gzip content: recognised by its magic bytes.
    (logdir / "app.log.1").write_bytes(gzip.compress(numbered_lines("y", 0, 10))
                                       + gzip.compress(numbered_lines("y", 10, 20)))
    (logdir / "app.log").write_bytes(numbered_lines("z", 0, 3))
    p = await start_logstreamer(tmp_path, logdir,
                                f'file_match = \'{GZ_MATCH}\'\npriority = ["^Seq"]')
    await wait_for(lambda: len(out_messages()) == 1023, "1023 messages")
    await p.stop()
    assert payloads() == ([f"x {i}\n" for i in range(1000)] + [f"y {i}\n" for i in range(20)]
                          + [f"z {i}\n" for i in range(3)])


# --- configuration -----------------------------------------------------------------------

def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigInvalid) as e:
        config_from(tmp_path, """
[a]
type = "LogstreamerInput"
[b]
type = "LogstreamerInput"
file_match = "(unclosed"
[c]
type = "LogstreamerInput"
file_match = "x"
check_data_interval = "soon"
[c.translation.Seq]
one = 1
""")
    text = str(e.value)
    assert "[a] file_match: required key is missing" in text
    assert "[b] file_match: regex '(unclosed' does not compile" in text
    assert "[c] check_data_interval: invalid duration 'soon'" in text
    assert "must be specifying a 'missing' key" in text


def test_defaults_and_sample(tmp_path):
    cfg = logstreamer_config(tmp_path, tmp_path, 'file_match = "x"')
    spec = cfg.plugins["logs"]
    c = spec.cfg
    assert (c.log_directory, c.rescan_interval, c.check_data_interval, c.oldest_duration,
            c.initial_tail, c.splitter, c.partial_line_timeout) == (
        str(tmp_path), 60.0, 0.25, 720 * 3600.0, False, "TokenSplitter", 5.0)
    doc = spec.cls.sample()
    assert 'type = "LogstreamerInput"' in doc and "differentiator = ['nova'" in doc
    # The sample section is valid TOML that loads.
    sample = doc[doc.index("[nova]"):]
    sample = "\n".join(x.strip() for x in sample.splitlines())
    sample = sample.replace('decoder = "openstack_decoder"\n', "")
    config_from(tmp_path, sample)


def test_journal_survives_torn_temp_file(tmp_path):
    """A crash mid-save leaves at most a stray temp file; the journal is intact."""
    j = Journal(str(tmp_path))
    j.save("s", Position(10, "/x", "ab"))
    (tmp_path / ".s.tmp").write_bytes(b'{"seek":99')
    assert j.load("s") == Position(10, "/x", "ab")
    assert decode((tmp_path / "s").read_bytes()) == Position(10, "/x", "ab")


async def test_same_line_same_uuid_after_rename_and_replay(tmp_path):
    """A line read from app.log, then read again from app.log.1 (journal lost), carries
    the same Uuid: the file identity is its first line, not its name or inode."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    (logdir / "app.log").write_bytes(numbered_lines("l", 0, 20))
    body = f'file_match = \'{SEQ_MATCH}\'\npriority = ["^Seq"]'
    p = await start_logstreamer(tmp_path, logdir, body)
    await wait_for(lambda: len(out_messages()) == 20, "20 messages")
    await p.stop()
    first = {m.payload: m.uuid for m in out_messages()}
    (logdir / "app.log").rename(logdir / "app.log.1")
    (logdir / "app.log").write_bytes(numbered_lines("m", 0, 5))
    shutil.rmtree(tmp_path / "state")
    CollectOutput.instances.clear()
    p = await start_logstreamer(tmp_path, logdir, body)
    await wait_for(lambda: len(out_messages()) == 25, "25 messages")
    await p.stop()
    again = {m.payload: m.uuid for m in out_messages()}
    assert {k: again[k] for k in first} == first
    assert len(set(again.values())) == 25


def test_record_offsets_when_delimiters_are_discarded():
    """Records that do not tile the bytes (a RegexSplitter without a capture group
    drops its delimiter) are found in order in the consumed bytes."""
    data = b"=A=\nbody a\n\n=B=\nbody b\n\n=C="
    # Delimiter "\n\n" discarded; the held "=C=" is the remainder.
    records = [b"=A=\nbody a", b"=B=\nbody b"]
    assert record_offsets(records, b"", data, 100, 100) == [100, 112]
    # The same records split across two reads give the same offsets.
    first, second = data[:14], data[14:]
    assert record_offsets([records[0]], b"", first, 100, 100) == [100]
    assert record_offsets([records[1]], first[10:], second, 114, 110) == [112]
    # Tiling records (TokenSplitter) take the fast path.
    assert record_offsets([b"a\n", b"bc\n"], b"", b"a\nbc\nd", 0, 0) == [0, 2]


RABBIT = b"""=INFO REPORT==== 5-Jan-2016::10:00:00 ===
accepting AMQP connection <0.1.0> (1.2.3.4:1 -> 5.6.7.8:5672)

=ERROR REPORT==== 5-Jan-2016::10:00:01 ===
closing AMQP connection <0.2.0>:
{handshake_timeout,frame_header}

=INFO REPORT==== 5-Jan-2016::10:00:02 ===
last entry
"""


async def test_multiline_records_rabbitmq_splitter(tmp_path):
    """LMA's rabbitmq input: RegexSplitter with the delimiter's capture prepended to the
    next record. The last entry only ends when the file stops growing (timeout). A
    replay gives every record its Uuid again."""
    logdir = tmp_path / "rabbitmq"
    logdir.mkdir()
    (logdir / "rabbit@node-1.log").write_bytes(RABBIT)
    body = r"""file_match = 'rabbit@(?P<Node>.+)\.log$'
differentiator = ['rabbitmq.', 'Node']
splitter = "rabbitmq_splitter"
partial_line_timeout = "200ms"
check_data_interval = "50ms"

[rabbitmq_splitter]
type = "RegexSplitter"
delimiter = '\n\n(=[^=]+====)'
delimiter_eol = false
"""
    p = await start_logstreamer(tmp_path, logdir, body)
    await wait_for(lambda: len(out_messages()) == 3, "3 records")
    await p.stop()
    assert payloads() == [
        "=INFO REPORT==== 5-Jan-2016::10:00:00 ===\naccepting AMQP connection <0.1.0> "
        "(1.2.3.4:1 -> 5.6.7.8:5672)",
        "=ERROR REPORT==== 5-Jan-2016::10:00:01 ===\nclosing AMQP connection <0.2.0>:\n"
        "{handshake_timeout,frame_header}",
        "=INFO REPORT==== 5-Jan-2016::10:00:02 ===\nlast entry\n"]
    assert {m.logger for m in out_messages()} == {"rabbitmq.node-1"}
    first = [m.uuid for m in out_messages()]
    assert len(set(first)) == 3
    shutil.rmtree(tmp_path / "state")
    CollectOutput.instances.clear()
    p = await start_logstreamer(tmp_path, logdir, body)
    await wait_for(lambda: len(out_messages()) == 3, "3 records again")
    await p.stop()
    assert [m.uuid for m in out_messages()] == first
