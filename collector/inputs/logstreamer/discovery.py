"""Finding log files and ordering them into streams, by Heka's rules:
https://hekad.readthedocs.io/en/v0.10.0/config/inputs/logstreamer.html

- The path regex is `^` + quoted(realpath(log_directory) + "/") + file_match (+ `$`),
  with RE2 semantics; the directory is walked recursively (symlinked directories are not
  followed, symlinked files are).
- Files last modified more than `oldest_duration` ago are left out (0 keeps them all).
- A stream's name is the concatenation of the `differentiator` items, a capture group's
  name standing for its text; the name becomes the messages' Logger.
- Within a stream files sort oldest → newest by the `priority` captures' integer scores
  (`^name` reverses one); the last file is the live one. Scores: MonthName / DayName
  (English, full or 3-letter), a `translation` map, digits, else -1; an empty capture is
  the map's `missing` value or -1.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hekapy.collector.engine.regex import compile_regex

MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4,
    "apr": 4, "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sep": 9, "october": 10, "oct": 10, "november": 11, "nov": 11,
    "december": 12, "dec": 12,
}
DAYS = {
    "monday": 0, "mon": 0, "tuesday": 1, "tue": 1, "wednesday": 2, "wed": 2,
    "thursday": 3, "thu": 3, "friday": 4, "fri": 4, "saturday": 5, "sat": 5, "sunday": 6,
    "sun": 6,
}

_GO_META = frozenset("\\.+*?()|[]{}^$")


def quote_meta(s: str) -> str:
    """Go's regexp.QuoteMeta: escape exactly the RE2 metacharacters."""
    return "".join("\\" + c if c in _GO_META else c for c in s)


def full_file_match(file_match: str) -> str:
    """Heka appends `$` to file_match unless it already ends in one."""
    return file_match if file_match.endswith("$") else file_match + "$"


def path_regex(root: str, file_match: str) -> str:
    """`^` + quoted root (with a trailing separator) + file_match, as Heka builds it."""
    if not root.endswith("/") and not file_match.startswith("/"):
        root += "/"
    return "^" + quote_meta(root) + full_file_match(file_match)


def check_translation(value: Any) -> dict[str, dict[str, int]]:
    """Validate `[X.translation.<group>]` maps; keys are lowercased (Heka matches them
    case-insensitively). A one-entry map must be `missing = N`."""
    from hekapy.collector.engine.plugin import OptionError

    if not isinstance(value, dict):
        raise OptionError(f"expected a table of tables, got {value!r}")
    out: dict[str, dict[str, int]] = {}
    for group, submap in value.items():
        if not isinstance(submap, dict):
            raise OptionError(f"[translation.{group}] must be a table of integers")
        conv: dict[str, int] = {}
        for k, v in submap.items():
            if isinstance(v, bool) or not isinstance(v, int):
                raise OptionError(f"[translation.{group}] {k}: expected an integer, got {v!r}")
            conv[str(k).lower()] = v
        if len(conv) == 1 and "missing" not in conv:
            raise OptionError(f"a translation map with one entry ('{group}') must be "
                              "specifying a 'missing' key")
        out[group] = conv
    return out


class ScoreError(ValueError):
    pass


def score_parts(groups: dict[str, str], translation: dict[str, dict[str, int]]
                ) -> dict[str, int]:
    """Integer sort scores of a file's named captures (Heka's PopulateMatchParts).
    Raises ScoreError for a month/day name or translation value that is not known; the
    caller keeps the file with the scores found so far."""
    scores: dict[str, int] = {}
    for name, raw in groups.items():
        value = raw if raw else "missing"
        lower = value.lower()
        score = -1
        found = False
        if name == "MonthName":
            if lower not in MONTHS:
                raise ScoreError(f"Unable to locate month name: {value}")
            score, found = MONTHS[lower], True
        elif name == "DayName":
            if lower not in DAYS:
                raise ScoreError(f"Unable to locate day name: {value}")
            score, found = DAYS[lower], True
        elif name in translation:
            submap = translation[name]
            if len(submap) > 1:
                if lower not in submap:
                    raise ScoreError(f"Value '{value}' not found in translation map "
                                     f"'{name}'.")
                score, found = submap[lower], True
            elif lower == "missing":
                score, found = submap.get("missing", -1), True
        if not found and value.isascii() and value.isdigit():
            score = int(value)
        scores[name] = score
    return scores


@dataclass
class Logfile:
    path: str
    groups: dict[str, str]
    scores: dict[str, int]
    mtime: float = 0.0
    key: tuple = ()


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "a special file"


@dataclass
class ScanResult:
    """One walk: streams (name → files oldest first), errors, the directories seen."""

    streams: dict[str, list[Logfile]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    directories: set[str] = field(default_factory=set)
    files: int = 0
    seconds: float = 0.0
    # Matching paths that are no regular file (a FIFO would block a read): not read.
    skipped: list[str] = field(default_factory=list)


class Discovery:
    """Walks `log_directory` and groups the matching files into ordered streams."""

    def __init__(self, log_directory: str, file_match: str, priority: Iterable[str] = (),
                 differentiator: Iterable[str] = (), translation: dict | None = None,
                 oldest_duration: float = 0.0, default_name: str = "") -> None:
        self.log_directory = log_directory
        self.file_match = file_match
        self.priority = [(p[1:], True) if p.startswith("^") else (p, False)
                         for p in priority]
        self.differentiator = list(differentiator) or [default_name]
        self.translation = translation or {}
        self.oldest_duration = oldest_duration
        self._root = ""
        self._regex: Any = None
        self._group_names: list[str] = []

    # --- matching ------------------------------------------------------------------------
    def root(self) -> str:
        """realpath(log_directory); the regex follows it if a symlink is re-pointed."""
        root = os.path.realpath(self.log_directory)
        if root != self._root or self._regex is None:
            self._regex = compile_regex(path_regex(root, self.file_match))
            # google-re2 exposes groupindex like `re`.
            self._group_names = sorted(self._regex.groupindex,
                                       key=self._regex.groupindex.get)
            self._root = root
        return root

    def match(self, path: str) -> dict[str, str] | None:
        """The named captures of `path` ("" for a group that did not take part), or None
        when the path is not one of ours."""
        if self._regex is None:
            self.root()
        try:
            m = self._regex.search(path)
        except (UnicodeEncodeError, TypeError):
            return None  # a file name that is not valid UTF-8 cannot match an RE2 pattern
        if m is None:
            return None
        return {name: (m.group(name) or "") for name in self._group_names}

    def stream_name(self, groups: dict[str, str]) -> str:
        return "".join(groups.get(d, d) for d in self.differentiator)

    def sort_key(self, scores: dict[str, int]) -> tuple:
        return tuple(-scores.get(name, 0) if rev else scores.get(name, 0)
                     for name, rev in self.priority)

    def logfile(self, path: str, mtime: float = 0.0) -> tuple[Logfile | None, str | None]:
        """A Logfile for `path` (None if it does not match) and a scoring error, if any."""
        groups = self.match(path)
        if groups is None:
            return None, None
        err = None
        try:
            scores = score_parts(groups, self.translation)
        except ScoreError as e:
            err = f"{path}: {e}"
            scores = {n: -1 for n in groups}
        lf = Logfile(path, groups, scores, mtime)
        lf.key = self.sort_key(scores)
        return lf, err

    # --- walking -------------------------------------------------------------------------
    def walk(self, root: str, directories: set[str], skipped: list[str] | None = None
             ) -> list[tuple[str, float]]:
        """Every regular file under `root` whose path matches, with its mtime; the
        matching paths of other kinds go to `skipped` with what they are."""
        regex = self._regex
        found: list[tuple[str, float]] = []
        stack = [root]
        while stack:
            d = stack.pop()
            try:
                it = os.scandir(d)
            except OSError:
                continue
            directories.add(d)
            with it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                            continue
                    except OSError:
                        continue
                    path = entry.path
                    try:
                        if regex.search(path) is None:
                            continue
                    except (UnicodeEncodeError, TypeError):
                        continue
                    try:
                        st = entry.stat()  # follows a symlinked file, as Heka's os.Stat
                    except OSError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        found.append((path, st.st_mtime))
                    elif skipped is not None:
                        skipped.append(f"{path}: {_file_kind(st.st_mode)}, not a regular "
                                       "file: not read")
        return found

    def scan(self) -> ScanResult:
        """Walk, filter by age, group into streams and sort each stream."""
        t0 = time.monotonic()
        res = ScanResult()
        root = self.root()
        if not os.path.isdir(root):
            res.errors.append(f"log_directory {self.log_directory!r} does not exist or is "
                              "not a directory")
            return res
        found = self.walk(root, res.directories, res.skipped)
        res.files = len(found)
        oldest = time.time() - self.oldest_duration if self.oldest_duration > 0 else None
        streams: dict[str, list[Logfile]] = {}
        for path, mtime in found:
            if oldest is not None and mtime <= oldest:
                continue
            lf, err = self.logfile(path, mtime)
            if lf is None:
                continue
            if err:
                res.errors.append(err)
            streams.setdefault(self.stream_name(lf.groups), []).append(lf)
        for name, files in streams.items():
            if len(files) > 1 and not self.priority:
                res.errors.append(
                    f"Found multiple logfiles without Priority to sort on for name: {name}, "
                    f"filematch: {self.file_match}, files: {sorted(f.path for f in files)}")
                continue
            # Ties broken by path so the order (and the successor of a file) is stable.
            files.sort(key=lambda f: (f.key, f.path))
            res.streams[name] = files
        res.seconds = time.monotonic() - t0
        return res
