"""LogstreamerInput against Heka's own test vectors (logstreamer/filehandling_test.go,
reader_test.go; fixtures in tests/data/logstreamer/heka, see its README)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import hekapy.collector.inputs.logstreamer  # noqa: F401  (registers LogstreamerInput)
from hekapy.collector.inputs.logstreamer.discovery import (
    Discovery,
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

HEKA = Path(__file__).parent / "data" / "logstreamer" / "heka"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A private copy of Heka's filehandling tree (mtimes fresh, so oldest_duration
    does not drop anything)."""
    dst = tmp_path / "filehandling"
    shutil.copytree(HEKA / "filehandling", dst)
    return dst


def _disc(root: Path, regex: str, **kw) -> Discovery:
    return Discovery(str(root), regex, **kw)


def test_scan_counts_files_like_heka(tree):
    assert _disc(tree, r"subdir/.*\.log(\..*)?", priority=["x"]).scan().files == 3
    assert _disc(tree, r"subdir/.*.logg(.*)?").scan().files == 0


def test_path_regex_quotes_root_and_appends_dollar():
    assert path_regex("/var/log", r"nova\.log") == r"^/var/log/nova\.log$"
    assert path_regex("/a.b+c", "x$") == r"^/a\.b\+c/x$"


def test_match_parts_month_and_number():
    assert score_parts({"MonthName": "October", "LogNumber": "24"}, {}) == {
        "MonthName": 10, "LogNumber": 24}


def test_match_parts_errors_are_heka_messages():
    with pytest.raises(ScoreError, match=r"^Unable to locate month name: Octoberrr$"):
        score_parts({"MonthName": "Octoberrr", "LogNumber": "24"}, {})
    with pytest.raises(ScoreError,
                       match=r"^Value '24' not found in translation map 'LogNumber'\.$"):
        score_parts({"MonthName": "October", "LogNumber": "24"},
                    {"LogNumber": {"23": 22, "999": 999}})


def test_match_parts_custom_translation():
    assert score_parts({"MonthName": "October", "LogNumber": "24"},
                       {"LogNumber": {"24": 2, "999": 999}}) == {"MonthName": 10,
                                                                "LogNumber": 2}


def test_day_names_and_missing():
    assert score_parts({"DayName": "sun", "Seq": ""}, {}) == {"DayName": 6, "Seq": -1}
    assert score_parts({"Seq": ""}, {"Seq": {"missing": 5}}) == {"Seq": 5}


def _stream(tree, regex, priority, translation=None, differentiator=("x",)):
    res = _disc(tree, regex, priority=priority, translation=translation or {},
                differentiator=list(differentiator)).scan()
    return res


def test_sorting_newest_to_oldest_and_back(tree):
    regex = r"subdir/.*\.log\.?(?P<FileNumber>.*)?"
    asc = _stream(tree, regex, ["FileNumber"]).streams["x"]
    assert [f.scores["FileNumber"] for f in asc] == [-1, 1, 2]
    desc = _stream(tree, regex, ["^FileNumber"]).streams["x"]
    assert [f.scores["FileNumber"] for f in desc] == [2, 1, -1]
    missing = _stream(tree, regex, ["FileNumber"], {"FileNumber": {"missing": 5}})
    assert [f.scores["FileNumber"] for f in missing.streams["x"]] == [1, 2, 5]


def test_access_and_error_streams(tree):
    regex = r"(?P<Year>\d+)/(?P<Month>\d+)/(?P<Type>\w+)\.log(\.(?P<Seq>\d+))?"
    res = _stream(tree, regex, ["Year", "Month", "^Seq"], differentiator=["Type"])
    assert sorted(res.streams) == ["access", "error"]
    access, error = res.streams["access"], res.streams["error"]
    assert len(access) == 26 and len(error) == 26
    assert access[0].path == str(tree / "2010/05/access.log.3")
    assert access[-1].path == str(tree / "2013/08/access.log")
    assert error[0].path == str(tree / "2010/07/error.log.2")
    assert error[-1].path == str(tree / "2013/08/error.log")
    prefixed = _stream(tree, regex, ["Year", "Month", "^Seq"],
                       differentiator=["website-", "Type"])
    assert sorted(prefixed.streams) == ["website-access", "website-error"]


def test_multiple_files_without_priority_is_an_error(tree):
    res = _stream(tree, r"subdir/.*\.log\.?(?P<FileNumber>.*)?", [])
    assert res.streams == {}
    assert "Found multiple logfiles without Priority" in res.errors[0]


def test_short_file_hash_is_nul_padded():
    data = (HEKA / "shortlog" / "short.log").read_bytes()
    assert window_hash(data) == "4a9ab34da77c10e87cb6566bbf061d9715985551"


def test_heka_sample_journal_verifies_at_end_of_last_error_log(tree):
    pos = decode((HEKA / "reader" / "location.json").read_bytes())
    assert pos == Position(1969, pos.file_name, "72781af95a1583690cc97548fdcf3bb0efbe3119")
    data = (tree / "2013/08/error.log").read_bytes()
    assert len(data) == 1969 and window_hash(data) == pos.last_hash


def test_journal_format_is_byte_compatible(tmp_path):
    j = Journal(str(tmp_path / "j"))
    j.ensure_dir()
    pos = Position(1969, "/var/log/a<b>&c.log", "72781af95a1583690cc97548fdcf3bb0efbe3119")
    j.save("nova_nova-api", pos)
    raw = (tmp_path / "j" / "nova_nova-api").read_bytes()
    assert raw == (b'{"seek":1969,"file_name":"/var/log/a\\u003cb\\u003e\\u0026c.log",'
                   b'"last_hash":"72781af95a1583690cc97548fdcf3bb0efbe3119"}')
    assert j.load("nova_nova-api") == pos
    assert decode(encode(pos)) == pos
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "j" / "nova_nova-api").st_mode & 0o777 == 0o660 & ~umask
    # No temporary file is left behind; Heka's key order and whitespace are accepted.
    assert sorted(os.listdir(tmp_path / "j")) == ["nova_nova-api"]
    assert decode(b' {"file_name":"/x","seek":3,"last_hash":"AB"}\n') == Position(3, "/x",
                                                                                   "ab")
    assert decode(b"") is None


def _read_all(reader: StreamReader) -> list:
    out = []
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


def test_reader_resumes_heka_position_and_walks_to_the_last_file(tree):
    """reader_test.go "A journal file can be read"."""
    regex = r"(?P<Year>\d+)/(?P<Month>\d+)/error\.log(\.(?P<Seq>\d+))?"
    res = _stream(tree, regex, ["Year", "Month", "^Seq"], differentiator=["errorlog"])
    files = res.streams["errorlog"]
    assert len(files) == 26
    reader = StreamReader("errorlog", files, switch_wait=1.0)
    pos = Position(500, str(tree / "2010/07/error.log.2"),
                   "dc6d00ed4a287968635b8b5b96a505547e9161d3")
    assert reader.start(pos, False) == "journal"
    first = reader.next(0.0)
    # Heka read 500 then 160 bytes with its 500-byte buffer; hekapy reads big chunks.
    assert first[:10] == b"- [05/Feb/" and len(first) == 500 + 160
    events = _read_all(reader)
    switch = events[0]
    assert isinstance(switch, Switched) and switch.old.offset == 1160
    switches = [e for e in events if isinstance(e, Switched)]
    assert len(switches) == 25  # every later file of the stream, in priority order
    # error.log.1 is empty; then comes the live file of that month.
    assert [sw.old.path for sw in switches[1:3]] == [str(tree / "2010/07/error.log.1"),
                                                     str(tree / "2010/07/error.log")]
    data = b"".join(e for e in events if isinstance(e, bytes))
    assert data.startswith(b"2013-11-05")
    # 500 bytes into 2010/07/error.log the journal hash is Heka's.
    assert window_hash(data[:500]) == "bc544cb727a809dcf0464da1628aeedd4243e81c"
    assert reader.cur.path == str(tree / "2013/08/error.log")
    assert reader.cur.offset == 1969
    assert data.rstrip(b"\n").endswith(b"re.bundle'")
    assert reader.cur.position().last_hash == "72781af95a1583690cc97548fdcf3bb0efbe3119"


def test_initial_tail_starts_at_end_of_newest(tree):
    regex = r"(?P<Year>\d+)/(?P<Month>\d+)/error\.log(\.(?P<Seq>\d+))?"
    files = _stream(tree, regex, ["Year", "Month", "^Seq"]).streams["x"]
    reader = StreamReader("x", files, switch_wait=1.0)
    assert reader.start(None, True) == "tail"
    pos = reader.cur.position()
    assert pos.seek == 1969
    assert pos.last_hash == "72781af95a1583690cc97548fdcf3bb0efbe3119"
    assert pos.file_name == str(tree / "2013/08/error.log")
