"""OpenStackLogDecoder: oslo.log lines of every OpenStack service (LMA's
openstack_log.lua; docs/compatibility.md, "LMA decoders"), the Neutron LBaaS and Octavia
agents included.

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
is complete, or until the stream stayed quiet for `hold_timeout` (the input runner then
flushes it). Each held message notes the input's batch its first and its latest line
came in (`oldest_held_batch`, `flush_stale`): the runner holds back only those batches'
positions, and flushes a quiet stream's message without cutting a busy one's.

Differences from LMA, on purpose:
- a timestamp with an offset keeps it; only naive ones are read in `tz`;
- the context of newer oslo.log (`[req-<global> req-<local> user project …]`) gives
  request_id = the local id and global_request_id; LMA read neither;
- LBaaS / Octavia messages naming a load balancer or pool get `loadbalancer_id` /
  `lbaas_pool_id`.

Keys (besides `tz`): hold_timeout ("1s"): how long a stream's last message waits for
more lines before it is sent anyway (the delay a quiet stream's last line sees). Sample:

    [openstack_decoder]
    type = "OpenStackLogDecoder"
    tz = "Europe/Paris"
    hold_timeout = "500ms"
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from hekapy.collector.compiled import typed_module
from hekapy.collector.engine.message import DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.engine.plugin import DecodeError, Option, OptionError, register
from hekapy.collector.engine.severity import SEVERITY_BY_LABEL
from hekapy.decoders.base import CACHE_MAX as _CACHE_MAX
from hekapy.decoders.base import FieldCache, LogDecoder, parse_offset

_LINE_RE = re.compile(
    r"(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)(?:[.,](\d+))?(Z|[+-]\d\d(?::?\d\d)?)? "
    r"(\d+) (CRITICAL|ERROR|WARNING|INFO|AUDIT|DEBUG|TRACE) ([A-Za-z0-9_.-]+) ?(.*)",
    re.DOTALL)
_G_KEY_END = 6  # the line up to the end of group 6 (the module) is the traceback key
# The common request contexts, parsed in one match: old oslo.log `[req-<id> <user>
# <tenant> …]` and new `[<global>|None|- req-<id> <user> <tenant> …]`. Anything else
# goes through context_fields().
_LC_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ID = r"[0-9a-f]{32}|" + _LC_UUID
_FAST_CTX_RE = re.compile(
    r"\[(?:(?:req-(" + _LC_UUID + r")|None|-) )?req-(" + _LC_UUID + r")"
    r"(?: (" + _ID + r") (" + _ID + r"))?[ \]]")
_HTTP_RE = re.compile(
    r'"([A-Z]+) (\S+) HTTP/(\d\.\d)" +(?:status: )?(\d{3}) +(?:len: )?(\d+) +'
    r"(?:time: )?(\d+(?:\.\d+)?)")
_IPV4_AT_RE = re.compile(r"(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
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
_LEVELS = {label: (sev, Field("severity_label", [label], STRING))
           for label, sev in SEVERITY_BY_LABEL.items()}


# Nanoseconds per unit of an n-digit fraction of a second (n <= 9).
_FRAC_SCALE = tuple(10 ** (9 - n) for n in range(10))


def match_line(line: str) -> tuple | None:
    """(stamp, fraction, offset, pid, level, module, message, end of the module) of an
    oslo.log line, or None: the definition oslo_line.pyx's `line` is held to."""
    m = _LINE_RE.match(line)
    if m is None:
        return None
    stamp, frac, off, pid, level, module, text = m.groups()
    return stamp, frac, off, int(pid), level, module, text, m.end(_G_KEY_END)


def match_context(text: str) -> tuple | None:
    """(global request id, request id, user, tenant) of the common request contexts at
    the start of `text`, or None: the definition oslo_line.pyx's `context` is held to."""
    m = _FAST_CTX_RE.match(text)
    return None if m is None else m.groups()


def _utf8_len(text: str) -> int:
    """Bytes of `text` in UTF-8, what max_message_size counts (a line of invalid bytes
    decodes to U+FFFD, three bytes each); an ASCII line is its length, known at once."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _frac_ns(frac: str) -> int:
    """Nanoseconds of the digits after the decimal point (beyond 9: cut)."""
    frac = frac[:9]
    return int(frac) * _FRAC_SCALE[len(frac)]


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


def match_http(message: str) -> tuple | None:
    """(method, url, version, status, size, time) of the first HTTP access part of the
    message ("GET /x HTTP/1.1" status size time), or None: the definition oslo_line.pyx's
    `http` is held to."""
    i = message.find(" HTTP/")
    while i >= 0:
        q = message.rfind('"', 0, i)
        m = _HTTP_RE.match(message, q) if q >= 0 else None
        if m is not None:
            method, url, version, status, size, rtime = m.groups()
            return method, url, version, int(status), int(size), float(rtime)
        i = message.find(" HTTP/", i + 6)
    return None


# The typed readers (oslo_line.pyx) where built and not ruled out by HEKAPY_PURE; the
# reference otherwise. The typed `line` and `http` answer _FALLBACK where only the
# reference can tell (a non-ASCII character where it wants a digit).
_oslo_line = typed_module("hekapy.decoders.oslo_line")
_parse_line: Any = match_line if _oslo_line is None else _oslo_line.line
_parse_context: Any = match_context if _oslo_line is None else _oslo_line.context
_parse_http: Any = match_http if _oslo_line is None else _oslo_line.http
_FALLBACK: Any = object() if _oslo_line is None else _oslo_line.FALLBACK


def http_fields(message: str) -> list[Field] | None:
    """The http_* fields of an access line, and the first IPv4 address of the message as
    the client's (LMA's rule)."""
    h = _parse_http(message)
    if h is _FALLBACK:
        h = match_http(message)
    if h is None:
        return None
    method, url, version, status, size, rtime = h
    out = [
        _METHODS[method], Field("http_url", [url], STRING), _VERSIONS[version],
        _STATUSES[status], Field("http_response_size", [size], INTEGER),
        Field("http_response_time", [rtime], DOUBLE),
    ]
    ip = first_ipv4(message)
    if ip is not None:
        out.append(_CLIENT_IPS[ip])
    return out


def first_ipv4(text: str) -> str | None:
    """The first dotted quad of `text`. Jumps from dot to dot (str.find runs in C) and
    tries the anchored pattern only there: a regex search would try every position."""
    i = text.find(".")
    while i > 0:
        j = i
        while j > 0 and i - j < 3 and "0" <= text[j - 1] <= "9":
            j -= 1
        if j < i and (j == 0 or not text[j - 1].isalnum()):
            m = _IPV4_AT_RE.match(text, j)
            if m is not None:
                return m.group()
        i = text.find(".", i + 1)
    return None


_METHODS = FieldCache("http_method")
_VERSIONS = FieldCache("http_version")
_STATUSES = FieldCache("http_status", INTEGER)
_CLIENT_IPS = FieldCache("http_client_ip_address")


def lbaas_fields(message: str) -> list[Field]:
    """loadbalancer_id / lbaas_pool_id named in an LBaaS or Octavia message."""
    # Jump to the key words with str.find (C speed) and match there: a case-insensitive
    # regex search over the whole message costs several microseconds.
    low = message.lower()
    starts = []
    for word in ("load", "lb", "pool", "/lbaas/"):
        i = low.find(word)
        while i >= 0:
            starts.append(i)
            i = low.find(word, i + 1)
    starts.sort()
    for i in starts:
        m = _LBAAS_RE.match(message, i)
        if m is not None:
            break
    else:
        return []
    _lb, pool, ident, path_id = m.groups()
    if path_id:
        return [Field("loadbalancer_id", [path_id.lower()], STRING)]
    if pool:
        return [Field("lbaas_pool_id", [ident], STRING)]
    return [Field("loadbalancer_id", [ident], STRING)]


@register
class OpenStackLogDecoder(LogDecoder):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "hold_timeout": Option("duration", "1s",
                               doc="wait for a message's next lines at most this long"),
    }

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        if cfg.hold_timeout <= 0:
            raise OptionError("must be more than 0", key="hold_timeout")
        self.hold_timeout = cfg.hold_timeout
        # Per stream (input Logger): the message held back, the traceback key when it is
        # a traceback, the payload pieces when lines were appended to it.
        self._held: dict[str, Message] = {}
        self._tb_key: dict[str, str] = {}
        self._parts: dict[str, list[str]] = {}
        self._sizes: dict[str, int] = {}  # characters in a stream's parts
        # Per stream with a held message: the batch its first line came in; and, once a
        # line was appended to it in a later batch, the batch of the latest one.
        self._since: dict[str, int] = {}
        self._touched: dict[str, int] = {}
        # The latest message of each stream, for a continuation line that arrives after
        # its message was flushed (the hold timed out): it gets the same headers.
        self._last: dict[str, Message] = {}
        self._sec_key = ""
        self._sec_ns = 0
        self._streams: dict[str, tuple[str, Field]] = {}
        self._modules: dict[str, tuple[Field, bool]] = {}
        self._ids = FieldCache("user_id")
        self._tenants = FieldCache("tenant_id")

    @property
    def holding(self) -> bool:
        return bool(self._held)

    @property
    def oldest_held_batch(self) -> int | None:
        return min(self._since.values()) if self._since else None

    def flush(self) -> list[Message]:
        out = [self._finish(stream) for stream in list(self._held)]
        return out

    def flush_stale(self, started_before: int = 0, idle_before: int = 0) -> list[Message]:
        touched = self._touched
        return [self._finish(stream) for stream, since in list(self._since.items())
                if since < started_before or touched.get(stream, since) < idle_before]

    def _finish(self, stream: str) -> Message:
        msg = self._held.pop(stream)
        del self._since[stream]
        if self._touched:
            self._touched.pop(stream, None)
        if self._tb_key:
            self._tb_key.pop(stream, None)
        if self._parts:
            parts = self._parts.pop(stream, None)
            if parts is not None:
                msg.payload = "".join(parts)
                del self._sizes[stream]
        return msg

    def _append(self, stream: str, text: str, record: Message) -> Message | None:
        """Add a line to the stream's held message. A message would grow past
        max_message_size (a runaway traceback, a stream of lines without the oslo.log
        prefix) is finished instead and returned; the line starts the next held message,
        with the same headers, still joining the lines that follow."""
        parts = self._parts.get(stream)
        size = self._sizes[stream] if parts is not None else \
            _utf8_len(self._held[stream].payload)
        n = _utf8_len(text)
        if size + n > self.max_message_size:
            tb_key = self._tb_key.get(stream)
            done = self._finish(stream)
            record.payload = text
            self._held[stream] = _continued(done, record)
            self._since[stream] = self.batch
            if tb_key is not None:
                self._tb_key[stream] = tb_key
            return done
        if self._since[stream] != self.batch:
            self._touched[stream] = self.batch
        if parts is None:
            self._parts[stream] = [self._held[stream].payload, text]
        else:
            parts.append(text)
        self._sizes[stream] = size + n
        return None

    def _stream(self, logger: str) -> tuple[str, Field]:
        """Logger `openstack.<service>` and the programname field for a raw Logger
        `<service>_<program>` (the Logstreamer's differentiator)."""
        r = self._streams.get(logger)
        if r is None:
            service, _, program = logger.partition("_")
            r = (f"openstack.{service}", Field("programname", [program or service], STRING))
            if len(self._streams) < _CACHE_MAX:
                self._streams[logger] = r
        return r

    def _module(self, module: str) -> tuple[Field, bool]:
        r = self._modules.get(module)
        if r is None:
            r = (Field("python_module", [module], STRING),
                 "lbaas" in module or module.startswith("octavia"))
            if len(self._modules) < _CACHE_MAX:
                self._modules[module] = r
        return r

    def _timestamp(self, stamp: str, frac: str | None, off: str | None) -> int:
        key = stamp if off is None else stamp + off
        if key != self._sec_key:
            try:
                ns = self.clock.to_ns(
                    int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10]), int(stamp[11:13]),
                    int(stamp[14:16]), int(stamp[17:19]), 0,
                    None if off is None else parse_offset(off))
            except ValueError as e:
                raise DecodeError(f"bad timestamp: {e}") from None
            self._sec_key, self._sec_ns = key, ns
        if frac:
            return self._sec_ns + _frac_ns(frac)
        return self._sec_ns

    def _context(self, text: str) -> list[Field]:
        m = _parse_context(text)
        if m is None:
            return [] if text.startswith("[-]") else context_fields(text)
        glob, req, user, tenant = m
        out = [Field("request_id", [req], STRING)]
        if glob is not None and glob != req:
            out.append(Field("global_request_id", [glob], STRING))
        if user is not None:
            out.append(self._ids[user] if len(user) == 36 else
                       self._ids.get(user) or _cached(self._ids, user))
            out.append(self._tenants[tenant] if len(tenant) == 36 else
                       self._tenants.get(tenant) or _cached(self._tenants, tenant))
        return out

    def decode(self, msg: Message) -> Message | list[Message] | None:
        stream = msg.logger
        held = self._held.get(stream)
        line = msg.payload
        m = _parse_line(line)
        if m is _FALLBACK:
            m = match_line(line)
        if m is None:
            if held is not None:  # a continuation line of the held message
                return self._append(stream, line, msg)
            last = self._last.get(stream)
            if last is None:
                raise DecodeError("not an oslo.log line (no '<date> <time> <pid> <LEVEL> "
                                  "<module>' prefix)")
            self._held[stream] = _continued(last, msg)
            self._since[stream] = self.batch
            return None
        stamp, frac, off, pid, level, module, text, key_end = m
        if held is not None:
            tb_key = self._tb_key.get(stream)
            if tb_key is not None and line.startswith(tb_key) and len(tb_key) == key_end:
                return self._append(stream, text, msg)
        # The per-line lookups inlined for their common case (a hit): this runs for
        # every line, and a method call costs as much as the lookup.
        if off is None and stamp == self._sec_key:
            ts = self._sec_ns + _frac_ns(frac) if frac else self._sec_ns
        else:
            ts = self._timestamp(stamp, frac, off)
        if held is not None:
            held = self._finish(stream)

        known = self._streams.get(stream)
        logger, program = known if known is not None else self._stream(stream)
        severity, label = _LEVELS[level]
        seen = self._modules.get(module)
        module_field, lbaas = seen if seen is not None else self._module(module)
        msg.type = "log"
        msg.logger = logger
        msg.timestamp = ts
        msg.pid = pid
        msg.severity = severity
        msg.payload = text
        fields = msg.fields
        fields += (label, module_field, program)
        if text.startswith(_TRACEBACK):
            self._tb_key[stream] = line[:key_end]
        else:
            if text.startswith("["):
                fields += self._context(text)
            if "HTTP/" in text:
                h = http_fields(text)
                if h:
                    fields += h
            if lbaas:
                fields += lbaas_fields(text)
        self._held[stream] = msg
        self._since[stream] = self.batch
        if len(self._last) < _CACHE_MAX or stream in self._last:
            self._last[stream] = msg
        return held


def _cached(cache: FieldCache, raw: str) -> Field:
    """The field for a 32-hex id, normalised to the dashed form, cached by the raw text."""
    f = Field(cache.name, [normalize_uuid(raw)], STRING)
    if len(cache) < _CACHE_MAX:
        cache[raw] = f
    return f


def _continued(last: Message, record: Message) -> Message:
    """A message for a continuation line whose first line was already sent: the headers
    and line fields of that message, the continuation as Payload."""
    fields = [f for f in last.fields if f.name in _LINE_FIELDS]
    return Message(uuid=record.uuid, timestamp=last.timestamp, type=last.type,
                   logger=last.logger, severity=last.severity, payload=record.payload,
                   pid=last.pid, hostname=last.hostname, fields=fields)


_LINE_FIELDS = frozenset(("severity_label", "python_module", "programname"))
