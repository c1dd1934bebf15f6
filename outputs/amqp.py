"""AMQPOutput: publishes encoded messages to a RabbitMQ exchange (docs/compatibility.md,
"Outputs"), the link from node collectors to a pool of aggregator hekapy processes that
consume one queue as competing consumers (conf/amqp_collector.toml,
conf/amqp_aggregator.toml).

Each message is one AMQP message: by default Heka's ProtobufEncoder inside a Heka stream
frame (`content_type` application/hekad), which an AMQPInput reads back with
`splitter = "HekaFramingSplitter"` and `decoder = "ProtobufDecoder"`, Uuid included, so
a batch published twice (after a lost connection) is stored once downstream.

A batch is acknowledged to the inputs once RabbitMQ confirmed every message of it
(publisher confirms, pipelined: the whole batch is in flight at once). A nack, a lost
connection or, with `mandatory` (the default), a message no queue would take (the
aggregators' queue is not declared yet) makes the batch go again after a backoff,
forever: a message is never dropped for want of a consumer.

Keys (Heka's): url, exchange (required), exchange_type ("topic"), exchange_durability
(false), exchange_auto_delete (true), routing_key (""), persistent (false: true sets
delivery mode 2, so messages in durable queues survive a broker restart), content_type
("application/hekad"), encoder ("ProtobufEncoder"), use_framing (true with
ProtobufEncoder), tls. hekapy's: mandatory (true), retry_delay ("250ms"),
retry_max_delay ("30s"), connect_timeout ("10s").

    [aggregator_output]
    type = "AMQPOutput"
    message_matcher = "Type == 'notification' || Type == 'audit'"
    url = "amqp://hekapy:secret@rabbitmq.mgmt:5672/"
    exchange = "hekapy"
    exchange_durability = true
    exchange_auto_delete = false
    routing_key = "aggregator"
    persistent = true
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import aio_pika
from aio_pika.exceptions import DeliveryError

from hekapy.collector.engine.contexts import OutputContext
from hekapy.collector.engine.framing import default_use_framing, frame_record
from hekapy.collector.engine.plugin import Option, OptionError, Output, register
from hekapy.collector.engine.redact import redact_url
from hekapy.collector.engine.retry import Backoff
from hekapy.collector.net.amqp import (
    CONNECT_ERRORS,
    EXCHANGE_TYPES,
    check_amqp_url,
    connect_broker,
)
from hekapy.collector.net.tls import tls_settings
from hekapy.outputs.batching import Abandoned


@register
class AMQPOutput(Output):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "url": Option("str", None, required=True, check=check_amqp_url),
        "exchange": Option("str", None, required=True),
        "exchange_type": Option("str", "topic", choices=EXCHANGE_TYPES),
        "exchange_durability": Option("bool", False),
        "exchange_auto_delete": Option("bool", True),
        "routing_key": Option("str", ""),
        "persistent": Option("bool", False),
        "content_type": Option("str", "application/hekad"),
        "mandatory": Option("bool", True, doc="retry messages no queue takes"),
        "retry_delay": Option("duration", "250ms"),
        "retry_max_delay": Option("duration", "30s"),
        "connect_timeout": Option("duration", "10s"),
        "tls": Option("table", {}),
    }
    defaults: ClassVar[dict[str, Any]] = {"encoder": "ProtobufEncoder"}

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        if not cfg.exchange:
            raise OptionError("the default exchange cannot be declared: name one",
                              key="exchange")
        self.tls = tls_settings(cfg.tls) if cfg.tls else None
        self.safe_url = redact_url(cfg.url)
        self.log = logging.getLogger(f"hekapy.output.{name}")

    async def open(self, ctx: OutputContext, backoff: Backoff) -> tuple[Any, Any]:
        """Connection and exchange, retrying until the broker answers."""
        while True:
            try:
                conn = await connect_broker(self.cfg.url, self.tls, self.cfg.connect_timeout)
                channel = await conn.channel(publisher_confirms=True)
                exchange = await channel.declare_exchange(
                    self.cfg.exchange, self.cfg.exchange_type,
                    durable=self.cfg.exchange_durability,
                    auto_delete=self.cfg.exchange_auto_delete)
                backoff.reset()
                return conn, exchange
            except CONNECT_ERRORS as e:
                await self.wait(ctx, backoff, f"cannot connect to {self.safe_url}: "
                                f"{type(e).__name__}: {e}")

    async def wait(self, ctx: OutputContext, backoff: Backoff, why: str) -> None:
        """Back off before trying again; Abandoned when hekapy is stopping (what is not
        confirmed stays unacknowledged at its input or disk buffer)."""
        if ctx.stopping.is_set():
            raise Abandoned(why)
        delay = backoff.next_delay()
        ctx.limited_log(logging.WARNING, "%s; retrying in %.2f s", why, delay)
        await asyncio.sleep(delay)

    def encode(self, ctx: OutputContext, messages: list) -> list[bytes]:
        framing = self.cfg.use_framing
        if framing is None:
            framing = default_use_framing(ctx.encoder)
        limit = ctx.hekad.max_message_size
        return ctx.encode_messages(
            messages, (lambda data: frame_record(data, limit)) if framing else None)

    async def run(self, ctx: OutputContext) -> None:
        cfg = self.cfg
        backoff = Backoff(cfg.retry_delay, cfg.retry_max_delay, cfg.retry_delay)
        try:
            conn, exchange = await self.open(ctx, backoff)
        except Abandoned as e:
            ctx.log.warning("stopping before the broker answered (%s)", e)
            return
        delivery_mode = (aio_pika.DeliveryMode.PERSISTENT if cfg.persistent
                         else aio_pika.DeliveryMode.NOT_PERSISTENT)
        try:
            while (batch := await ctx.next_batch()) is not None:
                bodies = self.encode(ctx, batch.messages)
                while bodies:
                    publishes = [exchange.publish(
                        aio_pika.Message(body, content_type=cfg.content_type,
                                         delivery_mode=delivery_mode),
                        routing_key=cfg.routing_key, mandatory=cfg.mandatory)
                        for body in bodies]
                    results = await asyncio.gather(*publishes, return_exceptions=True)
                    failed = [(body, r) for body, r in zip(bodies, results, strict=True)
                              if isinstance(r, BaseException)]
                    if not failed:
                        backoff.reset()
                        break
                    ctx.stats.retried += len(failed)
                    first = failed[0][1]
                    why = ("no queue is bound for routing key "
                           f"{cfg.routing_key!r} (message returned)"
                           if isinstance(first, DeliveryError) else
                           f"{type(first).__name__}: {first}")
                    # Only what failed goes again; a confirmed message is not resent.
                    bodies = [body for body, _ in failed]
                    await self.wait(ctx, backoff, f"{len(failed)} messages not "
                                    f"confirmed by {self.safe_url} ({why})")
                ctx.stats.messages_out += len(batch)
                batch.done()
        except Abandoned as e:
            ctx.log.warning("stopping with a batch not confirmed (%s); it is sent again on "
                            "the next start", e)
        finally:
            await conn.close()
