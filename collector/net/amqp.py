"""AMQP connection code that AMQPInput and AMQPOutput share: the broker URL check,
robust connections with TLS, the errors a connection attempt raises."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aio_pika

from hekapy.collector.engine.plugin import OptionError
from hekapy.collector.engine.redact import redact_url
from hekapy.collector.net.tls import client_ssl_context

EXCHANGE_TYPES = ("direct", "fanout", "topic", "headers")


# What a connection attempt raises when the broker is down or refuses us.
CONNECT_ERRORS = (OSError, TimeoutError, aio_pika.exceptions.AMQPError)


async def connect_broker(url: str, tls: Any, timeout: float
                         ) -> aio_pika.abc.AbstractRobustConnection:
    """A robust connection (it reconnects and restores channels, QoS, declarations and
    consumers by itself); `tls` is a validated `tls` table or None."""
    kwargs: dict[str, Any] = {"timeout": timeout or None}
    if tls is not None:
        kwargs["ssl_context"] = client_ssl_context(tls)
    return await aio_pika.connect_robust(url, **kwargs)


def check_amqp_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise OptionError(f"expected amqp://user:password@host:port/vhost, got "
                          f"{redact_url(url)!r}", key="url")
    return url
