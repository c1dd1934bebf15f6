"""PayloadRegexDecoder: timestamps (Go layouts, Epoch layouts, time zones), the severity
map, message_fields interpolation, oslo.log lines and option validation.

The vectors are hekapy's own, checked against the documented behaviour: the decoder's
options and message_fields interpolation,
https://hekad.readthedocs.io/en/v0.10.0/config/decoders/payload_regex.html; Go's
reference-time layouts, https://pkg.go.dev/time#pkg-constants."""

from __future__ import annotations

import logging
import tomllib
from datetime import UTC, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from hekapy.collector.engine.config import convert_options
from hekapy.collector.engine.message import STRING, Field, Message
from hekapy.collector.engine.plugin import REGISTRY, DecodeError, OptionError
from hekapy.collector.engine.regex import compile_regex
from hekapy.decoders import payload_regex
from hekapy.decoders.go_time import GO_BASIC_LAYOUTS, GoLayout, TimestampParser
from hekapy.decoders.message_fields import (
    check_message_fields,
    parse_int32,
    parse_pid,
    parse_uuid,
)
from hekapy.decoders.payload_regex import PayloadRegexDecoder
from hekapy.decoders.scribble import ScribbleDecoder

APACHE_LAYOUT = "02/Jan/2006:15:04:05 -0700"
BRACKET_TS = r"\[(?P<Timestamp>[^\]]+)\]"
# A fixed "now" for the year/date filling: 2024-03-05 10:00:00 UTC.
NOW = datetime(2024, 3, 5, 10, 0, 0, tzinfo=UTC).timestamp()


def make(cls=PayloadRegexDecoder, **overrides):
    return cls("dec", SimpleNamespace(
        **({k: o.default_value() for k, o in cls.all_options().items()} | overrides)))


def ns(*args, tz=UTC) -> int:
    """Unix nanoseconds of a wall-clock time in `tz` (microseconds via datetime)."""
    d = datetime(*args, tzinfo=tz)
    return int(d.timestamp()) * 1_000_000_000 + d.microsecond * 1000


def decode(dec, payload: str, **headers) -> Message:
    out = dec.decode(Message(payload=payload, timestamp=1, **headers))
    assert isinstance(out, Message)
    return out


# --------------------------------------------------------------------------------------
# The decoder: options, timestamps, a log file's lines, the severity map
# --------------------------------------------------------------------------------------

def test_registered():
    assert REGISTRY["PayloadRegexDecoder"] is PayloadRegexDecoder
    assert PayloadRegexDecoder.category == "Decoder"


def test_non_capture_regex_is_an_option_error():
    with pytest.raises(OptionError, match="capture groups") as e:
        make(match_regex=r"\d+")
    assert e.value.key == "match_regex"


def test_invalid_regex_is_an_option_error_naming_match_regex():
    with pytest.raises(OptionError, match="does not compile") as e:
        make(match_regex=r"\mtest")
    assert e.value.key == "match_regex"
    # The loader's conversion of the key rejects it too.
    with pytest.raises(OptionError):
        PayloadRegexDecoder.all_options()["match_regex"].convert(r"(?P<x")


def test_reading_an_apache_timestamp():
    dec = make(match_regex=BRACKET_TS, timestamp_layout=APACHE_LAYOUT)
    msg = decode(dec, "[16/Sep/2021:14:07:52 +0200]")
    assert msg.timestamp == 1631794072000000000 == ns(2021, 9, 16, 12, 7, 52)


def test_no_match_is_a_decode_failure():
    dec = make(match_regex=BRACKET_TS, timestamp_layout=APACHE_LAYOUT)
    with pytest.raises(DecodeError, match="no match"):
        dec.decode(Message(payload="GET /healthcheck 200"))


def test_no_match_with_log_errors_false_drops_quietly():
    # Heka returns neither packs nor an error: the record vanishes, no failure counted.
    dec = make(match_regex=BRACKET_TS, timestamp_layout=APACHE_LAYOUT, log_errors=False)
    assert dec.decode(Message(payload="GET /healthcheck 200")) is None


def test_uses_kitchen_timestamp_when_the_layout_does_not_fit():
    dec = make(match_regex=BRACKET_TS, timestamp_layout=APACHE_LAYOUT)
    dec.timestamp_parser.clock = lambda: NOW
    msg = decode(dec, "[9:41AM]")
    assert msg.timestamp == ns(2024, 3, 5, 9, 41)


def test_kitchen_timestamp_uses_the_real_date():
    dec = make(match_regex=BRACKET_TS, timestamp_layout=APACHE_LAYOUT)
    before = datetime.now(UTC)
    msg = decode(dec, "[11:05PM]")
    after = datetime.now(UTC)
    assert msg.timestamp in {ns(d.year, d.month, d.day, 23, 5) for d in (before, after)}


def test_supports_epoch_timestamp():
    dec = make(match_regex=BRACKET_TS, timestamp_layout="Epoch")
    assert decode(dec, "[1631801272]").timestamp == 1631801272000000000


def test_supports_epoch_timestamp_with_float():
    dec = make(match_regex=BRACKET_TS, timestamp_layout="Epoch")
    assert decode(dec, "[1631801272.004500077]").timestamp == 1631801272004500077


def test_adjusts_timestamps_to_timestamp_location():
    dec = make(match_regex=BRACKET_TS, timestamp_layout="02/Jan/2006:15:04:05",
               timestamp_location="Europe/Lisbon")
    msg = decode(dec, "[16/Sep/2021:14:07:52]")
    assert msg.timestamp == ns(2021, 9, 16, 14, 7, 52, tz=ZoneInfo("Europe/Lisbon"))
    assert msg.timestamp == 1631797672000000000  # WEST = +0100


def test_apply_representation_metadata_to_a_captured_field():
    """`name|representation` makes a field with that representation, even when the name
    is a header's: `Payload|ms` is a field, `Payload` the header."""
    dec = make(match_regex=r"took (?P<Duration>\d+\.\d+)",
               message_fields={"Duration|ms": "%Duration%",
                               "Payload|ms": "%Duration%",
                               "Payload": "request took %Duration% ms"})
    msg = decode(dec, "GET /v3 took 12.75")
    assert msg.find_field("Duration") == Field("Duration", ["12.75"], STRING, "ms")
    assert msg.find_field("Payload") == Field("Payload", ["12.75"], STRING, "ms")
    assert msg.payload == "request took 12.75 ms"


# Access-log lines of a Keystone API behind Apache, written for this test: five that the
# regex takes and three it must not (an IPv6 client, a request line Apache could not
# parse, a line cut short).
ACCESS_LINES = [
    '192.0.2.10 - admin [16/Sep/2021:14:07:52 +0200] "POST /v3/auth/tokens HTTP/1.1" 201 7284 "-" "python-keystoneclient"',  # noqa: E501
    '192.0.2.11 - - [16/Sep/2021:14:07:52 +0200] "GET /v3/auth/tokens HTTP/1.1" 200 7102 "-" "python-novaclient"',  # noqa: E501
    '2001:db8::17 - - [16/Sep/2021:14:07:53 +0200] "GET /v3 HTTP/1.1" 200 254 "-" "curl/7.68.0"',
    '198.51.100.7 - demo [16/Sep/2021:14:07:53 +0200] "GET /v3/projects?domain_id=default HTTP/1.1" 200 1893 "-" "openstacksdk"',  # noqa: E501
    '198.51.100.8 - - [16/Sep/2021:14:07:54 +0200] "-" 408 - "-" "-"',
    '203.0.113.250 - - [16/Sep/2021:14:07:54 +0200] "DELETE /v3/auth/tokens HTTP/1.1" 204 - "-" "python-keystoneclient"',  # noqa: E501
    '203.0.113.251 - - [16/Sep/2021:14:07:5',
    '192.0.2.10 - admin [16/Sep/2021:14:07:54 +0200] "HEAD /v3/auth/tokens HTTP/1.0" 200 0 "-" "python-keystoneclient"',  # noqa: E501
]
ACCESS_REGEX = (r'^(?P<Ip>\d{1,3}(?:\.\d{1,3}){3}) (?P<Ident>\S+) (?P<User>\S+) '
                r'\[(?P<Timestamp>[^\]]+)\] "(?P<Verb>[A-Z]+) (?P<Path>/\S*) '
                r'HTTP/(?P<Version>\d\.\d)" (?P<Status>\d{3}) (?P<Bytes>\d+|-)')


def test_reading_an_access_log():
    """Each matching line gives the message_fields in their order and its own time;
    each other line is a decode failure."""
    dec = make(match_regex=ACCESS_REGEX, timestamp_layout=APACHE_LAYOUT,
               message_fields={"ip": "%Ip%", "status": "%Status%", "path": "%Path%"})
    decoded, misses = [], 0
    for line in ACCESS_LINES:
        try:
            decoded.append(decode(dec, line))
        except DecodeError:
            misses += 1
    assert misses == 3
    assert [(m.get_field("ip"), m.get_field("status"), m.get_field("path"))
            for m in decoded] == [
        ("192.0.2.10", "201", "/v3/auth/tokens"),
        ("192.0.2.11", "200", "/v3/auth/tokens"),
        ("198.51.100.7", "200", "/v3/projects?domain_id=default"),
        ("203.0.113.250", "204", "/v3/auth/tokens"),
        ("192.0.2.10", "200", "/v3/auth/tokens")]
    assert all([f.name for f in m.fields] == ["ip", "status", "path"] for m in decoded)
    assert [m.timestamp for m in decoded] == [
        ns(2021, 9, 16, 12, 7, 52), ns(2021, 9, 16, 12, 7, 52), ns(2021, 9, 16, 12, 7, 53),
        ns(2021, 9, 16, 12, 7, 54), ns(2021, 9, 16, 12, 7, 54)]


# rsyslog's priority names (RFC 5424 numbers); the words below are one line each, two
# of them unknown to the map (it is case-sensitive).
SEVERITY_MAP = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5,
                "info": 6, "debug": 7}
SEVERITY_WORDS = ["notice", "err", "info", "debug", "warning", "crit", "alert", "emerg",
                  "FATAL", "info", "warning", "Err", "debug", "err"]


def test_severity_map_sets_known_words_and_logs_others(caplog):
    dec = make(match_regex=r"<(?P<Severity>[a-zA-Z]+)>", severity_map=SEVERITY_MAP)
    caplog.set_level(logging.ERROR)
    got = [decode(dec, f"kernel: <{word}> eth0 link state changed", severity=7).severity
           for word in SEVERITY_WORDS]
    assert got == [5, 3, 6, 7, 4, 2, 1, 0, 7, 6, 4, 7, 7, 3]  # unknown: unchanged (7)
    assert "Don't recognize severity: 'FATAL'" in caplog.text
    assert "Don't recognize severity: 'Err'" in caplog.text


# --------------------------------------------------------------------------------------
# message_fields: headers and fields from a template
# --------------------------------------------------------------------------------------

TEMPLATE = {"Logger": "keystone.access", "Payload": "request served",
            "Hostname": "ctl-2.cloud.test", "Pid": "4711.9", "Type": "access",
            "Severity": "5", "route|uri": "/v3/auth/tokens"}


def test_message_template_replaces_message_values():
    """Header names set the headers (Pid and Severity read as integers); any other name
    is a field, `|x` its representation."""
    dec = make(match_regex=r"(.*)", message_fields=TEMPLATE)
    msg = decode(dec, "anything")
    assert (msg.logger, msg.payload, msg.hostname, msg.pid, msg.type, msg.severity) == (
        "keystone.access", "request served", "ctl-2.cloud.test", 4711, "access", 5)
    assert msg.fields == [Field("route", ["/v3/auth/tokens"], STRING, "uri")]


def test_message_template_honors_substitutions():
    """`%name%` is replaced by that capture, in headers and fields alike."""
    tmpl = TEMPLATE | {"Payload": "%method% %route%",
                       "Hostname": "%node%.cloud.test",
                       "Type": "api %method%",
                       "route|uri": "%route%"}
    dec = make(match_regex=r"(?P<node>[\w-]+) (?P<method>GET|POST) (?P<route>\S+)",
               message_fields=tmpl)
    msg = decode(dec, "ctl-3 POST /v3/users/9c1e/password")
    assert msg.payload == "POST /v3/users/9c1e/password"
    assert msg.hostname == "ctl-3.cloud.test"
    assert msg.type == "api POST"
    assert (msg.logger, msg.pid, msg.severity) == ("keystone.access", 4711, 5)
    assert msg.fields == [Field("route", ["/v3/users/9c1e/password"], STRING, "uri")]


# --------------------------------------------------------------------------------------
# The Epoch layouts: seconds, milli-, micro- or nanoseconds, a fraction below them
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("layout", "text", "expected"), [
    ("Epoch", "1631801272", 1631801272000000000),
    ("Epoch", "1631801272.004500077", 1631801272004500077),
    ("EpochMilli", "1631801272004", 1631801272004000000),
    ("EpochMilli", "1631801272004.500077", 1631801272004500077),
    ("EpochMilli", "1631801272004.5000779999", 1631801272004500077),  # cut, not rounded
    ("EpochMicro", "1631801272004500", 1631801272004500000),
    ("EpochMicro", "1631801272004500.077", 1631801272004500077),
    ("EpochNano", "1631801272004500077", 1631801272004500077),
    ("EpochNano", "1631801272004500077.75", 1631801272004500077),
    ("Epoch", "1631801272.25", 1631801272250000000),
    ("Epoch", "1631801272.", 1631801272000000000),
    ("EpochMilli", "999", 999000000),
    ("Epoch", "0", 0),
])
def test_epoch_layouts(layout, text, expected):
    assert TimestampParser(layout, UTC)(text) == expected
    dec = make(match_regex=r"ts=(?P<Timestamp>\S*)", timestamp_layout=layout,
               timestamp_location="America/New_York")  # ignored for Epoch layouts
    assert decode(dec, f"ts={text}").timestamp == expected


@pytest.mark.parametrize("text", ["", ".", "-1", "+1", "12a", "1.2.3", "1e9",
                                  "99999999999999999999"])
def test_bad_epoch_values_do_not_parse(text):
    assert TimestampParser("Epoch", UTC)(text) is None


def test_unknown_epoch_layout_is_an_option_error():
    with pytest.raises(OptionError) as e:
        make(match_regex=BRACKET_TS, timestamp_layout="EpochSeconds")
    assert e.value.key == "timestamp_layout"


# --------------------------------------------------------------------------------------
# Go layouts
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("layout", "text", "expected"), [
    (APACHE_LAYOUT, "16/Sep/2021:14:07:52 -0700", ns(2021, 9, 16, 21, 7, 52)),
    (APACHE_LAYOUT, "16/sep/2021:14:07:52 +0130", ns(2021, 9, 16, 12, 37, 52)),
    ("2006-01-02 15:04:05.000", "2026-11-23 20:17:46.988", ns(2026, 11, 23, 20, 17, 46, 988000)),
    ("2006-01-02 15:04:05,000", "2026-11-23 20:17:46,988", ns(2026, 11, 23, 20, 17, 46, 988000)),
    # A fraction after the seconds is accepted even when the layout has none (Go).
    ("2006-01-02 15:04:05", "2026-11-23 20:17:46.5", ns(2026, 11, 23, 20, 17, 46, 500000)),
    ("2006-01-02 15:04:05.999999", "2026-11-23 20:17:46", ns(2026, 11, 23, 20, 17, 46)),
    ("2006-01-02 15:04:05.999999", "2026-11-23 20:17:46.25", ns(2026, 11, 23, 20, 17, 46, 250000)),
    ("2006-01-02T15:04:05Z07:00", "2021-09-16T14:07:52Z", ns(2021, 9, 16, 14, 7, 52)),
    ("2006-01-02T15:04:05Z07:00", "2021-09-16T14:07:52+02:00", ns(2021, 9, 16, 12, 7, 52)),
    ("2006-01-02T15:04:05Z0700", "2021-09-16T14:07:52-0230", ns(2021, 9, 16, 16, 37, 52)),
    ("2006-01-02T15:04:05-07", "2021-09-16T14:07:52+05", ns(2021, 9, 16, 9, 7, 52)),
    ("2006-01-02 15:04:05 -07:00:00", "2021-09-16 14:07:52 +01:00:30",
     ns(2021, 9, 16, 13, 7, 22)),
    ("Mon Jan _2 15:04:05 2006", "Thu Sep  2 14:07:52 2021", ns(2021, 9, 2, 14, 7, 52)),
    ("Mon Jan _2 15:04:05 2006", "Thu Sep 16 14:07:52 2021", ns(2021, 9, 16, 14, 7, 52)),
    ("Monday, 02-Jan-06 15:04:05 MST", "Thursday, 16-Sep-21 14:07:52 UTC",
     ns(2021, 9, 16, 14, 7, 52)),
    ("January 2, 2006 3:04:05 PM", "September 16, 2021 2:07:52 PM",
     ns(2021, 9, 16, 14, 7, 52)),
    ("January 2, 2006 3:04:05 PM", "September 16, 2021 12:07:52 AM",
     ns(2021, 9, 16, 0, 7, 52)),
    ("1/2/06 03:04pm", "9/16/21 12:05pm", ns(2021, 9, 16, 12, 5)),
    ("06-1-2 15:4:5", "99-4-8 7:5:3", ns(1999, 4, 8, 7, 5, 3)),
    ("20060102150405", "20210916140752", ns(2021, 9, 16, 14, 7, 52)),
    ("_2006.01.02", "_2021.09.16", ns(2021, 9, 16)),
    ("2006-01-02 15:04:05.000000000", "2021-09-16 14:07:52.123456789",
     ns(2021, 9, 16, 14, 7, 52) + 123456789),
])
def test_go_layouts(layout, text, expected):
    assert TimestampParser(layout, UTC)(text) == expected


@pytest.mark.parametrize(("layout", "text"), [
    ("2006-01-02", "2021-13-01"),      # month out of range
    ("2006-01-02", "2021-09-31"),      # day out of range
    ("2006-01-02", "2021-02-29"),      # not a leap year
    ("15:04:05", "24:00:00"),          # hour out of range
    ("15:04:05", "12:60:00"),          # minute
    ("15:04:05", "12:00:60"),          # second (no leap seconds in Go)
    ("3:04PM", "13:04PM"),             # 12-hour clock
    ("3:04PM", "1:04pm"),              # PM is case-sensitive
    ("2006-01-02", "2021-09-16 junk"),  # extra text
    ("2006-01-02 15:04:05.000", "2021-09-16 14:07:52.12"),  # .000 needs 3 digits
    ("2006-01-02 -0700", "2021-09-16 +2500"),  # offset hour > 24
])
def test_go_layout_rejections(layout, text):
    assert GoLayout(layout).parse(text) is None
    assert TimestampParser(layout, UTC)(text) is None


def test_space_runs_match_any_number_of_spaces():
    assert TimestampParser("Jan _2 15:04:05", UTC, clock=lambda: NOW)(
        "Sep   8   14:07:52") == ns(2024, 9, 8, 14, 7, 52)


BASIC_SAMPLES = (
    "Thu Sep 16 14:07:52 2021", "Thu Sep 16 14:07:52 UTC 2021",
    "Thu Sep 16 14:07:52 +0000 2021", "16 Sep 21 14:07 UTC", "16 Sep 21 14:07 +0000",
    "Thursday, 16-Sep-21 14:07:52 UTC", "Thu, 16 Sep 2021 14:07:52 UTC",
    "Thu, 16 Sep 2021 14:07:52 +0000", "2021-09-16T14:07:52Z",
    "2021-09-16T14:07:52.123456789Z", "2:07PM", "Sep 16 14:07:52", "Sep 16 14:07:52.123",
    "Sep 16 14:07:52.123456", "Sep 16 14:07:52.123456789",
)


def test_basic_layouts_parse_their_samples():
    for layout, sample in zip(GO_BASIC_LAYOUTS, BASIC_SAMPLES, strict=True):
        r = GoLayout(layout).parse(sample)
        assert r is not None, layout
        assert r[3:5] == (14, 7), layout


def test_default_layout_falls_back_to_go_layouts():
    # timestamp_layout defaults to "" as in Heka: only the predefined layouts apply.
    dec = make(match_regex=BRACKET_TS)
    assert decode(dec, "[2021-09-16T14:07:52.5+02:00]").timestamp == (
        ns(2021, 9, 16, 12, 7, 52, 500000))
    assert decode(dec, "[Thu, 16 Sep 2021 14:07:52 -0700]").timestamp == 1631826472000000000
    assert decode(dec, "[Thu Sep 16 14:07:52 2021]").timestamp == ns(2021, 9, 16, 14, 7, 52)


def test_year_zero_becomes_the_current_year():
    p = TimestampParser("Jan _2 15:04:05", UTC, clock=lambda: NOW)
    assert p("Sep 16 14:07:52") == ns(2024, 9, 16, 14, 7, 52)
    assert p("Jan  1 00:00:01") == ns(2024, 1, 1, 0, 0, 1)  # Heka would use today here


def test_today_cache_follows_the_clock_both_ways():
    t = [NOW]
    p = TimestampParser("15:04:05", UTC, clock=lambda: t[0])
    assert p("12:00:00") == ns(2024, 3, 5, 12)
    t[0] = datetime(2024, 3, 6, 0, 0, 0, tzinfo=UTC).timestamp()
    assert p("12:00:00") == ns(2024, 3, 6, 12)
    t[0] = NOW
    assert p("12:00:00") == ns(2024, 3, 5, 12)


def test_feb_29_without_a_year_rolls_over_in_a_common_year():
    # Go parses year 0 (a leap year) then AddDate(2023, ...) normalises Feb 29 to Mar 1.
    p = TimestampParser("Jan _2 15:04:05", UTC,
                        clock=lambda: datetime(2023, 6, 1, tzinfo=UTC).timestamp())
    assert p("Feb 29 12:00:00") == ns(2023, 3, 1, 12)


def test_date_less_timestamp_gets_today_in_the_location():
    tz = ZoneInfo("Asia/Tokyo")  # 2024-03-05 10:00 UTC is 19:00 the same day in Tokyo
    p = TimestampParser("15:04:05", tz, clock=lambda: NOW)
    assert p("23:30:00") == ns(2024, 3, 5, 23, 30, tz=tz)
    late = datetime(2024, 3, 5, 20, 0, tzinfo=UTC).timestamp()  # already Mar 6 in Tokyo
    p = TimestampParser("15:04:05", tz, clock=lambda: late)
    assert p("01:00:00") == ns(2024, 3, 6, 1, 0, tz=tz)


def test_timestamp_location_handles_dst():
    tz = ZoneInfo("Europe/Berlin")
    p = TimestampParser("2006-01-02 15:04:05", tz)
    assert p("2024-01-15 12:00:00") == ns(2024, 1, 15, 11, 0)  # CET
    assert p("2024-07-15 12:00:00") == ns(2024, 7, 15, 10, 0)  # CEST
    # An explicit offset wins over the location.
    p = TimestampParser("2006-01-02 15:04:05 -0700", tz)
    assert p("2024-07-15 12:00:00 +0000") == ns(2024, 7, 15, 12, 0)


def test_offset_cache_follows_dst_transitions():
    tz = ZoneInfo("Europe/Berlin")
    p = TimestampParser("2006-01-02 15:04:05", tz)
    seq = ["2024-03-31 01:59:00", "2024-03-31 01:59:59", "2024-03-31 03:00:00",
           "2024-03-31 03:00:30", "2024-10-27 01:59:59", "2024-10-27 03:00:00",
           "2024-03-31 01:59:30"]
    expected = [ns(2024, 3, 31, 0, 59), ns(2024, 3, 31, 0, 59, 59), ns(2024, 3, 31, 1, 0),
                ns(2024, 3, 31, 1, 0, 30), ns(2024, 10, 26, 23, 59, 59),
                ns(2024, 10, 27, 2, 0), ns(2024, 3, 31, 0, 59, 30)]
    assert [p(x) for x in seq] == expected


def test_zone_abbreviations():
    la = ZoneInfo("America/Los_Angeles")
    p = TimestampParser("2006-01-02 15:04:05 MST", la)
    assert p("2024-07-15 12:00:00 PDT") == ns(2024, 7, 15, 19, 0)
    assert p("2024-01-15 12:00:00 PST") == ns(2024, 1, 15, 20, 0)
    assert p("2024-07-15 12:00:00 PST") == ns(2024, 7, 15, 20, 0)  # the zone's other name
    assert p("2024-07-15 12:00:00 UTC") == ns(2024, 7, 15, 12, 0)
    assert p("2024-07-15 12:00:00 GMT+2") == ns(2024, 7, 15, 10, 0)
    assert p("2024-07-15 12:00:00 XYZ") == ns(2024, 7, 15, 12, 0)  # unknown: UTC, as Go


def test_timestamp_location_option():
    dec = make(match_regex=r"(?P<Timestamp>.+)", timestamp_layout="2006-01-02 15:04:05",
               timestamp_location="Asia/Kolkata")
    assert decode(dec, "2024-03-05 15:30:00").timestamp == ns(2024, 3, 5, 10, 0)
    for name in ("", "UTC", "Local"):
        make(match_regex=BRACKET_TS, timestamp_location=name)


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "Europe", "../etc/passwd", "/etc"])
def test_invalid_timezone_is_an_option_error(name):
    with pytest.raises(OptionError, match="time zone") as e:
        make(match_regex=BRACKET_TS, timestamp_location=name)
    assert e.value.key == "timestamp_location"


def test_unparseable_or_empty_timestamp_keeps_the_header(caplog):
    dec = make(match_regex=r"^(?P<Timestamp>\S*) x", timestamp_layout=APACHE_LAYOUT)
    caplog.set_level(logging.ERROR)
    assert decode(dec, "garbage x").timestamp == 1
    assert decode(dec, " x").timestamp == 1
    assert "Don't recognize Timestamp: 'garbage'" in caplog.text


def test_timestamp_with_non_participating_group_keeps_the_header():
    dec = make(match_regex=r"a(?:\[(?P<Timestamp>[^\]]+)\])?", timestamp_layout="Epoch")
    assert decode(dec, "a").timestamp == 1
    assert decode(dec, "a[5]").timestamp == 5_000_000_000


# --------------------------------------------------------------------------------------
# Severity, message_fields, headers
# --------------------------------------------------------------------------------------

def test_severity_capture_as_number_and_map():
    dec = make(match_regex=r"<(?P<Severity>[^>]*)>", severity_map={"WARN": 4, "": 5})
    assert decode(dec, "<3>").severity == 3
    assert decode(dec, "<+2>").severity == 2
    assert decode(dec, "<WARN>").severity == 4
    assert decode(dec, "<>").severity == 5  # an empty capture can be mapped too
    assert decode(dec, "<warn>", severity=7).severity == 7  # map is case-sensitive
    assert decode(dec, "<9999999999>", severity=7).severity == 7  # not an int32
    assert decode(dec, "< 3>", severity=7).severity == 7


@pytest.mark.parametrize("bad", [{"WARN": "4"}, {"WARN": True}, {"WARN": 2**31}])
def test_severity_map_values_must_be_ints(bad):
    with pytest.raises(OptionError) as e:
        make(match_regex=BRACKET_TS, severity_map=bad)
    assert e.value.key == "severity_map"
    with pytest.raises(OptionError):
        PayloadRegexDecoder.all_options()["severity_map"].convert(bad)


def test_message_fields_values_must_be_strings():
    with pytest.raises(OptionError) as e:
        make(match_regex=BRACKET_TS, message_fields={"Pid": 5})
    assert e.value.key == "message_fields"


def test_captures_do_not_become_fields_without_message_fields():
    # Heka's PopulateMessage only applies the template: named captures alone add nothing.
    dec = make(match_regex=r"(?P<Timestamp>\d+) (?P<Host>\S+) (?P<Severity>\d) (?P<Rest>.*)",
               timestamp_layout="Epoch")
    msg = decode(dec, "10 web1 3 hello")
    assert msg.fields == []
    assert (msg.timestamp, msg.severity, msg.payload) == (10_000_000_000, 3, "10 web1 3 hello")


def test_interpolation_rules():
    dec = make(match_regex=r"(?P<Severity>\d) (?P<Name>\w+) (\w+)(?: (?P<Opt>x))?",
               message_fields={
                   "a": "%Name%-%2%-%3%",  # unnamed groups get their number as name
                   "b": "%Missing% and %Severity%",  # unknown ⇒ <Name>; Severity deleted
                   "c": "100%% %Name %Name%%",      # % without a name stays literal
                   "d": "[%Opt%]",                  # non-participating group ⇒ ""
                   "e": "const",
                   "f": "",
               })
    msg = decode(dec, "4 foo bar")
    got = {f.name: f.value for f in msg.fields}
    assert got == {"a": "foo-<2>-bar", "b": "<Missing> and <Severity>",
                   "c": "100%% %Name foo%", "d": "[]", "e": "const", "f": ""}
    assert all(f.value_type == STRING and f.representation == "" for f in msg.fields)
    assert msg.severity == 4


def test_all_headers_and_other_keys():
    dec = make(match_regex=r"(?P<H>\S+) (?P<P>\S+) (?P<U>\S+) (?P<T>\S+)",
               message_fields={"Type": "t.%T%", "Logger": "lg", "Hostname": "%H%",
                               "Pid": "%P%", "Uuid": "%U%", "Severity": "2",
                               "EnvVersion": "0.8", "Timestamp": "%T%",
                               "Bytes|B": "12", "a|b|c": "x"})
    msg = decode(dec, "web1 4242 0e3f6c1a-2b4d-4e5f-8a9b-0c1d2e3f4a5b 77")
    assert (msg.type, msg.logger, msg.hostname, msg.pid, msg.severity) == (
        "t.77", "lg", "web1", 4242, 2)
    assert msg.uuid_text == "0e3f6c1a-2b4d-4e5f-8a9b-0c1d2e3f4a5b"
    assert msg.env_version == ""
    assert msg.timestamp == 1
    assert msg.fields == [Field("EnvVersion", ["0.8"], STRING),
                          Field("Timestamp", ["77"], STRING),
                          Field("Bytes", ["12"], STRING, "B"),
                          Field("a", ["x"], STRING, "b|c")]


def test_uuid_forms():
    dec = make(match_regex=r"(?P<U>.*)", message_fields={"Uuid": "%U%"})
    assert decode(dec, "0123456789abcdef").uuid == b"0123456789abcdef"  # 16 bytes: raw
    assert decode(dec, "urn:uuid:0E3F6C1A-2B4D-4E5F-8A9B-0C1D2E3F4A5B").uuid_text == (
        "0e3f6c1a-2b4d-4e5f-8a9b-0c1d2e3f4a5b")
    with pytest.raises(DecodeError, match="Uuid"):
        dec.decode(Message(payload="0e3f6c1a2b4d4e5f8a9b0c1d2e3f4a5b"))


@pytest.mark.parametrize(("text", "pid"), [("123", 123), ("123.456", 123), ("-1", -1),
                                           ("+7.x", 7)])
def test_pid_takes_the_integer_part(text, pid):
    dec = make(match_regex=r"(?P<P>.*)", message_fields={"Pid": "%P%"})
    assert decode(dec, text).pid == pid


@pytest.mark.parametrize("text", ["", "abc", "1e3", "4294967296", ".5"])
def test_bad_pid_or_severity_is_a_decode_failure(text):
    dec = make(match_regex=r"(?P<P>.*)", message_fields={"Pid": "%P%"})
    with pytest.raises(DecodeError, match="Pid"):
        dec.decode(Message(payload=text))
    dec = make(match_regex=r"(?P<P>.*)", message_fields={"Severity": "%P%"})
    with pytest.raises(DecodeError, match="Severity"):
        dec.decode(Message(payload=text))


@pytest.mark.parametrize(("text", "value"), [
    ("2147483647", 2**31 - 1), ("-2147483648", -(2**31)), ("+0", 0), ("2147483648", None),
    ("-2147483649", None), (" 1", None), ("1_000", None), ("", None),
    ("\u0661", None)])  # an Arabic-Indic one: Python's int() takes it, Go's does not
def test_parse_int32_is_gos_parseint_base_10_bits_32(text, value):
    assert parse_int32(text) == value
    assert parse_pid(text + ".9") == value


def test_parse_uuid_and_check_message_fields_directly():
    assert parse_uuid("0E3F6C1A-2B4D-4E5F-8A9B-0C1D2E3F4A5B").hex() == (
        "0e3f6c1a2b4d4e5f8a9b0c1d2e3f4a5b")
    with pytest.raises(DecodeError, match="invalid Uuid 'x'"):
        parse_uuid("x")
    table = {"Type": "t", "n": "v"}
    assert check_message_fields(table) is table
    with pytest.raises(OptionError, match=r"message_fields\.n: expected a string") as e:
        check_message_fields({"n": 3})
    assert e.value.key == "message_fields"


def test_scribble_reads_pid_severity_and_uuid_as_payload_regex_does():
    """One parser for both: the same text gives the same header, or fails in both (a
    config error for ScribbleDecoder, a decode failure for PayloadRegexDecoder)."""
    scribble = ScribbleDecoder
    for key, text in [("Pid", "12.9"), ("Severity", "-3"),
                      ("Uuid", "0e3f6c1a-2b4d-4e5f-8a9b-0c1d2e3f4a5b"),
                      ("Pid", "x"), ("Severity", "4294967296"), ("Uuid", "0e3f")]:
        regex = make(match_regex=r"(?P<V>.*)", message_fields={key: "%V%"})
        try:
            want = getattr(decode(regex, text), key.lower())
        except DecodeError:
            with pytest.raises(OptionError, match=key):
                make(scribble, message_fields={key: text})
            continue
        got = make(scribble, message_fields={key: text}).decode(Message(payload=""))
        assert getattr(got, key.lower()) == want


def test_message_fields_severity_overrides_the_captured_one():
    dec = make(match_regex=r"(?P<Severity>\w+)", severity_map={"ERR": 3},
               message_fields={"Severity": "1"})
    assert decode(dec, "ERR").severity == 1


def test_search_is_unanchored_leftmost_first_with_re2_semantics():
    dec = make(match_regex=r"(?P<A>a+|ab)(?P<B>\d*)$", message_fields={"A": "%A%", "B": "%B%"})
    with pytest.raises(DecodeError):  # RE2: $ is the end of the text, not before "\n"
        dec.decode(Message(payload="xx ab12\n"))
    msg = decode(dec, "xx ab12")
    assert (msg.get_field("A"), msg.get_field("B")) == ("ab", "12")
    msg = decode(dec, "zz aa7")
    assert (msg.get_field("A"), msg.get_field("B")) == ("aa", "7")


def test_non_ascii_payloads_and_the_fallback_matcher():
    rx = compile_regex(r"(?P<w>\pL+)\s+(?P<n>\d+)?(?P<r>.*)")
    fast = payload_regex._make_matcher(rx)
    slow = payload_regex._make_matcher(SimpleNamespace(search=rx.search))
    for text in ("über 12 ünïcode ✓", "ascii only", "日本語 7", "  "):
        assert fast(text) == slow(text), text
    # Lone surrogates (the inputs never produce them: they decode with "replace") become
    # "?" in both paths.
    assert fast("é \udcff3") == slow("é \udcff3") == ["é", "", "?3"]
    assert fast("日本語 7 …") == ["日本語", "7", " …"]
    assert fast("ab cd") == ["ab", "", "cd"]


def test_successful_decode_clears_raw_bytes():
    dec = make(match_regex=r"(?P<x>.)")
    msg = Message(payload="abc", raw=b"abc")
    assert dec.decode(msg) is msg
    assert msg.raw is None


# --------------------------------------------------------------------------------------
# oslo.log
# --------------------------------------------------------------------------------------

# Lines in oslo.log 8.3.2's default context format (logging_context_format_string,
# https://docs.openstack.org/oslo.log/latest/configuration/index.html) from a
# neutron-lbaas agent.
OSLO_LINES = [
    "2026-11-23 20:17:46.988 12731 INFO neutron_lbaas.drivers.haproxy.namespace_driver [-] Agent starting; no request context yet",  # noqa: E501
    "2026-11-23 20:17:46.988 12731 INFO neutron_lbaas.drivers.haproxy.namespace_driver [req-aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee req-1b8e7f2c-3d4a-4b5c-9d6e-7f8a9b0c1d2e 8f1c2a7e9b3d4e5f 0b1d2c3e4f5a6b7c - - - -] Deploying loadbalancer lb-6c1e0f5e with 2 members",  # noqa: E501
    "2026-11-23 20:17:46.989 12731 WARNING neutron_lbaas.drivers.haproxy.namespace_driver [req-aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee req-1b8e7f2c-3d4a-4b5c-9d6e-7f8a9b0c1d2e 8f1c2a7e9b3d4e5f 0b1d2c3e4f5a6b7c - - - -] Member 10.0.0.5:80 marked DOWN by health monitor",  # noqa: E501
    "2026-11-23 20:17:46.989 12731 ERROR neutron_lbaas.drivers.haproxy.namespace_driver [req-aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee req-1b8e7f2c-3d4a-4b5c-9d6e-7f8a9b0c1d2e 8f1c2a7e9b3d4e5f 0b1d2c3e4f5a6b7c - - - -] Failed to update haproxy config for lb lb-6c1e0f5e: KeyError: 'missing'",  # noqa: E501
]
OSLO_REGEX = (r"^(?P<Timestamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) (?P<Pid>\d+) "
              r"(?P<Severity>[A-Z]+) (?P<Module>\S+) "
              r"\[(?:-|(?P<RequestId>req-\S+) (?P<GlobalRequestId>req-\S+) (?P<User>\S+) "
              r"(?P<Tenant>\S+) [^\]]*)\] (?P<Message>.*)")
OSLO_SEVERITIES = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}


def test_oslo_log_lines():
    dec = make(match_regex=OSLO_REGEX, timestamp_layout="2006-01-02 15:04:05.000",
               severity_map=OSLO_SEVERITIES,
               message_fields={"Type": "log", "Logger": "openstack.lbaas", "Pid": "%Pid%",
                               "Payload": "%Message%", "python_module": "%Module%",
                               "request_id": "%RequestId%", "user_id": "%User%",
                               "tenant_id": "%Tenant%"})
    msgs = [decode(dec, line, hostname="node-1") for line in OSLO_LINES]
    assert [m.timestamp for m in msgs] == [
        ns(2026, 11, 23, 20, 17, 46, 988000), ns(2026, 11, 23, 20, 17, 46, 988000),
        ns(2026, 11, 23, 20, 17, 46, 989000), ns(2026, 11, 23, 20, 17, 46, 989000)]
    assert [m.severity for m in msgs] == [6, 6, 4, 3]
    assert {m.pid for m in msgs} == {12731}
    assert {(m.type, m.logger, m.hostname) for m in msgs} == {
        ("log", "openstack.lbaas", "node-1")}
    assert msgs[0].payload == "Agent starting; no request context yet"
    assert msgs[0].get_field("request_id") == ""
    m = msgs[3]
    assert m.payload == "Failed to update haproxy config for lb lb-6c1e0f5e: KeyError: 'missing'"
    assert m.as_dict()["Fields"] == [
        {"name": n, "value_type": "STRING", "representation": "", "value": [v]}
        for n, v in [("python_module", "neutron_lbaas.drivers.haproxy.namespace_driver"),
                     ("request_id", "req-aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"),
                     ("user_id", "8f1c2a7e9b3d4e5f"), ("tenant_id", "0b1d2c3e4f5a6b7c")]]


def test_docstring_sample_is_a_working_config():
    doc = PayloadRegexDecoder.sample()
    start = doc.index("[oslo_decoder]")
    toml_text = "\n".join(line.strip() for line in doc[start:].splitlines())
    body = tomllib.loads(toml_text)["oslo_decoder"]
    errors: list = []
    cfg = convert_options(PayloadRegexDecoder.all_options(), body, "doc", "oslo_decoder",
                          errors)
    assert errors == []
    dec = PayloadRegexDecoder("oslo_decoder", cfg)
    msg = decode(dec, OSLO_LINES[2])
    assert (msg.type, msg.pid, msg.severity) == ("oslo.log", 12731, 4)
    assert msg.payload == "Member 10.0.0.5:80 marked DOWN by health monitor"
    assert msg.get_field("python_module") == "neutron_lbaas.drivers.haproxy.namespace_driver"
    assert msg.timestamp == ns(2026, 11, 23, 20, 17, 46, 989000)
    for key in ("match_regex", "severity_map", "message_fields", "timestamp_layout",
                "timestamp_location", "log_errors"):
        assert key in doc
