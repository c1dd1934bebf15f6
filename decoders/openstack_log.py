"""OpenStackLogDecoder: oslo.log lines of every OpenStack service (LMA's
openstack_log.lua, spec/lma.md §2.1), the Neutron LBaaS and Octavia agents included.

A line `2015-11-30 08:38:59.306 3434 INFO nova.compute.manager [req-…] message\\n`
becomes a `log` message: Logger `openstack.<service>`, the line's time and pid, the
severity of the level, Payload = the message part (newline kept, as LMA kept it), and
Fields severity_label, python_module, programname, the request context ids and, for an
HTTP access line, the http_* fields.

Multi-line records, stream by stream (the stream is the input record's Logger):
- a traceback (a message starting with "Traceback (most recent call last):" and the
  following lines with the same time, pid, level and module) is one message, as in LMA;
- a line with no oslo.log prefix continues the message before it (oslo.log writes a
  message with embedded newlines that way; LMA dropped such lines).
So the last message of each stream is held back until the stream's next line shows it
is complete, or until `hold_timeout` passes (the input runner then flushes it).

Differences from LMA, on purpose:
- a timestamp with an offset keeps it; only naive ones are read in `tz`;
- the context of newer oslo.log (`[req-<global> req-<local> user project …]`) gives
  request_id = the local id and global_request_id; LMA read neither;
- LBaaS / Octavia messages naming a load balancer or pool get `loadbalancer_id` /
  `lbaas_pool_id`.

Keys (besides `tz`): none. Sample:

    [openstack_decoder]
    type = "OpenStackLogDecoder"
    tz = "Europe/Paris"
"""

from __future__ import annotations

import re
from typing import Any

from hekapy.collector.message import DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.plugin import DecodeError, register
from hekapy.decoders.base import SEVERITY_BY_LABEL, LogDecoder, parse_offset

_LINE_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?(Z|[+-]\d\d(?::?\d\d)?)? "
    r"(\d+) (CRITICAL|ERROR|WARNING|INFO|AUDIT|DEBUG|TRACE) ([A-Za-z0-9_.-]+) ?(.*)",
    re.DOTALL)
_HTTP_RE = re.compile(
    r'"([A-Z]+) (\S+) HTTP/(\d\.\d)" +(?:status: )?(\d{3}) +(?:len: )?(\d+) +'
    r"(?:time: )?(\d+(?:\.\d+)?)")
_IPV4_RE = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_UUID_HEX = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
_UUID_RE = re.compile(_UUID_HEX)
_REQ_TOKEN = "req-"
# LBaaS v1 names pools, v2 and Octavia load balancers ("lb", "loadbalancer", "load
# balancer", or a path under /var/lib/neutron/lbaas/<id>/).
_LBAAS_RE = re.compile(
    r"(?i)\b(?:(load ?balancer|lb)|(pool))(?:[ _]id)?[ :=]+['\"]?"
    r"(" + _UUID_HEX + r"|[A-Za-z0-9][A-Za-z0-9_-]*[A-Za-z0-9])"
    r"|/lbaas/(?:v2/)?(" + _UUID_HEX + r")")
_TRACEBACK = "Traceback (most recent call last):"
_SEVERITY = SEVERITY_BY_LABEL
_EPOCH_DAYS: dict[tuple[str, str, str], int] = {}


def normalize_uuid(text: str) -> str:
    """A dashed or 32-hex UUID → lower-case dashed form."""
    h = text.replace("-", "").lower()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _is_uuid(token: str) -> bool:
    return len(token) in (32, 36) and _UUID_RE.fullmatch(token) is not None


def context_fields(message: str) -> list[Field]:
    """Request ids of the first `[...]` of the message: request_id, global_request_id
    (newer oslo.log), user_id, tenant_id; `[-]` and friends give nothing."""
    end = message.find("]", 1)
    if end < 0:
        return []
    tokens = message[1:end].split()
    reqs: list[str] = []
    i = 0
    for tok in tokens:
        if tok.startswith(_REQ_TOKEN) and _is_uuid(tok[4:]):
            reqs.append(normalize_uuid(tok[4:]))
        elif i == 0 and tok in ("-", "None"):
            pass  # newer oslo.log with no global request id writes "None" (or "-")
        else:
            break
        i += 1
    if not reqs:
        # LMA also accepted a bare UUID as the request id.
        if tokens and _is_uuid(tokens[0]):
            reqs.append(normalize_uuid(tokens[0]))
            i = 1
        else:
            return []
    out = [Field("request_id", [reqs[-1]], STRING)]
    if len(reqs) > 1 and reqs[0] != reqs[-1]:
        out.append(Field("global_request_id", [reqs[0]], STRING))
    if len(tokens) >= i + 2 and _is_uuid(tokens[i]) and _is_uuid(tokens[i + 1]):
        out.append(Field("user_id", [normalize_uuid(tokens[i])], STRING))
        out.append(Field("tenant_id", [normalize_uuid(tokens[i + 1])], STRING))
    return out


def http_fields(message: str) -> list[Field] | None:
    """The http_* fields of an access line ("GET /x HTTP/1.1" status size time)."""
    m = _HTTP_RE.search(message)
    if m is None:
        return None
    method, url, version, status, size, rtime = m.groups()
    out = [
        Field("http_method", [method], STRING),
        Field("http_url", [url], STRING),
        Field("http_version", [version], STRING),
        Field("http_status", [int(status)], INTEGER),
        Field("http_response_size", [int(size)], INTEGER),
        Field("http_response_time", [float(rtime)], DOUBLE),
    ]
    ip = _IPV4_RE.search(message)
    if ip is not None:
        out.append(Field("http_client_ip_address", [ip.group()], STRING))
    return out


def lbaas_fields(message: str) -> list[Field]:
    """loadbalancer_id / lbaas_pool_id named in an LBaaS or Octavia message."""
    m = _LBAAS_RE.search(message)
    if m is None:
        return []
    _lb, pool, ident, path_id = m.groups()
    if path_id:
        return [Field("loadbalancer_id", [path_id.lower()], STRING)]
    if pool:
        return [Field("lbaas_pool_id", [ident], STRING)]
    return [Field("loadbalancer_id", [ident], STRING)]


class _Held:
    """The last message of one stream, waiting to see whether more lines belong to it."""

    __slots__ = ("key", "msg", "parts", "traceback")

    def __init__(self, msg: Message, key: tuple, traceback: bool) -> None:
        self.msg = msg
        self.key = key
        self.traceback = traceback
        self.parts: list[str] | None = None  # payload pieces appended so far

    def append(self, text: str) -> None:
        if self.parts is None:
            self.parts = [self.msg.payload]
        self.parts.append(text)

    def finish(self) -> Message:
        if self.parts is not None:
            self.msg.payload = "".join(self.parts)
        return self.msg


@register
class OpenStackLogDecoder(LogDecoder):
    __doc__ = __doc__

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self._held: dict[str, _Held] = {}
        # The latest message of each stream, for a continuation line that arrives after
        # its message was flushed (the hold timed out): it gets the same headers.
        self._last: dict[str, Message] = {}
        self._sec_key: tuple = ()
        self._sec_ns = 0
        self._loggers: dict[str, tuple[str, Field]] = {}

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def flush(self) -> list[Message]:
        out = [h.finish() for h in self._held.values()]
        self._held.clear()
        return out

    def _stream(self, logger: str) -> tuple[str, Field]:
        """Logger `openstack.<service>` and the programname field for a raw Logger
        `<service>_<program>` (the Logstreamer's differentiator)."""
        r = self._loggers.get(logger)
        if r is None:
            service, _, program = logger.partition("_")
            r = (f"openstack.{service}", Field("programname", [program or service], STRING))
            if len(self._loggers) < 10_000:
                self._loggers[logger] = r
        return r

    def decode(self, msg: Message) -> Message | list[Message] | None:
        stream = msg.logger
        held = self._held.get(stream)
        line = msg.payload
        m = _LINE_RE.match(line)
        if m is None:
            if held is not None:
                held.append(line)  # a continuation line of the held message
                return None
            last = self._last.get(stream)
            if last is None:
                raise DecodeError("not an oslo.log line (no '<date> <time> <pid> <LEVEL> "
                                  "<module>' prefix)")
            self._held[stream] = _Held(_continued(last, msg), "", False)
            return None
        (year, month, day, hour, minute, second, frac, off, pid, level, module,
         text) = m.groups()
        key = line[:m.end(11)]  # time, pid, level and module, as one string
        if held is not None and held.traceback and held.key == key:
            held.append(text)
            return None

        sec_key = (year, month, day, hour, minute, second, off)
        if sec_key != self._sec_key:
            try:
                self._sec_ns = self.clock.to_ns(
                    int(year), int(month), int(day), int(hour), int(minute), int(second),
                    0, None if off is None else parse_offset(off))
            except ValueError as e:
                raise DecodeError(f"bad timestamp: {e}") from None
            self._sec_key = sec_key
        ts = self._sec_ns
        if frac:
            ts += int(frac[:9].ljust(9, "0"))

        logger, program = self._stream(stream)
        msg.type = "log"
        msg.logger = logger
        msg.timestamp = ts
        msg.pid = int(pid)
        msg.severity = _SEVERITY[level]
        msg.payload = text
        fields = msg.fields
        fields += (Field("severity_label", [level], STRING),
                   Field("python_module", [module], STRING), program)
        traceback = text.startswith(_TRACEBACK)
        if not traceback:
            if text.startswith("["):
                fields += context_fields(text)
            if "HTTP/" in text:
                h = http_fields(text)
                if h:
                    fields += h
            if "lbaas" in module or module.startswith("octavia"):
                fields += lbaas_fields(text)

        self._held[stream] = _Held(msg, key, traceback)
        if len(self._last) < 10_000 or stream in self._last:
            self._last[stream] = msg
        return held.finish() if held is not None else None


def _continued(last: Message, record: Message) -> Message:
    """A message for a continuation line whose first line was already sent: the headers
    and line fields of that message, the continuation as Payload."""
    fields = [f for f in last.fields if f.name in _LINE_FIELDS]
    return Message(uuid=record.uuid, timestamp=last.timestamp, type=last.type,
                   logger=last.logger, severity=last.severity, payload=record.payload,
                   pid=last.pid, hostname=last.hostname, fields=fields)


_LINE_FIELDS = frozenset(("severity_label", "python_module", "programname"))
