"""Which archived file `hekapy replay` gives to which LogstreamerInput section, as what
stream, in what order: the configuration's own meaning, applied to a copy of the logs.

A directory named on the command line (an *archive root*) is a copy of some live
directory: the node's `/var/log`, one of its sub-folders, or a folder above it (a
node's folder holding `var/log/...`). Each file of the archive then has a *live path*,
the path it had on the node, and is matched exactly as the daemon matches it: by the
section's path regex, `^` + log_directory + `/` + file_match + `$`
(collector/inputs/logstreamer/discovery.py).

Which live directory a root stands for is not given by its name (an archive folder is
called anything): every candidate is tried, i.e. each section's log_directory and the
folders above it, and a log_directory followed by the root's own last names (an archive
of `logs/nova` for a section whose file_match starts with `nova/`). The winner is the
candidate under which the archive's folder names agree most with the log_directories of
the sections the files match (`nova/` for `/var/log/nova`), then the one that matches
the most files. Candidates that tie but give files different sections make the replay
stop and ask for `--live-dir`.

Rotated and compressed copies belong to their live file: a compression suffix (`.gz`,
`.bz2`, `.xz`, `.zst`) is removed first; a name the section does not match as it is
is matched again without a rotation suffix (`.1`, `.12`, `-20261130`), so a section
whose file_match has no `Seq` group (LMA's `haproxy.log`) still gets `haproxy.log.1`
and `haproxy.log.2.gz`. A file no section matches is not replayed: it is listed as
unmatched, never given to another section's decoder.

Within a stream, files replay oldest first: by the section's `priority` (the daemon's
order) when every file matched as it is, else by the rotation suffix (dated copies by
date, then `.N` from the highest N down, then the live file).

Heka protobuf stream files (they start with a 0x1E frame) get HekaFramingSplitter and
ProtobufDecoder; `--decoder NAME` gives every other file that decoder instead of
matching.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from hekapy.collector.app.replay_archive import fingerprint, strip_compression
from hekapy.collector.engine.config import Config
from hekapy.collector.inputs.logstreamer.discovery import Discovery, Logfile

# logrotate's copies: `.N` (rotate) or `-YYYYMMDD[HH]` (dateext; `-%s` epoch dates sort
# the same way among themselves).
ROTATION_SUFFIX = re.compile(r"(?:\.(\d{1,6})|-(\d{8,14}))$")
# The input sections replay makes for files no LogstreamerInput section describes.
HEKA_STREAM_INPUT = "replay_heka_streams"
OVERRIDE_INPUT = "replay_decoder"
HEKA_RECORD_SEPARATOR = 0x1E
# How many of a root's own last names a live directory may be extended by (an archive
# of `logs/nova` standing for `<log_directory>/nova`).
ROOT_NAMES_TRIED = 3


class PlanError(Exception):
    """The archive cannot be mapped (a path that does not exist, an ambiguous root)."""


@dataclass
class FileTask:
    """One file to replay: the input section it belongs to, its stream, how to decode it."""

    index: int
    path: str
    section: str  # the input section whose decoder and splitter it gets
    stream: str  # the messages' Logger, the daemon's stream name
    splitter: str  # splitter section or default plugin name
    decoder: str  # decoder section name ("" = none)
    fingerprint: bytes = b""  # the first line: the file's identity
    size: int = 0  # bytes on disk
    start: int = 0  # uncompressed offset already acknowledged (--resume)


@dataclass
class RootMapping:
    """What an archive root was taken for."""

    root: str
    live_dir: str  # "" when nothing under it matched
    how: str  # "given" (--live-dir), "inferred", "no match"


@dataclass
class Plan:
    tasks: list[FileTask] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    roots: list[RootMapping] = field(default_factory=list)

    @property
    def sections(self) -> list[str]:
        """The input sections the tasks use, in first-use order."""
        return list(dict.fromkeys(t.section for t in self.tasks))


# --- names -------------------------------------------------------------------------------

def split_rotation(path: str) -> tuple[str, tuple[int, int] | None]:
    """(the live file's path, its rotation key) of a rotated copy; (path, None) for a
    name without a rotation suffix. Keys sort oldest first: dated copies by date, then
    numbered ones from the highest number down (LIVE, the live file, comes last)."""
    m = ROTATION_SUFFIX.search(path)
    if m is None:
        return path, None
    number, date = m.groups()
    return path[: m.start()], (0, int(date)) if date else (1, -int(number))


LIVE = (2, 0)  # the rotation key of a live file: the newest


# --- sections ----------------------------------------------------------------------------

@dataclass
class Section:
    """A LogstreamerInput section as replay matches files against it."""

    name: str
    order: int
    discovery: Discovery
    live_dir: str  # realpath of log_directory, as the daemon's regex has it
    splitter: str
    decoder: str
    has_priority: bool


def sections_of(config: Config) -> list[Section]:
    out: list[Section] = []
    for spec in config.by_category("Input"):
        if spec.type_name != "LogstreamerInput":
            continue
        c = spec.cfg
        d = Discovery(c.log_directory, c.file_match, c.priority, c.differentiator,
                      c.translation, default_name=spec.name)
        out.append(Section(spec.name, len(out), d, d.root(), c.splitter or "TokenSplitter",
                           c.decoder, bool(c.priority)))
    return out


@dataclass
class Match:
    section: Section
    stream: str
    sort_key: tuple  # the daemon's priority key
    rotation: tuple[int, int]  # from the name's rotation suffix, LIVE without one
    as_is: bool  # matched without removing a rotation suffix


def under(path: str, directory: str) -> bool:
    return path.startswith(directory if directory.endswith("/") else directory + "/")


def _first_section(sections: list[Section], path: str) -> tuple[Section, Logfile] | None:
    for s in sections:
        if under(path, s.live_dir):
            lf, _ = s.discovery.logfile(path)
            if lf is not None:
                return s, lf
    return None


def match_live(sections: list[Section], live_path: str) -> Match | None:
    """The first section (config order) that takes `live_path` as it is, else the first
    that takes it without its rotation suffix."""
    base, rotation = split_rotation(live_path)
    found = _first_section(sections, live_path)
    as_is = found is not None
    if found is None and rotation is not None:
        found = _first_section(sections, base)
    if found is None:
        return None
    s, lf = found
    return Match(s, s.discovery.stream_name(lf.groups), lf.key, rotation or LIVE, as_is)


# --- archive roots -----------------------------------------------------------------------

def components(path: str) -> list[str]:
    return [c for c in path.split("/") if c]


def join(directory: str, rel: str) -> str:
    return directory.rstrip("/") + "/" + rel


def agreement(live_path: str, archive_path: str, live_dir: str) -> int:
    """How many names of `live_dir` (a prefix of `live_path`) the archive repeats at the
    same place, counted from the end of both paths."""
    lp, ap = components(live_path), components(archive_path)
    shift = len(ap) - len(lp)
    return sum(1 for i in range(len(components(live_dir)))
               if 0 <= i + shift < len(ap) and ap[i + shift] == lp[i])


def candidate_dirs(sections: list[Section], root: str) -> list[str]:
    """Every live directory the archive root may stand for (see the module docstring)."""
    out: dict[str, None] = {}
    names = components(root)
    for s in sections:
        d = s.live_dir
        while True:
            out[d] = None
            if d == "/":
                break
            d = os.path.dirname(d)
        for k in range(1, min(ROOT_NAMES_TRIED, len(names)) + 1):
            out[join(s.live_dir, "/".join(names[-k:]))] = None
    return list(out)


def assign(sections: list[Section], root: str, live_dir: str, rels: list[str]
           ) -> tuple[dict[str, Match], int]:
    """The matches of `rels` (paths below `root`, compression removed) when `root`
    stands for `live_dir`, and the names the archive agrees on."""
    found: dict[str, Match] = {}
    agree = 0
    for rel in rels:
        live = join(live_dir, rel)
        m = match_live(sections, live)
        if m is not None:
            found[rel] = m
            agree += agreement(live, join(root, rel), m.section.live_dir)
    return found, agree


def infer_live_dir(sections: list[Section], root: str, rels: list[str]
                   ) -> tuple[str, dict[str, Match]]:
    """The live directory `root` stands for and the matches it gives ("" and {} when
    no candidate matches anything). PlanError when two candidates tie but disagree."""
    best: list[tuple[tuple[int, int], str, dict[str, Match]]] = []
    for d in candidate_dirs(sections, root):
        found, agree = assign(sections, root, d, rels)
        if not found:
            continue
        score = (agree, len(found))
        if not best or score > best[0][0]:
            best = [(score, d, found)]
        elif score == best[0][0]:
            best.append((score, d, found))
    if not best:
        return "", {}
    first = best[0]
    same = {rel: (m.section.name, m.stream) for rel, m in first[2].items()}
    rivals = [d for _, d, found in best[1:]
              if {rel: (m.section.name, m.stream) for rel, m in found.items()} != same]
    if rivals:
        raise PlanError(f"{root}: cannot tell which live directory this archive is a copy "
                        f"of: {first[1]} or {', '.join(rivals)} (its files match either "
                        "way, for different sections); name it with --live-dir")
    return first[1], first[2]


# --- the plan ----------------------------------------------------------------------------

def walk(paths: Iterable[str]) -> list[tuple[str, list[str]]]:
    """(root, paths of its files relative to it), a file argument being the only file
    of its directory's root."""
    out: list[tuple[str, list[str]]] = []
    for p in paths:
        if os.path.isdir(p):
            root = os.path.abspath(p)
            rels = []
            for d, dirs, files in os.walk(root):
                dirs.sort()
                rels += [os.path.relpath(os.path.join(d, f), root) for f in sorted(files)
                         if os.path.isfile(os.path.join(d, f))]
            out.append((root, rels))
        elif os.path.isfile(p):
            path = os.path.abspath(p)
            out.append((os.path.dirname(path), [os.path.basename(path)]))
        else:
            raise PlanError(f"{p}: no such file or directory")
    return out


def is_heka_stream(first_line: bytes) -> bool:
    """A Heka protobuf stream starts with a frame's record separator."""
    return first_line[:1] == bytes([HEKA_RECORD_SEPARATOR])


def plan(config: Config, paths: Iterable[str], decoder: str = "", live_dir: str = "",
         first_line: Callable[[str], bytes] | None = None) -> Plan:
    """Which input section, stream, splitter and decoder each file gets, in replay
    order. `first_line(path)` reads a file's identity (replay_archive.fingerprint)."""
    first_line = first_line or fingerprint
    if decoder and config.resolve(decoder, "Decoder") is None:
        raise PlanError(f"--decoder {decoder!r}: no decoder section of that name")
    given = os.path.realpath(live_dir) if live_dir else ""
    sections = sections_of(config)
    result = Plan()
    # (section order, stream, rotation, path) → task, sorted once every root is done.
    matched: list[tuple[tuple, FileTask]] = []
    streams: dict[tuple[str, str], list[tuple[Match, FileTask]]] = {}
    extra: list[FileTask] = []
    for root, rels in walk(paths):
        heads = {rel: first_line(os.path.join(root, rel)) for rel in rels}
        plain = [rel for rel in rels if not is_heka_stream(heads[rel])]
        for rel in rels:
            if is_heka_stream(heads[rel]):
                extra.append(_task(root, rel, heads[rel], HEKA_STREAM_INPUT, "replay",
                                   "HekaFramingSplitter", "ProtobufDecoder"))
            elif decoder:
                name = strip_compression(os.path.basename(rel))
                extra.append(_task(root, rel, heads[rel], OVERRIDE_INPUT,
                                   os.path.splitext(name)[0], "TokenSplitter", decoder))
        if decoder:
            result.roots.append(RootMapping(root, "", "--decoder"))
            continue
        stripped = {rel: strip_compression(rel) for rel in plain}
        if given:
            found, _ = assign(sections, root, given, list(stripped.values()))
            result.roots.append(RootMapping(root, given, "given"))
        else:
            inferred, found = infer_live_dir(sections, root, list(stripped.values()))
            result.roots.append(RootMapping(root, inferred,
                                            "inferred" if inferred else "no match"))
        for rel in plain:
            m = found.get(stripped[rel])
            if m is None:
                result.unmatched.append(os.path.join(root, rel))
                continue
            s = m.section
            task = _task(root, rel, heads[rel], s.name, m.stream, s.splitter, s.decoder)
            streams.setdefault((s.name, m.stream), []).append((m, task))
    for (_, stream), members in streams.items():
        daemon_order = members[0][0].section.has_priority and all(m.as_is for m, _ in members)
        for m, task in members:
            key = (0, m.sort_key) if daemon_order else (1, m.rotation)
            matched.append(((m.section.order, stream, key, task.path), task))
    matched.sort(key=lambda item: item[0])
    for task in [t for _, t in matched] + extra:
        task.index = len(result.tasks)
        result.tasks.append(task)
    result.unmatched.sort()
    return result


def _task(root: str, rel: str, head: bytes, section: str, stream: str, splitter: str,
          decoder: str) -> FileTask:
    path = os.path.join(root, rel)
    return FileTask(0, path, section, stream, splitter, decoder, head, os.path.getsize(path))
