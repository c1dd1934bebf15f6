"""ESLogstashV0Encoder: Heka's Logstash-v0-shaped Elasticsearch bulk encoder."""

from __future__ import annotations

from typing import ClassVar

from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import Option, register
from hekapy.outputs.elasticsearch.es_encoder import COMMON_OPTIONS, ESEncoder, doc_string


@register
class ESLogstashV0Encoder(ESEncoder):
    """Heka's ESLogstashV0Encoder: the Logstash v0 event format (docs/compatibility.md,
    "Elasticsearch encoders"): @uuid, @timestamp, @type, @logger, @severity, @message,
    @envversion, @pid, @source_host and the dynamic fields nested in @fields. Keys as
    ESJsonEncoder (index default "logstash-%{%Y.%m.%d}"), plus use_message_type (false):
    @type is the message Type instead of the interpolated type_name (also when
    type_name is empty).

        [logstash_encoder]
        type = "ESLogstashV0Encoder"
        index = "logstash-%{%Y.%m.%d}"
        es_index_from_timestamp = true
        use_message_type = true
    """

    options: ClassVar[dict[str, Option]] = {
        "index": Option("str", "logstash-%{%Y.%m.%d}"),
        **COMMON_OPTIONS,
        "use_message_type": Option("bool", False),
    }

    _KEYS: ClassVar[dict[str, str]] = {
        "Uuid": "@uuid", "Timestamp": "@timestamp", "Type": "@type", "Logger": "@logger",
        "Severity": "@severity", "Payload": "@message", "EnvVersion": "@envversion",
        "Pid": "@pid", "Hostname": "@source_host"}

    def encode(self, msg: Message) -> bytes:
        members: list[str] = []
        for item in self.fields:
            if item == "DynamicFields":
                members.append('"@fields":{' + ",".join(self.dynamic_members(msg)) + "}")
                continue
            key = doc_string(self._KEYS[item]) + ":"
            if item == "Timestamp":
                members.append(key + doc_string(self.render_time(msg.timestamp)))
            elif item == "Severity":
                members.append(key + str(msg.severity))
            elif item == "Pid":
                members.append(key + str(msg.pid or 0))
            elif item == "Uuid":
                members.append(key + doc_string(msg.uuid_text))
            elif item == "Type":
                if self.cfg.use_message_type or not self.cfg.type_name:
                    members.append(key + doc_string(msg.type))
                else:
                    members.append(key + doc_string(self.doc_type.render(msg)[0]))
            else:
                value = {"Logger": msg.logger, "Payload": msg.payload,
                         "EnvVersion": msg.env_version, "Hostname": msg.hostname}[item]
                members.append(key + doc_string(value or ""))
        doc = "{" + ",".join(members) + "}"
        return (self.action(msg) + "\n" + doc + "\n").encode("utf-8", "replace")
