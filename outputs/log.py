"""LogOutput: encoded messages printed to standard output (docs/compatibility.md, "Outputs")."""

from __future__ import annotations

import sys
from types import SimpleNamespace

from hekapy.collector.engine.contexts import OutputContext
from hekapy.collector.engine.plugin import OptionError, Output, register


@register
class LogOutput(Output):
    """Writes each encoded message to stdout, one per line.

    Keys: encoder (required).

        [console]
        type = "LogOutput"
        message_matcher = "Type == 'heka.counter-output'"
        encoder = "PayloadEncoder"
    """

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        if not cfg.encoder:
            raise OptionError("LogOutput needs an encoder", key="encoder")

    async def run(self, ctx: OutputContext) -> None:
        assert ctx.encoder is not None  # required: checked by __init__
        encode = ctx.encoder.encode
        out = sys.stdout.buffer
        while (batch := await ctx.next_batch()) is not None:
            for m in batch.messages:
                data = encode(m)
                if data:
                    out.write(data if data.endswith(b"\n") else data + b"\n")
            out.flush()
            ctx.stats.messages_out += len(batch)
            batch.done()
