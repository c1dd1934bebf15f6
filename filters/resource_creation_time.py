"""ResourceCreationTimeFilter: how long OpenStack took to create a resource, from the
notifications NotificationDecoder made (LMA's resource_creation_time.lua;
docs/compatibility.md, "LMA metrics").

For each matched `Type notification` message, one `heka.sandbox.metric` (a gauge in
seconds, rounded to the millisecond):

* `compute.instance.create.end` → `openstack_nova_instance_creation_time`
  = Fields[launched_at] - Fields[created_at];
* `volume.create.end` → `openstack_cinder_volume_creation_time`, the same fields;
* `volume.attach.end` → `openstack_cinder_volume_attachment_time` = attach_time -
  created_at of the first `volume_attachment` entry of the notification payload (read
  from the message Payload, which may be the payload object or, with
  include_full_notification, the whole notification).

The metric has the notification's Timestamp, tag hostname (= Fields[hostname]),
Fields tenant_id and user_id when the notification has them (InfluxdbOutput makes
them tags too), source = the notification's Logger, type = gauge. A notification
without both dates, with a date that does not parse, or with the end before the
start gives no metric (counted in `skipped`), as in LMA.

No keys of its own; the default message_matcher is LMA's: `Type == 'notification' &&
Fields[event_type] =~ /^(compute.instance|volume).(create|attach).end$/`. Sample:

    [resource_creation_time]
    type = "ResourceCreationTimeFilter"
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import orjson

from hekapy.collector.engine.contexts import FilterContext
from hekapy.collector.engine.datetimes import parse_timestamp_ns
from hekapy.collector.engine.message import STRING, Field, Message
from hekapy.collector.engine.metrics import metric_message
from hekapy.collector.engine.plugin import Filter, register

METRIC_BY_EVENT: dict[str, str] = {
    "compute.instance.create.end": "openstack_nova_instance_creation_time",
    "volume.create.end": "openstack_cinder_volume_creation_time",
    "volume.attach.end": "openstack_cinder_volume_attachment_time",
}
ATTACHMENT_METRIC = "openstack_cinder_volume_attachment_time"
_GAUGE = Field("type", ["gauge"], STRING)


def _attachment_dates(payload: str) -> tuple[Any, Any]:
    """(created_at, attach_time) of the first volume_attachment entry, or Nones."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    inner = doc.get("payload")
    if isinstance(inner, dict):
        doc = inner
    attachments = doc.get("volume_attachment")
    if not isinstance(attachments, list) or not attachments:
        return None, None
    first = attachments[0]
    if not isinstance(first, dict):
        return None, None
    return first.get("created_at"), first.get("attach_time")


@register
class ResourceCreationTimeFilter(Filter):
    __doc__ = __doc__

    defaults: ClassVar[dict[str, Any]] = {
        "message_matcher": "Type == 'notification' && Fields[event_type] =~ "
                           "/^(compute.instance|volume).(create|attach).end$/",
    }

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self.skipped = 0  # notifications of a known event without usable dates

    def process(self, messages: list[Message], ctx: FilterContext) -> None:
        for m in messages:
            metric = self.metric(m, ctx.hostname)
            if metric is not None:
                ctx.inject(metric)

    def metric(self, m: Message, hostname: str) -> Message | None:
        """The metric for notification `m`, or None."""
        name = METRIC_BY_EVENT.get(m.get_field("event_type"))
        if name is None:
            return None
        if name == ATTACHMENT_METRIC:
            started, completed = _attachment_dates(m.payload)
        else:
            started, completed = m.get_field("created_at"), m.get_field("launched_at")
        start_ns = parse_timestamp_ns(started)
        end_ns = parse_timestamp_ns(completed)
        if not start_ns or not end_ns or start_ns > end_ns:
            self.skipped += 1
            return None
        seconds = math.floor((end_ns - start_ns) / 1e6 + 0.5) / 1e3
        host = m.get_field("hostname")
        tags = {"hostname": host} if isinstance(host, str) and host else {}
        out = metric_message(name, seconds, tags, m.timestamp, self.name, hostname)
        out.set_field("value", seconds, representation="s")
        out.fields.append(_GAUGE)
        out.fields.append(Field("source", [m.logger], STRING))
        for key in ("tenant_id", "user_id"):
            f = m.find_field(key)
            if f is not None:
                out.fields.append(f)
        return out
