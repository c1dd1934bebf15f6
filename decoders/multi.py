"""MultiDecoder: several decoders tried in order (Heka's plugins/multidecoder.go).

Keys:
  subs: decoder section names, in order (required, at least one).
  cascade_strategy: "first-wins" (default): the first decoder that succeeds wins;
      "all": every decoder is applied in turn to what the previous ones produced (a
      decoder that fails leaves its input as it was).
  log_sub_errors: log each sub-decoder failure (default false).
Decoding fails only when no sub-decoder succeeds.

Sample:

    [aggregator_decoder]
    type = "MultiDecoder"
    subs = ["ProtobufDecoder", "aggregator_flag"]
    cascade_strategy = "all"
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import (
    DecodeError,
    Decoder,
    Option,
    OptionError,
    Plugin,
    register,
)
from hekapy.collector.engine.stats import RateLimitedLog

log = logging.getLogger(__name__)


def _non_empty(subs: list[str]) -> list[str]:
    if not subs:
        raise OptionError("needs at least one sub-decoder")
    return subs


@register
class MultiDecoder(Decoder):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "subs": Option("strlist", None, required=True, check=_non_empty,
                       doc="decoder section names, in order"),
        "cascade_strategy": Option("str", "first-wins", choices=("first-wins", "all")),
        "log_sub_errors": Option("bool", False),
    }
    references: ClassVar[dict[str, str]] = {"subs": "Decoder"}

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self.subs: list[Decoder] = []
        self._all = cfg.cascade_strategy == "all"
        self._limited = RateLimitedLog(log)
        self._batch = 0

    def link(self, build: Callable[[str, str], Plugin]) -> None:
        subs = [build(n, "Decoder") for n in self.cfg.subs]
        self.subs = [d for d in subs if isinstance(d, Decoder)]
        assert len(self.subs) == len(subs), "the config loader checks that subs are decoders"

    @property
    def max_message_size(self) -> int:
        return self.subs[0].max_message_size if self.subs else Decoder.max_message_size

    @max_message_size.setter
    def max_message_size(self, n: int) -> None:
        for d in self.subs:
            d.max_message_size = n

    @property
    def hold_timeout(self) -> float:  # type: ignore[override]  # read-only: the subs' say
        """The longest of the subs' (a sub holding a message waits as it was told)."""
        return max((d.hold_timeout for d in self.subs), default=Decoder.hold_timeout)

    @property
    def batch(self) -> int:
        return self._batch

    @batch.setter
    def batch(self, n: int) -> None:
        self._batch = n
        floor = n
        for d in self.subs:
            d.batch = floor
            if self._all and d.holding:
                # In a cascade, what a sub passes on may be made of records from the
                # batch its oldest held message began in: later subs must not date
                # those records newer (0 when the sub cannot say: safe, only early).
                o = d.oldest_held_batch
                floor = min(floor, o if o is not None else 0)

    @property
    def holding(self) -> bool:
        return any(d.holding for d in self.subs)

    @property
    def oldest_held_batch(self) -> int | None:
        oldest: int | None = None
        for d in self.subs:
            if d.holding:
                o = d.oldest_held_batch
                if o is None:
                    return None  # one sub cannot say: the runner's own assumption
                oldest = o if oldest is None else min(oldest, o)
        return oldest

    def flush(self) -> list[Message]:
        out: list[Message] = []
        for d in self.subs:
            out.extend(d.flush())
        return out

    def flush_stale(self, started_before: int = 0, idle_before: int = 0) -> list[Message]:
        out: list[Message] = []
        for d in self.subs:
            if d.holding:
                out.extend(d.flush_stale(started_before, idle_before))
        return out

    def _failed(self, sub: Decoder, e: Exception) -> None:
        if self.cfg.log_sub_errors:
            self._limited(logging.WARNING, "%s: sub-decoder %s failed: %s", self.name,
                              sub.name, e)

    def decode(self, msg: Message) -> Message | list[Message] | None:
        if not self._all:
            errors = []
            for sub in self.subs:
                # A sub-decoder may change the message before it fails: each gets a copy
                # except the last, which may keep the original.
                candidate = msg if sub is self.subs[-1] else msg.copy()
                try:
                    return sub.decode(candidate)
                except DecodeError as e:
                    self._failed(sub, e)
                    errors.append(f"{sub.name}: {e}")
            raise DecodeError("no sub-decoder succeeded (" + "; ".join(errors) + ")")
        current: list[Message] = [msg]
        any_ok = False
        for sub in self.subs:
            produced: list[Message] = []
            for m in current:
                try:
                    r = sub.decode(m.copy())
                except DecodeError as e:
                    self._failed(sub, e)
                    produced.append(m)
                    continue
                any_ok = True
                if r is None:
                    continue
                produced.extend([r] if isinstance(r, Message) else r)
            current = produced
        if not any_ok:
            raise DecodeError("no sub-decoder succeeded")
        return current
