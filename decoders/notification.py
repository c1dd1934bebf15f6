"""NotificationDecoder: OpenStack notifications read from RabbitMQ (LMA's
notification.lua; docs/compatibility.md, "LMA notifications").

The record (Payload) is an AMQP message body as oslo.messaging publishes it: the
notification itself (driver `messaging`, v1) or an envelope
`{"oslo.version": "2.0", "oslo.message": "<notification as a JSON string>"}` (driver
`messagingv2`); both are accepted.

* A CADF audit event (its `payload` has `eventType` and `eventTime`) becomes
  `Type audit`: Logger = publisher_id, Severity from priority, Timestamp = eventTime,
  Fields action, notification_type (the oslo event_type), event_type (the CADF
  eventType), outcome, severity_label, and who did what to what, when the event says:
  initiator_id, initiator_name, initiator_project_id, initiator_host_address,
  initiator_type_uri, target_id, target_name, target_type_uri, observer_id,
  observer_type_uri (CADF's `typeURI`), request_id (Keystone's `initiator.request_id`)
  and reason_code (keystonemiddleware's HTTP status, Keystone's failure code). The
  initiator's credential (keystonemiddleware puts a masked token there) is never a field.
* Anything else becomes `Type notification`: Logger from the first token of
  event_type (volume/snapshot → cinder, image → glance, orchestration → heat,
  identity → keystone, compute/compute_task/scheduler/keypair → nova, floatingip,
  security_group(_rule), network, port, router, subnet → neutron, sahara → sahara;
  other prefixes keep the input's Logger), Severity from priority (Syslog numbers),
  Timestamp from `timestamp` (UTC when it has no offset), `publisher_id` `a.b` →
  Fields.publisher = a and Hostname = b (or the first label of `payload.host`),
  Fields hostname, event_type, severity_label and these payload keys when present:
  tenant_id, user_id, instance_id, network_id, subnet_id, port_id, volume_id (32-hex
  ids get their dashes; values that are not UUIDs are left out), display_name, vcpus,
  availability_zone, instance_type, image_name, memory_mb, disk_gb, state, old_state,
  old_task_state, new_task_state, size, replication_status, Cinder's `status` (as
  `state`), and created_at, launched_at, deleted_at, terminated_at rewritten as
  `YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM` (empty or unparseable dates left out). Numbers
  stay numbers (INTEGER or DOUBLE), JSON null leaves the field out.
  Payload = the notification's `payload` object re-encoded as JSON.

Unlike LMA: oslo's `WARN` priority (what oslo.messaging actually sends for
`notifier.warn()`) is Severity 4 like `WARNING` (LMA's map lacked it, so such
notifications kept the input's Severity); a JSON null in a copied key leaves the field
out (in LMA it made the injection fail and the notification was lost); a notification
without a parseable timestamp or event_type is a decode failure; Fields.hostname is
set whenever the message has a Hostname; with include_full_notification the Payload is
the notification itself (for a v2 envelope, the inner `oslo.message` text, not the
envelope, so that `payload` is found at the top).

Keys: include_full_notification (false): Payload = the whole notification JSON instead
of its `payload` object. Sample:

    [notification_decoder]
    type = "NotificationDecoder"
    include_full_notification = false
The Uuid comes from the notification's `message_id`, so a notification RabbitMQ
delivers twice is indexed once (same Elasticsearch `_id`).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, ClassVar

import orjson

from hekapy.collector.engine.datetimes import format_datetime, parse_timestamp_ns
from hekapy.collector.engine.message import BOOL, DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.engine.plugin import DecodeError, Decoder, Option, register

LOGGER_BY_PREFIX: dict[str, str] = {
    "volume": "cinder", "snapshot": "cinder",
    "image": "glance",
    "orchestration": "heat",
    "identity": "keystone",
    "compute": "nova", "compute_task": "nova", "scheduler": "nova", "keypair": "nova",
    "floatingip": "neutron", "security_group": "neutron", "security_group_rule": "neutron",
    "network": "neutron", "port": "neutron", "router": "neutron", "subnet": "neutron",
    "sahara": "sahara",
}

SEVERITY_BY_PRIORITY: dict[str, int] = {
    "EMERGENCY": 0, "ALERT": 1, "CRITICAL": 2, "ERROR": 3, "WARNING": 4, "WARN": 4,
    "NOTICE": 5, "INFO": 6, "DEBUG": 7,
}

# Payload keys copied as they are (value types kept), payload key → field name.
PLAIN_KEYS: tuple[tuple[str, str], ...] = (
    ("display_name", "display_name"), ("vcpus", "vcpus"),
    ("availability_zone", "availability_zone"), ("instance_type", "instance_type"),
    ("image_name", "image_name"), ("memory_mb", "memory_mb"), ("disk_gb", "disk_gb"),
    ("old_state", "old_state"), ("old_task_state", "old_task_state"),
    ("new_task_state", "new_task_state"), ("size", "size"),
    ("replication_status", "replication_status"),
)
UUID_KEYS = ("tenant_id", "user_id", "instance_id", "network_id", "subnet_id", "port_id",
             "volume_id")
DATE_KEYS = ("created_at", "launched_at", "deleted_at", "terminated_at")

_UUID_DASHED = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                          r"[0-9A-Fa-f]{12}")
_UUID_PLAIN = re.compile(r"[0-9A-Fa-f]{32}")
# 'YYYY-MM-DD( |T)HH:MM:SS(.frac)?(Z|+HH:MM|+HHMM)?', as LMA's patterns.TimestampTable.
_PUBLISHER = re.compile(r"([^.]+)\.([A-Za-z0-9_-]+)")
_HOST_LABEL = re.compile(r"[A-Za-z0-9_-]+")
_INT64 = (-(1 << 63), (1 << 63) - 1)


def normalize_uuid(value: Any) -> str | None:
    """A 32-hex id gets the dashes of the canonical form; a dashed UUID is kept; anything
    else is None."""
    if not isinstance(value, str):
        return None
    if _UUID_DASHED.fullmatch(value):
        return value
    if _UUID_PLAIN.fullmatch(value):
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return None


def value_field(name: str, value: Any) -> Field | None:
    """A field of the JSON value's own type; None for null, objects and arrays."""
    if isinstance(value, str):
        return Field(name, [value], STRING)
    if isinstance(value, bool):
        return Field(name, [value], BOOL)
    if isinstance(value, int):
        if _INT64[0] <= value <= _INT64[1]:
            return Field(name, [value], INTEGER)
        return Field(name, [float(value)], DOUBLE)
    if isinstance(value, float):
        return Field(name, [value], DOUBLE)
    return None


def _uuid_of(message_id: str) -> bytes:
    """oslo's message_id is a UUID; anything else is hashed into one."""
    try:
        return uuid.UUID(message_id).bytes
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_OID, message_id).bytes


def _loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # orjson refuses integers beyond 64 bits; the standard library does not.
        return json.loads(text)


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _snippet(text: str) -> str:
    return repr(text[:64])


# CADF resource attribute → field suffix. Only strings: a CADF id or typeURI of another
# JSON type would give one field two mapped types in Elasticsearch.
_RESOURCE_KEYS = (("id", "id"), ("name", "name"), ("typeURI", "type_uri"))


def _cadf_parties(event: dict) -> list[Field]:
    """The initiator, target and observer of a CADF event as flat string fields."""
    out: list[Field] = []
    for party in ("initiator", "target", "observer"):
        resource = event.get(party)
        if not isinstance(resource, dict):
            continue
        for key, suffix in _RESOURCE_KEYS:
            value = resource.get(key)
            if isinstance(value, str) and value:
                out.append(Field(f"{party}_{suffix}", [value], STRING))
    initiator = event.get("initiator")
    if isinstance(initiator, dict):
        host = initiator.get("host")
        extra = (("initiator_project_id", initiator.get("project_id")),
                 ("initiator_host_address",
                  host.get("address") if isinstance(host, dict) else None),
                 ("request_id", initiator.get("request_id")))
        out += [Field(name, [value], STRING) for name, value in extra
                if isinstance(value, str) and value]
    reason = event.get("reason")
    if isinstance(reason, dict):
        code = reason.get("reasonCode")
        if isinstance(code, str) and code:
            out.append(Field("reason_code", [code], STRING))
    return out


@register
class NotificationDecoder(Decoder):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "include_full_notification": Option(
            "bool", False, doc="Payload = the whole notification, not its payload object"),
    }

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self.full = bool(cfg.include_full_notification)

    def decode(self, msg: Message) -> Message:
        data = msg.payload
        try:
            notif = _loads(data)
        except ValueError as e:
            raise DecodeError(f"notification is not JSON ({e}): {_snippet(data)}") from None
        if not isinstance(notif, dict):
            raise DecodeError(f"notification is not a JSON object: {_snippet(data)}")
        text = data
        if "oslo.version" in notif:
            message = notif.get("oslo.message")
            if not isinstance(message, str):
                raise DecodeError(f"v{notif['oslo.version']} envelope: 'oslo.message' is "
                                  f"not a string: {_snippet(data)}")
            text = message
            try:
                notif = _loads(text)
            except ValueError as e:
                raise DecodeError(f"v{notif['oslo.version']} envelope: 'oslo.message' is "
                                  f"not JSON ({e}): {_snippet(text)}") from None
            if not isinstance(notif, dict):
                raise DecodeError(f"v2 envelope: 'oslo.message' is not a JSON object: "
                                  f"{_snippet(text)}")
        payload = notif.get("payload")
        if not isinstance(payload, dict):
            raise DecodeError(f"notification has no 'payload' object: {_snippet(text)}")
        event_type = notif.get("event_type")
        if not isinstance(event_type, str) or not event_type:
            raise DecodeError(f"notification has no event_type: {_snippet(text)}")

        fields: list[Field] = []
        if payload.get("eventType") is not None and payload.get("eventTime") is not None:
            self._cadf(msg, notif, payload, event_type, fields)
        else:
            self._notification(msg, notif, payload, event_type, fields)
        priority = notif.get("priority")
        if isinstance(priority, str):
            # An unknown priority keeps the input's Severity, as in LMA.
            severity = SEVERITY_BY_PRIORITY.get(priority.upper())
            if severity is not None:
                msg.severity = severity
            fields.append(Field("severity_label", [priority], STRING))
        msg.payload = text if self.full else _dumps(payload)
        msg.fields += fields
        message_id = notif.get("message_id")
        if isinstance(message_id, str) and message_id:
            # The same notification delivered twice is the same document (_id = Uuid).
            msg.uuid = _uuid_of(message_id)
        return msg

    @staticmethod
    def _cadf(msg: Message, notif: dict, event: dict, event_type: str,
              fields: list[Field]) -> None:
        ts = parse_timestamp_ns(event["eventTime"])
        if ts is None:
            raise DecodeError(f"CADF event: bad eventTime {event['eventTime']!r}")
        msg.type = "audit"
        msg.timestamp = ts
        publisher = notif.get("publisher_id")
        if isinstance(publisher, str) and publisher:
            msg.logger = publisher
        for name, value in (("action", event.get("action")),
                            ("notification_type", event_type),
                            ("event_type", event["eventType"]),
                            ("outcome", event.get("outcome"))):
            f = value_field(name, value)
            if f is not None:
                fields.append(f)
        fields += _cadf_parties(event)

    @staticmethod
    def _notification(msg: Message, notif: dict, payload: dict, event_type: str,
                      fields: list[Field]) -> None:
        ts = parse_timestamp_ns(notif.get("timestamp"))
        if ts is None:
            raise DecodeError(f"bad or missing timestamp {notif.get('timestamp')!r}")
        msg.type = "notification"
        msg.timestamp = ts
        logger = LOGGER_BY_PREFIX.get(event_type.split(".", 1)[0])
        if logger is not None:
            msg.logger = logger
        publisher = notif.get("publisher_id")
        if isinstance(publisher, str):
            m = _PUBLISHER.search(publisher)
            if m is not None:
                fields.append(Field("publisher", [m.group(1)], STRING))
                msg.hostname = m.group(2)
        host = payload.get("host")
        if isinstance(host, str):
            m = _HOST_LABEL.search(host)
            if m is not None:
                msg.hostname = m.group(0)
        if msg.hostname:
            fields.append(Field("hostname", [msg.hostname], STRING))
        fields.append(Field("event_type", [event_type], STRING))

        for key in UUID_KEYS:
            uuid = normalize_uuid(payload.get(key))
            if uuid is not None:
                fields.append(Field(key, [uuid], STRING))
        for key, name in PLAIN_KEYS:
            f = value_field(name, payload.get(key))
            if f is not None:
                fields.append(f)
        state = payload.get("state")
        f = value_field("state", state if state is not None else payload.get("status"))
        if f is not None:
            fields.append(f)
        for key in DATE_KEYS:
            when = format_datetime(payload.get(key))
            if when is not None:
                fields.append(Field(key, [when], STRING))
