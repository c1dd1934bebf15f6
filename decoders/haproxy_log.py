"""HaproxyLogDecoder: HAProxy's access logs as syslog delivers them (to
/var/log/haproxy.log through rsyslog, or straight from HAProxy, RFC 3164 with or
without a hostname, or RFC 5424). LMA kept these as plain syslog; hekapy also decodes
the request.

Everything SyslogDecoder gives (Type log, Logger = input Logger minus ".log",
Hostname, Pid, Severity from the PRI, programname, syslogfacility, severity_label),
plus, for `option httplog` lines
  `10.0.0.1:35118 [23/Nov/2026:20:18:05.296] fe be/srv 0/0/0/1/1 200 196 - - ----
  1/1/0/0/0 0/0 "GET / HTTP/1.1"` (one line)
and `option tcplog` lines
  `10.0.0.1:35118 [23/Nov/2026:20:18:05.296] fe be/srv 0/0/5 212 -- 1/1/0/0/0 0/0`:
- http_client_ip_address, client_port, haproxy_frontend, haproxy_backend, haproxy_server;
- timers in ms, -1 kept (the phase never happened): haproxy_Tq, haproxy_Tw, haproxy_Tc,
  haproxy_Tr, haproxy_Tt (httplog: TR/Tw/Tc/Tr/Ta; tcplog: Tw/Tc/Tt); a "+" (logasap)
  is dropped;
- http_status (int), http_response_size (bytes sent to the client), http_response_time
  (s, from the total time, when >= 0), http_method, http_url, http_version (not for
  `<BADREQ>`), haproxy_termination_state;
- haproxy_actconn, haproxy_feconn, haproxy_beconn, haproxy_srv_conn, haproxy_retries
  (haproxy_redispatched = true when it had a "+"), haproxy_srv_queue,
  haproxy_backend_queue.
Other HAProxy messages (server UP/DOWN, proxy started) are plain syslog messages.

Keys: tz ("Local"). Sample:

    [haproxy_decoder]
    type = "HaproxyLogDecoder"
"""

from __future__ import annotations

import re

from hekapy.collector.message import BOOL, DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.plugin import register
from hekapy.decoders.base import FieldCache
from hekapy.decoders.syslog import SyslogDecoder, apply_syslog, parse_syslog

_COMMON = (r"(\S+):(\d+) \[[^\]]+\] (\S+) ([^\s/]+)/(\S+) ")
_CONNS = r" (\d+)/(\d+)/(\d+)/(\d+)/(\+?)(\d+) (\d+)/(\d+)"
_HTTP_RE = re.compile(
    _COMMON + r"(-?\d+)/(-?\d+)/(-?\d+)/(-?\d+)/\+?(-?\d+) (-?\d{1,3}) \+?(\d+) \S+ \S+ "
    r"(\S{4})" + _CONNS + r"(?: \{[^}]*\})*(?: \"(.*)\")?")
_TCP_RE = re.compile(
    _COMMON + r"(-?\d+)/(-?\d+)/\+?(-?\d+) \+?(\d+) (\S{2})" + _CONNS)
_REQUEST_RE = re.compile(r"([A-Z]+) (\S+)(?: HTTP/(\d(?:\.\d)?))?")
_TIMERS_HTTP = ("haproxy_Tq", "haproxy_Tw", "haproxy_Tc", "haproxy_Tr", "haproxy_Tt")
_TIMERS_TCP = ("haproxy_Tw", "haproxy_Tc", "haproxy_Tt")
_CONN_NAMES = ("haproxy_actconn", "haproxy_feconn", "haproxy_beconn", "haproxy_srv_conn")


class _Fields(dict):
    """One FieldCache per field name: frontends, servers, states, methods and the small
    numbers (timers, connection counts) repeat from line to line."""

    def __missing__(self, name: str) -> FieldCache:
        cache = self[name] = FieldCache(name, INTEGER if name in _INT_NAMES else STRING)
        return cache


_INT_NAMES = frozenset((*_TIMERS_HTTP, *_CONN_NAMES, "haproxy_retries", "haproxy_srv_queue",
                        "haproxy_backend_queue", "http_status", "client_port", "bytes_read",
                        "http_response_size"))
_F = _Fields()
_REDISPATCHED = Field("haproxy_redispatched", [True], BOOL)


def _conn_fields(groups: tuple) -> list[Field]:
    act, fe, be, srv, plus, retries, srv_q, be_q = groups
    f = _F
    out = [f["haproxy_actconn"][int(act)], f["haproxy_feconn"][int(fe)],
           f["haproxy_beconn"][int(be)], f["haproxy_srv_conn"][int(srv)],
           f["haproxy_retries"][int(retries)]]
    if plus:
        out.append(_REDISPATCHED)
    out += (f["haproxy_srv_queue"][int(srv_q)], f["haproxy_backend_queue"][int(be_q)])
    return out


def _endpoints(g: tuple) -> list[Field]:
    ip, port, fe, be, srv = g[:5]
    f = _F
    return [f["http_client_ip_address"][ip], Field("client_port", [int(port)], INTEGER),
            f["haproxy_frontend"][fe], f["haproxy_backend"][be], f["haproxy_server"][srv]]


def access_fields(message: str) -> list[Field] | None:
    """The fields of an httplog or tcplog message; None for any other message."""
    f = _F
    m = _HTTP_RE.match(message)
    if m is not None:
        g = m.groups()
        out = _endpoints(g)
        timers, status, size, state = g[5:10], g[10], g[11], g[12]
        out += [f[n][int(v)] for n, v in zip(_TIMERS_HTTP, timers, strict=True)]
        out += (f["http_status"][int(status)], Field("http_response_size", [int(size)],
                                                     INTEGER),
                f["haproxy_termination_state"][state])
        total = int(timers[4])
        if total >= 0:
            out.append(Field("http_response_time", [total / 1000], DOUBLE))
        out += _conn_fields(g[13:21])
        request = g[21]
        if request:
            r = _REQUEST_RE.match(request)
            if r is not None:
                out += (f["http_method"][r.group(1)], Field("http_url", [r.group(2)], STRING))
                if r.group(3):
                    out.append(f["http_version"][r.group(3)])
        return out
    m = _TCP_RE.match(message)
    if m is not None:
        g = m.groups()
        out = _endpoints(g)
        out += [f[n][int(v)] for n, v in zip(_TIMERS_TCP, g[5:8], strict=True)]
        out += (Field("bytes_read", [int(g[8])], INTEGER), f["haproxy_termination_state"][g[9]])
        out += _conn_fields(g[10:18])
        return out
    return None


@register
class HaproxyLogDecoder(SyslogDecoder):
    __doc__ = __doc__

    def decode(self, msg: Message) -> Message:
        parts = parse_syslog(msg.payload, self.clock)
        apply_syslog(msg, parts, self.logger_for(msg.logger))
        fields = access_fields(parts.message)
        if fields:
            msg.fields += fields
        return msg
