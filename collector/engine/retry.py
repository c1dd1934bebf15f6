"""Exponential backoff with jitter, as `[X.retries]` describes it (docs/compatibility.md,
"Configuration")."""

from __future__ import annotations

import random
from types import SimpleNamespace


class Backoff:
    """delay, 2*delay, 4*delay ... capped at max_delay, plus up to max_jitter random."""

    def __init__(self, delay: float = 0.25, max_delay: float = 30.0, max_jitter: float = 0.5,
                 max_retries: int = -1) -> None:
        self.delay = delay
        self.max_delay = max_delay
        self.max_jitter = max_jitter
        self.max_retries = max_retries
        self.attempts = 0

    @classmethod
    def from_config(cls, retries: SimpleNamespace) -> Backoff:
        return cls(retries.delay, retries.max_delay, retries.max_jitter, retries.max_retries)

    @property
    def exhausted(self) -> bool:
        return self.max_retries >= 0 and self.attempts >= self.max_retries

    def next_delay(self) -> float:
        """The wait before the next attempt; counts the attempt."""
        base = min(self.max_delay, self.delay * (2 ** min(self.attempts, 32)))
        self.attempts += 1
        return base + (random.uniform(0, self.max_jitter) if self.max_jitter > 0 else 0.0)

    def reset(self) -> None:
        self.attempts = 0
