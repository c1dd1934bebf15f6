"""The quickstart's demo log writer."""

from __future__ import annotations

import random
import re

from hekapy.collector.app.demo import FILES, DemoLogWriter, generate

OSLO = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \d+ (DEBUG|INFO|WARNING|ERROR) "
                  r"[\w.]+ (\[-\]|\[req-[0-9a-f-]{36} \w+ \w+ - - -\]) .+$")
# oslo.log's logging_exception_prefix: no request context on traceback lines.
OSLO_EXCEPTION = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \d+ ERROR [\w.]+ $")
KEYSTONE = re.compile(r'^[\d.]+ - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                      r'"\w+ \S+ HTTP/1\.1" \d{3} \d+ \d+ "-" "[^"]*"$')
HAPROXY = re.compile(r"^\w{3} \d\d \d\d:\d\d:\d\d \S+ haproxy\[\d+\]: [\d.]+:\d+ \[[^\]]+\] "
                     r"\S+ \S+/\S+ \d+/\d+/\d+/\d+/\d+ \d{3} \d+ - - ---- [\d/]+ \d+/\d+ "
                     r'"GET \S+ HTTP/1\.1"$')


def test_deterministic():
    a = [generate(s, random.Random(7), 1.7e9) for s in FILES]
    b = [generate(s, random.Random(7), 1.7e9) for s in FILES]
    assert a == b


def test_formats():
    rng = random.Random(3)
    for service in FILES:
        for _ in range(300):
            lines = generate(service, rng, 1.7e9)
            pattern = {"keystone": KEYSTONE, "haproxy": HAPROXY}.get(service, OSLO)
            assert pattern.match(lines[0]), (service, lines[0])
            if len(lines) > 1:  # LOG.exception: the traceback as oslo.log writes it
                assert lines[1].endswith("Traceback (most recent call last):")
                prefix = lines[1][: -len("Traceback (most recent call last):")]
                assert OSLO_EXCEPTION.match(prefix), lines[1]
                assert all(line.startswith(prefix) for line in lines[1:])


def test_writes_whole_lines_and_rotation_loses_nothing(tmp_path):
    w = DemoLogWriter(tmp_path, seed=5, rotate_bytes=4096, keep=1000)
    total = sum(w.write_batch(50) for _ in range(40))
    assert total == w.lines_written
    counted = 0
    for f in tmp_path.rglob("*.log*"):
        data = f.read_bytes()
        assert not data or data.endswith(b"\n")
        counted += data.count(b"\n")
    assert counted == total
    assert list(tmp_path.rglob("nova-api.log.2"))  # rotated more than once
