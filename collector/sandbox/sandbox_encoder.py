"""SandboxEncoder: Heka's Lua encoder (docs/compatibility.md, "Lua sandbox"), run by
hekapy's Lua sandbox (collector/sandbox/).

process_message() runs for every message the output encodes. What the script emits is
the encoder's output: the payload of inject_payload, or the protobuf bytes of
inject_message (a table or a protobuf string); several emissions are concatenated.
Returning 0 without emitting gives the protobuf of the message (with what write_message
changed: the encoder works on its own copy, the outputs share the original). -2 means
"nothing to write"; another negative status is an encode error (the output counts and
skips the message). A Lua error, a limit or a status above 0 terminates the sandbox:
every later message is an encode error, logged with the reason.

Keys: filename (required; relative ⇒ under [hekad] share_dir), script_type ("lua"),
preserve_data (false: globals saved when the pipeline stops, after the output
finished, to <base_dir>/sandbox_preservation/<output>-<encoder>.data, and restored on
start; each output has an encoder instance of its own), memory_limit (8 MiB),
instruction_limit (1000000), output_limit (64512), module_directory
(<share_dir>/lua_modules), config.

    [line_encoder]
    type = "SandboxEncoder"
    filename = "/etc/hekapy/lua/line_encoder.lua"
      [line_encoder.config]
      separator = " | "

    [file_out]
    type = "FileOutput"
    path = "/var/log/hekapy/lines.log"
    message_matcher = "Type == 'log'"
    encoder = "line_encoder"
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import ClassVar

from hekapy.collector.engine.contexts import OutputContext
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import Encoder, Option, Plugin, register
from hekapy.collector.engine.protobuf import encode_message
from hekapy.collector.sandbox import (
    HEKAD_SETTINGS,
    SANDBOX_OPTIONS,
    Sandbox,
    SandboxTerminated,
    runner_name,
)
from hekapy.collector.sandbox.api import ENCODER
from hekapy.collector.sandbox.native_plugins import NATIVE_ENCODERS, native_plugin


class EncodeError(Exception):
    """The script refused the message, or the sandbox is terminated."""


@register
class SandboxEncoder(Encoder):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        **SANDBOX_OPTIONS,
        "native": Option("bool", True, doc="run hekapy's native encoder for a known LMA "
                         "script (native_plugins.py); false runs the Lua"),
    }
    hekad_settings: ClassVar[tuple[str, ...]] = HEKAD_SETTINGS

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        self.log = logging.getLogger(f"hekapy.{name}")
        self.sandbox = Sandbox.for_plugin(self, ENCODER)

    @classmethod
    def specialize(cls, cfg: SimpleNamespace, report: Callable[[str | None, str], None]
                   ) -> tuple[type[Plugin], SimpleNamespace] | None:
        return native_plugin(cfg, NATIVE_ENCODERS, report)

    # The pipeline's start and stop calls (collector/engine/pipeline.py start_stage/stop_stage),
    # with the context of the output this instance encodes for.
    def init(self, ctx: OutputContext) -> None:
        self.sandbox.restore_preserved(ctx.hekad.base_dir, runner_name(ctx.name, self.name),
                                       self.log)

    def shutdown(self, ctx: OutputContext) -> None:
        self.sandbox.save_preserved(ctx.hekad.base_dir, runner_name(ctx.name, self.name),
                                    self.log)

    def heka_report(self) -> dict[str, tuple[int, str]]:
        return self.sandbox.heka_report()  # Memory, MaxMemory, MaxOutput

    def encode(self, msg: Message) -> bytes | None:
        sb = self.sandbox
        if sb.terminated is not None:
            raise EncodeError(f"sandbox terminated: {sb.terminated}")
        try:
            status, err = sb.process_message(msg)
        except SandboxTerminated as e:
            self.log.error("%s", e)
            raise EncodeError(str(e)) from None
        api = sb.api
        if status == -2:
            return None
        if status < 0:
            raise EncodeError(err or f"process_message() returned {status}")
        if api.output:
            out = api.output
            return out[0] if len(out) == 1 else b"".join(out)
        return encode_message(api.msg)  # type: ignore[arg-type]
