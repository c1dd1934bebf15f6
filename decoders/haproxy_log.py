"""HaproxyLogDecoder: HAProxy's logs as syslog delivers them, with the fields of its
`option httplog` and `option tcplog` access lines (the class docstring has the details).
LMA kept /var/log/haproxy.log as plain syslog (docs/compatibility.md, "LMA collectors");
hekapy also decodes
the requests.
"""

from __future__ import annotations

import re

from hekapy.collector.engine.message import BOOL, DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.engine.plugin import DecodeError, register
from hekapy.decoders.base import FieldCache
from hekapy.decoders.syslog import SyslogDecoder, apply_syslog, parse_syslog

# `%ci:%cp [%tr] %ft %b/%s `: an IPv6 client is logged without brackets (`::1:35116`),
# so the port is what follows the last colon; a unix socket client is `unix:<bind id>`.
_COMMON = r"(\S+):(\d+) \[[^\]]+\] (\S+) ([^\s/]+)/(\S+) "
# `%ac/%fc/%bc/%sc/%rc %sq/%bq`; a "+" before the retries means "redispatched".
_CONNS = r" (\d+)/(\d+)/(\d+)/(\d+)/(\+?)(\d+) (\d+)/(\d+)"
# httplog (HAProxy 2.6): `%TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc` conns, then the
# captured headers (`{a|b}`, request then response) and the quoted request line. With
# `option logasap`, Ta and the bytes get a "+". The tail is lenient: HAProxy cuts lines
# longer than the logger's `len` (1024) without closing the quote or the braces, and
# `option httpslog` adds TLS fields after the request.
_HTTP_RE = re.compile(
    _COMMON + r"(-?\d+)/(-?\d+)/(-?\d+)/(-?\d+)/\+?(-?\d+) (-?\d{1,3}) \+?(\d+) \S+ \S+ "
    r"(\S{4})" + _CONNS + r"(?: \{[^}\n]*\}?)*(?: \"([^\n]*))?")
# tcplog: `%Tw/%Tc/%Tt %B %ts` conns.
_TCP_RE = re.compile(_COMMON + r"(-?\d+)/(-?\d+)/\+?(-?\d+) \+?(\d+) (\S{2})" + _CONNS)
# What only an access line starts with (HAProxy's connection-error lines have
# `%ft/%fi: ` instead of `%ft %b/%s `): if it fits neither format, it is broken.
_ACCESS_RE = re.compile(_COMMON + r"[-+\d]")
_REQUEST_RE = re.compile(r"(\S+) (\S+)(?: HTTP/(\d(?:\.\d)?))?")
_TIMERS_HTTP = ("haproxy_Tq", "haproxy_Tw", "haproxy_Tc", "haproxy_Tr", "haproxy_Ta")
_TIMERS_TCP = ("haproxy_Tw", "haproxy_Tc", "haproxy_Tt")
_CONN_NAMES = ("haproxy_actconn", "haproxy_feconn", "haproxy_beconn", "haproxy_srv_conn")
_INT_NAMES = frozenset((*_TIMERS_HTTP, *_TIMERS_TCP, *_CONN_NAMES, "haproxy_retries",
                        "haproxy_srv_queue", "haproxy_backend_queue", "http_status"))


class _Fields(dict):
    """One FieldCache per field name: frontends, servers, states, methods and the small
    numbers (timers, connection counts) repeat from line to line."""

    def __missing__(self, name: str) -> FieldCache:
        cache = self[name] = FieldCache(name, INTEGER if name in _INT_NAMES else STRING)
        return cache


_F = _Fields()
_REDISPATCHED = (Field("haproxy_redispatched", [False], BOOL),
                 Field("haproxy_redispatched", [True], BOOL))


def _conn_fields(groups: tuple[str, ...]) -> list[Field]:
    act, fe, be, srv, plus, retries, srv_q, be_q = groups
    f = _F
    return [f["haproxy_actconn"][int(act)], f["haproxy_feconn"][int(fe)],
            f["haproxy_beconn"][int(be)], f["haproxy_srv_conn"][int(srv)],
            f["haproxy_retries"][int(retries)], _REDISPATCHED[plus == "+"],
            f["haproxy_srv_queue"][int(srv_q)], f["haproxy_backend_queue"][int(be_q)]]


def _endpoints(g: tuple[str, ...]) -> list[Field]:
    ip, port, fe, be, srv = g[:5]
    if ip[:1] == "[" and ip[-1:] == "]":  # a custom log-format that brackets IPv6
        ip = ip[1:-1]
    f = _F
    return [f["http_client_ip_address"][ip], Field("client_port", [int(port)], INTEGER),
            f["haproxy_frontend"][fe], f["haproxy_backend"][be], f["haproxy_server"][srv]]


def _request_fields(tail: str) -> list[Field]:
    """`GET /x HTTP/1.1"` (maybe with httpslog fields after the quote, or cut short
    without it) → method, URL and version; nothing for `<BADREQ>`."""
    request = tail.split('"', 1)[0]  # HAProxy logs a '"' inside the request as #22
    r = _REQUEST_RE.match(request)
    if r is None:
        return []
    out = [_F["http_method"][r.group(1)], Field("http_url", [r.group(2)], STRING)]
    if r.group(3):
        out.append(_F["http_version"][r.group(3)])
    return out


def access_fields(message: str) -> list[Field] | None:
    """The fields of an httplog or tcplog message; None for HAProxy's other messages
    (proxy started, server DOWN, connection errors...). DecodeError for a message that
    starts like an access line but fits neither format."""
    f = _F
    m = _HTTP_RE.match(message)
    if m is not None:
        g = m.groups()
        out = _endpoints(g)
        timers = g[5:10]
        out += [f[n][int(v)] for n, v in zip(_TIMERS_HTTP, timers, strict=True)]
        out += (f["http_status"][int(g[10])], Field("http_response_size", [int(g[11])],
                                                    INTEGER),
                f["haproxy_termination_state"][g[12]])
        active = int(timers[4])
        if active >= 0:
            out.append(Field("http_response_time", [active / 1000], DOUBLE))
        out += _conn_fields(g[13:21])
        if g[21]:
            out += _request_fields(g[21])
        return out
    m = _TCP_RE.match(message)
    if m is not None:
        g = m.groups()
        out = _endpoints(g)
        out += [f[n][int(v)] for n, v in zip(_TIMERS_TCP, g[5:8], strict=True)]
        out += (Field("bytes_read", [int(g[8])], INTEGER), f["haproxy_termination_state"][g[9]])
        out += _conn_fields(g[10:18])
        return out
    if _ACCESS_RE.match(message) is not None:
        raise DecodeError("HAProxy access line in neither the httplog nor the tcplog format "
                          f"(truncated, or a custom log-format): {message[:160]!r}")
    return None


@register
class HaproxyLogDecoder(SyslogDecoder):
    """HAProxy's logs as syslog delivers them: lines of /var/log/haproxy.log as rsyslog
    writes them (`<134>Nov 23 20:18:05 haproxy[13036]: ...`, with or without the PRI and
    the host), or what HAProxy sends itself (RFC 3164 without a host by default, with one
    under `log-send-hostname`, RFC 5424 with `format rfc5424`).

    Everything SyslogDecoder gives: Type log, Logger = input Logger minus a trailing
    ".log" (system.haproxy), Hostname, Pid, Timestamp from the syslog header (read in
    `tz` when it has no offset), Severity from the PRI, Payload = the message, and the
    fields programname, syslogfacility, severity_label.

    Plus, for `option httplog` lines (HAProxy 2.6 shown; one line):
      `10.0.0.1:35118 [23/Nov/2026:20:18:05.296] fe be/srv 0/0/0/1/1 200 196 - - ----
      1/1/0/0/0 0/0 {captured request headers} {captured response headers}
      "GET /?q=1 HTTP/1.1"`
    - http_client_ip_address (IPv6 without brackets), client_port (int),
      haproxy_frontend, haproxy_backend, haproxy_server (`<NOSRV>` when none);
    - timers in ms (int, -1 kept: the phase never happened): haproxy_Tq (HAProxy 2.x
      logs TR there, 1.x Tq), haproxy_Tw, haproxy_Tc, haproxy_Tr, haproxy_Ta (1.x logs
      Tt there; a "+" from `option logasap` is dropped);
    - http_status (int), http_response_size (int, bytes sent to the client),
      http_response_time (double, s, Ta / 1000, only when Ta >= 0),
      haproxy_termination_state (4 characters);
    - http_method, http_url, http_version (none of them for `<BADREQ>`; a request cut
      short by HAProxy's line length limit gives its method and the cut URL);
    - haproxy_actconn, haproxy_feconn, haproxy_beconn, haproxy_srv_conn,
      haproxy_retries (int), haproxy_redispatched (bool: the retries had a "+"),
      haproxy_srv_queue, haproxy_backend_queue.
    For `option tcplog` lines
      `10.0.0.1:35118 [23/Nov/2026:20:18:05.296] fe be/srv 0/0/5 212 -- 1/1/0/0/0 0/0`:
    the same address, proxy and connection fields, haproxy_Tw, haproxy_Tc, haproxy_Tt,
    bytes_read (int, bytes sent to the client) and haproxy_termination_state
    (2 characters); no http_* fields besides the client address.

    HAProxy's other messages (`Proxy fe started.`, `Server be/web1 is DOWN, ...`,
    connection errors `ip:port [date] fe/1: SSL handshake failure`) are plain syslog
    messages. DecodeError: not a syslog line, or a message that starts like an access
    line but fits neither format (a custom log-format; send_decode_failures on the
    input forwards those undecoded).

    Keys:
      tz: zone of syslog timestamps without an offset ("Local": the node's).

    Sample:

        [haproxy_decoder]
        type = "HaproxyLogDecoder"
        tz = "UTC"
    """

    def decode(self, msg: Message) -> Message:
        parts = parse_syslog(msg.payload, self.clock)
        fields = access_fields(parts.message)
        apply_syslog(msg, parts, self.logger_for(msg.logger))
        if fields:
            msg.fields += fields
        return msg
