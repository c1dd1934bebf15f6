"""LogstreamerInput's file discovery, stream ordering, journal and resume, on a tree of
rotated access/error logs the tests write themselves.

The rules checked are Heka's documented ones (Logstreamer,
https://hekad.readthedocs.io/en/v0.10.0/pluginconfig/logstreamer.html and
https://hekad.readthedocs.io/en/v0.10.0/config/inputs/logstreamer.html): file_match is
anchored under log_directory with `$` appended; `priority` sorts a stream's files on
the integer value of named captures, `^` reversing one; MonthName / DayName captures
score as month and day numbers; a `translation` map scores other values, its `missing`
entry an absent capture; `differentiator` names the streams; and the journal holds the
seek offset, the file name and a hash of the 500 bytes before the offset, which must
verify for the position to be resumed.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

import hekapy.collector.inputs.logstreamer  # noqa: F401  (registers LogstreamerInput)
from hekapy.collector.inputs.logstreamer.discovery import (
    Discovery,
    ScanResult,
    ScoreError,
    path_regex,
    score_parts,
)
from hekapy.collector.inputs.logstreamer.journal import (
    Journal,
    Position,
    decode,
    encode,
    window_hash,
)
from hekapy.collector.inputs.logstreamer.reader import StreamReader, Switched

# The rotated files of each month, oldest first (None: the live file, no suffix).
ACCESS_ROTATIONS: dict[tuple[int, int], list[int | None]] = {
    (2019, 6): [1, None],
    (2019, 11): [2, 1, None],
    (2020, 2): [1, None],
    (2020, 10): [None],
    (2021, 3): [3, 2, 1, None],
}
# 2019/06 has no error log, so the error stream starts later than the access stream;
# 2020/10 has error.log.10 and .9, which a string sort would put in the wrong order.
ERROR_ROTATIONS: dict[tuple[int, int], list[int | None]] = {
    (2019, 11): [2, 1, None],
    (2020, 2): [None],
    (2020, 10): [10, 9, 2, 1, None],
    (2021, 3): [1, None],
}
EMPTY_FILE = "2019/11/error.log.1"
DATED = r"(?P<Year>\d{4})/(?P<Month>\d{2})/(?P<Kind>access|error)\.log(?:\.(?P<Seq>\d+))?"
ERROR_DATED = r"(?P<Year>\d{4})/(?P<Month>\d{2})/error\.log(?:\.(?P<Seq>\d+))?"
SUBDIR_NUMBERED = r"subdir/app\.log(?:\.(?P<FileNumber>\d+))?"


def rel_name(kind: str, year: int, month: int, seq: int | None) -> str:
    return f"{year}/{month:02d}/{kind}.log" + (f".{seq}" if seq is not None else "")


def log_content(kind: str, year: int, month: int, seq: int | None) -> bytes:
    """Deterministic lines of a few hundred to ~1500 bytes (so most files are longer than
    the 500-byte hash window), different in every file."""
    if rel_name(kind, year, month, seq) == EMPTY_FILE:
        return b""
    count = 7 + (year * 7 + month * 3 + (seq or 0)) % 11
    label = f"{kind}.log" + (f".{seq}" if seq is not None else "")
    return "".join(
        f"{year}-{month:02d}-{i % 27 + 1:02d}T08:{i:02d}:{i * 7 % 60:02d}Z {label} "
        f"entry {i:03d} of {count}: GET /v2.1/servers/{i * 37:05d} took {i * 13 % 900} ms\n"
        for i in range(count)).encode()


def ordered(kind: str, rotations: dict[tuple[int, int], list[int | None]]) -> list[str]:
    """A stream's files in the order Heka's rules give: year, month, then rotation
    number descending (the live file last)."""
    return [rel_name(kind, y, m, s) for (y, m), seqs in sorted(rotations.items())
            for s in seqs]


ACCESS_ORDER = ordered("access", ACCESS_ROTATIONS)
ERROR_ORDER = ordered("error", ERROR_ROTATIONS)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The rotated logs plus `subdir/` (app.log, .1, .3 and app.txt). Files are
    created in reverse priority order and given mtimes newest-first, so neither
    creation nor modification order can pass for the priority order; the mtimes are
    recent, so oldest_duration keeps them all."""
    root = tmp_path / "logs"
    files = {rel_name(kind, *ym, s): log_content(kind, *ym, s)
             for kind, rotations in (("access", ACCESS_ROTATIONS), ("error", ERROR_ROTATIONS))
             for ym, seqs in rotations.items() for s in seqs}
    files.update({"subdir/app.log": b"live\n", "subdir/app.log.1": b"one\n",
                  "subdir/app.log.3": b"three\n", "subdir/app.txt": b"not a log\n"})
    order = ACCESS_ORDER + ERROR_ORDER + ["subdir/app.log.3", "subdir/app.log.1",
                                          "subdir/app.log", "subdir/app.txt"]
    assert sorted(order) == sorted(files)
    now = time.time()
    for i, name in reversed(list(enumerate(order))):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[name])
        os.utime(path, (now - i, now - i))
    return root


def scan(root: Path, regex: str, priority: list[str], translation: dict | None = None,
         differentiator: tuple[str, ...] = ("x",)) -> ScanResult:
    return Discovery(str(root), regex, priority=priority, translation=translation or {},
                     differentiator=list(differentiator)).scan()


def paths(root: Path, names: list[str]) -> list[str]:
    return [str(root / n) for n in names]


def test_scan_counts_only_files_matching_the_anchored_pattern(tree):
    """file_match is matched against the path under log_directory, with `$` appended
    (the documented rule): `.log` with or without a rotation number, not `.txt` (and
    no `.gz` file is there)."""
    assert scan(tree, r"subdir/[a-z]+\.log(?:\.\d+)?", ["x"]).files == 3
    assert scan(tree, r"subdir/[a-z]+\.log\.gz", ["x"]).files == 0
    assert scan(tree, r"subdir/.*\.txt", ["x"]).files == 1
    # `$` is appended: app.log.1 does not match a pattern ending in `log`.
    assert scan(tree, r"subdir/app\.log", ["x"]).files == 1
    # Anchored at log_directory: a pattern without subdir/ finds nothing in it.
    assert scan(tree, r"app\.log(\..*)?", ["x"]).files == 0
    assert scan(tree, r".*\.log(\.\d+)?", ["x"]).files == (
        len(ACCESS_ORDER) + len(ERROR_ORDER) + 3)


def test_path_regex_quotes_root_and_appends_dollar():
    """log_directory is the literal prefix (its metacharacters quoted), `$` is added to
    file_match unless it ends with one."""
    assert path_regex("/var/log", r"nova\.log") == r"^/var/log/nova\.log$"
    assert path_regex("/a.b+c", "x$") == r"^/a\.b\+c/x$"


def test_month_names_and_numbers_score_as_integers():
    """MonthName captures score as month numbers (full or abbreviated, any case), digits
    as their value."""
    assert score_parts({"MonthName": "Mar", "Rotation": "17"}, {}) == {
        "MonthName": 3, "Rotation": 17}
    assert score_parts({"MonthName": "DECEMBER", "Rotation": "007"}, {}) == {
        "MonthName": 12, "Rotation": 7}


def test_unknown_names_are_errors_in_hekas_words():
    """A MonthName that is no month, or a value absent from a translation map with more
    than one entry, is an error naming the value."""
    with pytest.raises(ScoreError, match=r"^Unable to locate month name: Marchh$"):
        score_parts({"MonthName": "Marchh", "Rotation": "17"}, {})
    with pytest.raises(ScoreError, match=r"^Unable to locate day name: Funday$"):
        score_parts({"DayName": "Funday"}, {})
    with pytest.raises(ScoreError,
                       match=r"^Value '17' not found in translation map 'Rotation'\.$"):
        score_parts({"MonthName": "Mar", "Rotation": "17"},
                    {"Rotation": {"16": 1, "18": 3}})


def test_translation_map_overrides_the_number():
    """A translation map gives a capture its score (case-insensitively), even a number."""
    assert score_parts({"MonthName": "mar", "Rotation": "17"},
                       {"Rotation": {"17": 2, "18": 1}}) == {"MonthName": 3, "Rotation": 2}
    assert score_parts({"Level": "Warn"}, {"Level": {"info": 1, "warn": 2}}) == {
        "Level": 2}


def test_day_names_and_missing_captures():
    """DayName scores Monday as 0 ... Sunday as 6; an empty capture scores -1, or the
    translation map's `missing` value."""
    assert score_parts({"DayName": "Wednesday", "Seq": ""}, {}) == {"DayName": 2, "Seq": -1}
    assert score_parts({"DayName": "sun"}, {}) == {"DayName": 6}
    assert score_parts({"Seq": ""}, {"Seq": {"missing": 5}}) == {"Seq": 5}


def test_priority_sorts_ascending_reversed_and_with_missing(tree):
    """Files sort oldest first by the priority captures' scores; `^` reverses a capture;
    the live file (no number: -1) moves to the end when `missing` scores it highest."""
    asc = scan(tree, SUBDIR_NUMBERED, ["FileNumber"]).streams["x"]
    assert [f.scores["FileNumber"] for f in asc] == [-1, 1, 3]
    assert [f.path for f in asc] == paths(tree, ["subdir/app.log", "subdir/app.log.1",
                                                 "subdir/app.log.3"])
    desc = scan(tree, SUBDIR_NUMBERED, ["^FileNumber"]).streams["x"]
    assert [f.scores["FileNumber"] for f in desc] == [3, 1, -1]
    missing = scan(tree, SUBDIR_NUMBERED, ["FileNumber"], {"FileNumber": {"missing": 5}})
    assert [f.scores["FileNumber"] for f in missing.streams["x"]] == [1, 3, 5]


def test_differentiator_splits_streams_and_priority_orders_each(tree):
    """`differentiator` builds each stream's name from literal text and capture values;
    within a stream, Year then Month ascending, then Seq descending (`^Seq`), numbers
    compared as integers (error.log.10 before error.log.9)."""
    res = scan(tree, DATED, ["Year", "Month", "^Seq"], differentiator=("Kind",))
    assert sorted(res.streams) == ["access", "error"]
    assert [f.path for f in res.streams["access"]] == paths(tree, ACCESS_ORDER)
    assert [f.path for f in res.streams["error"]] == paths(tree, ERROR_ORDER)
    assert ERROR_ORDER[4:6] == ["2020/10/error.log.10", "2020/10/error.log.9"]
    assert res.errors == []
    prefixed = scan(tree, DATED, ["Year", "Month", "^Seq"],
                    differentiator=("website-", "Kind"))
    assert sorted(prefixed.streams) == ["website-access", "website-error"]
    # Reversing Year turns the stream around month by month.
    newest_year_first = scan(tree, ERROR_DATED, ["^Year", "Month", "^Seq"]).streams["x"]
    assert newest_year_first[0].path == str(tree / "2021/03/error.log.1")
    assert newest_year_first[-1].path == str(tree / "2019/11/error.log")


def test_multiple_files_without_priority_is_an_error(tree):
    """Several files in one stream and no priority to order them: the stream is refused."""
    res = scan(tree, SUBDIR_NUMBERED, [])
    assert res.streams == {}
    assert "Found multiple logfiles without Priority" in res.errors[0]


def test_short_file_hash_is_nul_padded():
    """The hash covers 500 bytes; before offset 500 the missing bytes are NULs."""
    data = b"2024-02-29T23:59:59Z short log\n"
    assert window_hash(data) == "6669d857de7add0275c6b8488e02db460fe0d257"
    assert window_hash(data) == hashlib.sha1(b"\0" * (500 - len(data)) + data).hexdigest()
    long = bytes(range(256)) * 3
    assert window_hash(long) == hashlib.sha1(long[-500:]).hexdigest()


def journal_at_end_of_last_error_log(root: Path) -> bytes:
    """A journal as hekad writes it, hand-made: the end of 2021/03/error.log (1419 bytes,
    the hash of its last 500)."""
    return (b'{"seek":1419,"file_name":"' + str(root / "2021/03/error.log").encode()
            + b'","last_hash":"c628e218e21f72aae78747a191a011329cbd0e80"}')


def test_hand_written_journal_verifies_at_end_of_last_error_log(tree):
    """The journal's seek and hash verify against the file it names: the position is
    resumed there; with a hash that does not verify it is not."""
    pos = decode(journal_at_end_of_last_error_log(tree))
    assert pos == Position(1419, str(tree / "2021/03/error.log"),
                           "c628e218e21f72aae78747a191a011329cbd0e80")
    data = (tree / "2021/03/error.log").read_bytes()
    assert len(data) == pos.seek and window_hash(data) == pos.last_hash

    files = scan(tree, ERROR_DATED, ["Year", "Month", "^Seq"]).streams["x"]
    reader = StreamReader("x", files, switch_wait=1.0)
    assert reader.start(pos, False) == "journal"
    assert reader.cur.path == pos.file_name and reader.cur.offset == 1419
    assert reader.next(0.0) is None  # nothing after the journaled end
    reader.close()

    wrong = Position(pos.seek, pos.file_name, "0" * 40)
    reader = StreamReader("x", files, switch_wait=1.0)
    assert reader.start(wrong, False) == "replay"
    assert reader.cur.path == str(tree / ERROR_ORDER[0]) and reader.cur.offset == 0
    reader.close()


def test_journal_format_is_byte_compatible(tmp_path):
    """The journal is Go's JSON of seek, file_name, last_hash, in that order (HTML
    characters escaped as Go does); other key orders and whitespace are read."""
    j = Journal(str(tmp_path / "j"))
    j.ensure_dir()
    pos = Position(1419, "/var/log/a<b>&c.log", "c628e218e21f72aae78747a191a011329cbd0e80")
    j.save("nova_nova-api", pos)
    raw = (tmp_path / "j" / "nova_nova-api").read_bytes()
    assert raw == (b'{"seek":1419,"file_name":"/var/log/a\\u003cb\\u003e\\u0026c.log",'
                   b'"last_hash":"c628e218e21f72aae78747a191a011329cbd0e80"}')
    assert j.load("nova_nova-api") == pos
    assert decode(encode(pos)) == pos
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "j" / "nova_nova-api").st_mode & 0o777 == 0o660 & ~umask
    # No temporary file is left behind.
    assert sorted(os.listdir(tmp_path / "j")) == ["nova_nova-api"]
    assert decode(b' {"file_name":"/x","seek":3,"last_hash":"AB"}\n') == Position(3, "/x",
                                                                                   "ab")
    assert decode(b"") is None


def read_all(reader: StreamReader) -> list[bytes | Switched]:
    out: list[bytes | Switched] = []
    now = 0.0
    for _ in range(10000):
        ev = reader.next(now)
        if ev is None:
            now += 10.0  # let the switch wait elapse
            ev = reader.next(now)
            if ev is None:
                break
        out.append(ev)
    return out


def test_reader_resumes_a_position_and_walks_to_the_last_file(tree):
    """A journaled position 500 bytes into the stream's oldest file (hash verified) is
    resumed there; the stream then reads every later file in priority order, an empty
    one included, and stops at the end of the live file with the hash of its last 500
    bytes."""
    res = scan(tree, ERROR_DATED, ["Year", "Month", "^Seq"], differentiator=("errorlog",))
    files = res.streams["errorlog"]
    assert [f.path for f in files] == paths(tree, ERROR_ORDER)
    first = (tree / ERROR_ORDER[0]).read_bytes()
    reader = StreamReader("errorlog", files, switch_wait=1.0)
    pos = Position(500, str(tree / ERROR_ORDER[0]), hashlib.sha1(first[:500]).hexdigest())
    assert reader.start(pos, False) == "journal"
    assert reader.next(0.0) == first[500:]
    events = read_all(reader)
    switch = events[0]
    assert isinstance(switch, Switched) and switch.old.offset == len(first)
    switches = [e for e in events if isinstance(e, Switched)]
    assert len(switches) == len(ERROR_ORDER) - 1  # every later file, in priority order
    # 2019/11/error.log.1 is empty; the live file of that month follows it.
    assert [sw.old.path for sw in switches[1:3]] == paths(
        tree, [EMPTY_FILE, "2019/11/error.log"])
    data = b"".join(e for e in events if isinstance(e, bytes))
    assert data == b"".join((tree / n).read_bytes() for n in ERROR_ORDER[1:])
    last = (tree / ERROR_ORDER[-1]).read_bytes()
    assert reader.cur.path == str(tree / "2021/03/error.log")
    assert reader.cur.offset == len(last) == 1419
    assert reader.cur.position().last_hash == hashlib.sha1(last[-500:]).hexdigest()
    reader.close()


def test_initial_tail_starts_at_end_of_newest(tree):
    """Without a journal and with initial_tail, reading starts at the end of the live
    file, whose position is journaled with the hash of its last 500 bytes."""
    files = scan(tree, ERROR_DATED, ["Year", "Month", "^Seq"]).streams["x"]
    reader = StreamReader("x", files, switch_wait=1.0)
    assert reader.start(None, True) == "tail"
    pos = reader.cur.position()
    assert pos == Position(1419, str(tree / "2021/03/error.log"),
                           "c628e218e21f72aae78747a191a011329cbd0e80")
    reader.close()
