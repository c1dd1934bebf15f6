"""copytruncate when the reader is behind: the scan that looks for the truncated file's
copy can run while the writer shifts its rotated files for the next rotation, and a
scan then misses the names renamed between its listing and their stat. The reader looks
again before deciding that no copy holds what followed."""

from __future__ import annotations

import os
import threading

from hekapy.collector.inputs.logstreamer.discovery import Discovery
from hekapy.collector.inputs.logstreamer.reader import COPY_SCANS, StreamReader, Switched

SEQ_MATCH = r"app\.log\.?(?P<Seq>\d*)$"


def test_a_scan_during_a_shift_misses_renamed_files(tmp_path):
    """Why the reader scans again: while names are being shifted, scans miss files."""
    path = tmp_path / "app.log"
    n = 8
    path.write_bytes(b"")
    for k in range(1, n + 1):
        (tmp_path / f"app.log.{k}").write_bytes(b"")
    stop = threading.Event()

    def shift() -> None:
        while not stop.is_set():
            os.unlink(f"{path}.{n}")
            for k in range(n - 1, 0, -1):
                os.rename(f"{path}.{k}", f"{path}.{k + 1}")
            os.rename(path, f"{path}.1")
            path.write_bytes(b"")

    t = threading.Thread(target=shift)
    t.start()
    disc = Discovery(str(tmp_path), SEQ_MATCH, priority=["^Seq"], default_name="x")
    try:
        short = sum(len(disc.scan().streams.get("x", [])) < n + 1 for _ in range(500))
    finally:
        stop.set()
        t.join()
    assert short > 0


def _stream(tmp_path, content: bytes) -> tuple:
    """logs/app.log with `content`, and the Discovery of its stream "x"."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    live = logdir / "app.log"
    live.write_bytes(content)
    return logdir, live, Discovery(str(logdir), SEQ_MATCH, priority=["^Seq"],
                                   default_name="x")


def test_copy_missed_by_the_first_scan_is_found_by_the_next(tmp_path):
    first = b"".join(b"line %d\n" % i for i in range(200))
    logdir, live, disc = _stream(tmp_path, first)
    scans = []

    def refresh(force: bool):
        files = disc.scan().streams["x"]
        scans.append(len(files))
        # The first scan ran during a shift: it did not see the copy.
        return [lf for lf in files if lf.path == str(live)] if len(scans) == 1 else files

    r = StreamReader("x", disc.scan().streams["x"], switch_wait=0.25, refresh=refresh)
    r.start(None, False)
    assert r.next(0.0) == first
    # copytruncate, and the writer goes on past the old offset in the truncated file.
    (logdir / "app.log.1").write_bytes(first + b"line 200\n")
    live.write_bytes(b"".join(b"new %d\n" % i for i in range(400)))
    assert r.next(1.0) == b"line 200\n"  # from the copy, at the same offset
    assert r.counters["relocations"] == 1 and len(scans) == 2
    assert r.cur.path == str(logdir / "app.log.1")
    r.close()


def test_gives_up_after_its_scans(tmp_path):
    _, live, disc = _stream(tmp_path, b"a\nb\n")
    scans = []

    def refresh(force: bool):
        scans.append(1)
        return disc.scan().streams["x"]

    r = StreamReader("x", disc.scan().streams["x"], switch_wait=0.25, refresh=refresh)
    r.start(None, False)
    assert r.next(0.0) == b"a\nb\n"
    live.write_bytes(b"c\n")  # truncated, no copy anywhere
    ev = r.next(1.0)
    assert ev.reason == "truncated" and len(scans) == COPY_SCANS
    r.close()


def test_renamed_file_missed_by_a_scan_is_still_found(tmp_path):
    # A rename rotation seen by scans that missed the renamed file: the reader looks
    # again (as for a copy) before deciding its file is gone, so the file it leaves is
    # known under its new name (journaled as lingering, read after a restart).
    logdir, live, disc = _stream(tmp_path, b"a\nb\n")
    scans = []

    def refresh(force: bool):
        files = disc.scan().streams["x"]
        scans.append(len(files))
        # The scans after the rotation ran during the next shifts: all but the last one
        # the reader makes missed app.log.1.
        return [lf for lf in files if lf.path == str(live)] if len(scans) < 2 * (
            COPY_SCANS - 1) else files

    r = StreamReader("x", disc.scan().streams["x"], switch_wait=0.0, rotate_wait=60.0,
                     refresh=refresh)
    r.start(None, False)
    assert r.next(0.0) == b"a\nb\n"
    os.rename(live, logdir / "app.log.1")
    live.write_bytes(b"c\n")
    while not isinstance(ev := r.next(100.0), Switched):
        assert ev is None
    assert ev.old.path == str(logdir / "app.log.1")
    assert [lf.findable for lf in r.lingering] == [True]
    assert r.next(100.0) == b"c\n"
    r.close()
