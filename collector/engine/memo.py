"""A bounded memo of a function of text, for plugins that compute the same thing for
the same few strings message after message (escaped names, checks on field names)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class BoundedMemo(dict):
    """Text -> `compute(text)`, computed on first use. Bounded: emptied when full, so a
    stream of ever new texts cannot grow it without end. Keys are str only: 1, 1.0 and
    True are one dict key but three different texts."""

    __slots__ = ("compute", "limit")

    def __init__(self, compute: Callable[[str], Any], limit: int) -> None:
        super().__init__()
        self.compute = compute
        self.limit = limit

    def __missing__(self, text: str) -> Any:
        if len(self) >= self.limit:
            self.clear()
        value = self[text] = self.compute(text)
        return value
