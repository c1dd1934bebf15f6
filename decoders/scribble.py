"""ScribbleDecoder sets what its `[X.message_fields]` table lists on every message, as
Heka's did (Heka 0.10, https://hekad.readthedocs.io/, Decoders): Type, Logger, Payload,
Hostname, Pid, Severity and Uuid set those headers;
any other key adds a STRING field ("Name|repr" adds representation "repr"). The values
are taken as written (no %Name% interpolation, there is nothing to interpolate from).
A Pid, Severity or Uuid that does not parse is a config error here (Heka failed every
message instead). LMA's aggregator put one after ProtobufDecoder in a MultiDecoder to
flag what other nodes sent:

    [aggregator_flag_decoder]
    type = "ScribbleDecoder"
      [aggregator_flag_decoder.message_fields]
      aggregator = "present"

    [aggregator_decoder]
    type = "MultiDecoder"
    subs = ["ProtobufDecoder", "aggregator_flag_decoder"]
    cascade_strategy = "all"
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

from hekapy.collector.engine.message import STRING, Field, Message
from hekapy.collector.engine.plugin import DecodeError, Decoder, Option, OptionError, register
from hekapy.decoders.message_fields import (
    HEADER_NAMES,
    check_message_fields,
    parse_int32,
    parse_pid,
    parse_uuid,
)


@register
class ScribbleDecoder(Decoder):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "message_fields": Option("table", {}, check=check_message_fields,
                                 doc="[X.message_fields] header or field → value"),
    }

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        self.headers: dict[str, Any] = {}
        self.fields: list[Field] = []
        for key, value in (cfg.message_fields or {}).items():
            if key not in HEADER_NAMES:
                fname, _, rep = key.partition("|")
                self.fields.append(Field(fname, [value], STRING, rep))
            elif key in ("Pid", "Severity"):
                number = parse_pid(value) if key == "Pid" else parse_int32(value)
                if number is None:
                    raise OptionError(f"message_fields.{key}: {value!r} is not an integer",
                                      key="message_fields")
                self.headers[key.lower()] = number
            elif key == "Uuid":
                try:
                    self.headers["uuid"] = parse_uuid(value)
                except DecodeError as e:
                    raise OptionError(f"message_fields.Uuid: {e}",
                                      key="message_fields") from None
            else:
                self.headers[key.lower()] = value

    def decode(self, msg: Message) -> Message:
        for attr, value in self.headers.items():
            setattr(msg, attr, value)
        # The Field objects are shared by every message: fields are never changed in
        # place (Message.set_field replaces them).
        msg.fields.extend(self.fields)
        msg.raw = None  # the message no longer is the record's bytes
        return msg
