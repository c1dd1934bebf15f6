"""CollectdDecoder: collectd's write_http JSON (`Format "JSON"`) → one Heka metric message
per value, named and tagged as LMA's collectd.lua did
(https://github.com/openstack/fuel-plugin-lma-collector), so the Grafana dashboards'
series keep their names. The rules are in decoders/collectd_naming.py.

The Payload of the incoming message (HttpListenInput's request body) is a JSON array of
samples `{host, plugin, plugin_instance, type, type_instance, dsnames, dstypes, values,
time, interval, meta?}`. Each value becomes `Type metric`, `Logger collectd`, Severity 6,
Timestamp = time (µs precision, as collectd writes it), Hostname = host, Payload = the
sample as JSON, and Fields name, value, type (the data-source type), source (the
plugin), interval, the plugin's dimension fields, `hostname` (except for the
cluster-wide plugins, whose metrics carry no node) and `tag_fields` listing the fields
that become InfluxDB tags. Numbers are DOUBLE fields, as Lua made them.

Unlike LMA, one bad sample (missing keys, a `null` value for NaN) is skipped and counted
instead of failing the whole request; a body that is not a JSON array fails as a whole.

collectd's libvirt plugin is `libvirt` up to collectd 5.4 and `virt` from 5.5 on: both
give LMA's `virt_*` series (`virt_cpu_time`, `virt_vcpu_time`, `virt_memory_total`,
`virt_disk_*`, `virt_if_*`), tagged `instance_id` (the sample's `host`: configure the
plugin with `HostnameFormat uuid`, as LMA did) and this node's hostname.

Keys: hostname (this node's name, used for libvirt's per-instance samples whose `host`
is the instance id; defaults to the machine's host name), swap_size (bytes of swap; when
set, `swap_used` also yields `swap_percent_used` = used / swap_size, as LMA's did).

    [collectd_decoder]
    type = "CollectdDecoder"
    swap_size = 4294967296
"""

from __future__ import annotations

import json
import logging
import socket
from typing import Any, ClassVar

from hekapy.collector.engine.message import BOOL, DOUBLE, STRING, Field, Message
from hekapy.collector.engine.plugin import DecodeError, Decoder, Option, register
from hekapy.decoders.collectd_naming import (
    CLUSTER_WIDE_PLUGINS,
    GUEST_PLUGINS,
    BadSample,
    Metric,
    name_metric,
)

log = logging.getLogger("hekapy.decoder.collectd")


def _field(name: str, value: Any, representation: str = "") -> Field | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return Field(name, [value], BOOL)
    if isinstance(value, (int, float)):
        return Field(name, [float(value)], DOUBLE, representation)
    if isinstance(value, str):
        return Field(name, [value], STRING)
    return Field(name, [json.dumps(value, separators=(",", ":"))], STRING)


@register
class CollectdDecoder(Decoder):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "hostname": Option("str", "", doc="this node's name (default: the host name)"),
        "swap_size": Option("float", 0, doc="bytes of swap, for swap_percent_used"),
    }

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self.local_host = cfg.hostname or socket.gethostname()
        self.bad_samples = 0

    def decode(self, msg: Message) -> list[Message]:
        try:
            samples = json.loads(msg.payload)
        except ValueError as e:
            raise DecodeError(f"not JSON: {e}") from None
        if not isinstance(samples, list):
            raise DecodeError(f"expected a JSON array of samples, got {type(samples).__name__}")
        out: list[Message] = []
        problems: list[str] = []
        for sample in samples:
            try:
                out += self.sample_messages(sample)
            except (BadSample, KeyError, TypeError, IndexError, ValueError) as e:
                problems.append(f"{type(e).__name__}: {e}")
        if problems:
            self.bad_samples += len(problems)
            if not out:
                raise DecodeError(f"{len(problems)} bad sample(s), first: {problems[0]}")
            log.warning("%s: %d of %d samples skipped, first: %s", self.name, len(problems),
                        len(samples), problems[0])
        return out

    def sample_messages(self, sample: Any) -> list[Message]:
        if not isinstance(sample, dict):
            raise BadSample(f"sample is a {type(sample).__name__}, not an object")
        source, values = sample["plugin"], sample["values"]
        dsnames, dstypes = sample["dsnames"], sample["dstypes"]
        if not isinstance(source, str) or not isinstance(sample["type"], str):
            raise BadSample("plugin and type must be strings")
        if not (isinstance(values, list) and len(values) == len(dsnames) == len(dstypes)):
            raise BadSample("values, dsnames and dstypes must be arrays of one length")
        timestamp = round(float(sample["time"]) * 1e6) * 1000
        host = sample.get("host") or ""
        payload = json.dumps(sample, separators=(",", ":"))
        out = []
        for i, value in enumerate(values):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise BadSample(f"value {i} is {value!r}, not a number")  # NaN is null
            m = Metric(None if source in CLUSTER_WIDE_PLUGINS else host)
            m.fields.update(name=None, value=value, type=dstypes[i], source=source,
                            interval=sample.get("interval"))
            if not name_metric(m, sample, i, self.local_host):
                continue
            hostname = self.local_host if source in GUEST_PLUGINS else host
            out.append(self.message(m, timestamp, hostname, payload))
            if (source == "swap" and m.fields["name"] == "swap_used"
                    and self.cfg.swap_size > 0):
                # collectd 5.4 reports no used-swap percentage: derived, as LMA did.
                m.fields.update(name="swap_percent_used", value=value / self.cfg.swap_size)
                out.append(self.message(m, timestamp, hostname, payload))
        return out

    def message(self, m: Metric, timestamp: int, hostname: str, payload: str) -> Message:
        fields = []
        for key, value in m.fields.items():
            field = _field(key, value, m.unit if key == "value" else "")
            if field is not None:
                fields.append(field)
        tags = m.tags
        if m.hostname:
            fields.append(Field("hostname", [m.hostname], STRING))
            tags = [*tags, "hostname"]
        if tags:
            fields.append(Field("tag_fields", tags, STRING))
        return Message(timestamp=timestamp, type="metric", logger="collectd", severity=6,
                       hostname=hostname, payload=payload, fields=fields)
