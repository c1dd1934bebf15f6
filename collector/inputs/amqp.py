"""AMQPInput: consumes RabbitMQ queues (docs/compatibility.md, "Inputs"), e.g. the
OpenStack notifications that oslo.messaging publishes (docs/compatibility.md, "LMA
notifications").

Each AMQP message body goes through the splitter (NullSplitter: one record) and the
decoder. Messages: Type `amqp`, Logger = this section's name, Hostname = hekapy's,
Timestamp = the AMQP timestamp property when set (else the time received), Payload =
the body. The Uuid is derived from the body, so a message the broker delivers again
(after a reconnection or a restart of hekapy) keeps its Elasticsearch `_id`.

Delivery: acknowledgements go to RabbitMQ only once every output that matched the
messages has acknowledged them (stored by Elasticsearch, written to a disk buffer);
`prefetch_count` bounds what is unacknowledged, so a slow output slows the consumer and
the messages wait in RabbitMQ. A broker restart or a lost connection is survived:
aio-pika's robust connection reconnects and restores the channel, its prefetch, the
declarations and the consumers; messages unacknowledged at that moment are delivered
again (same Uuid, no duplicate document). A message the decoder cannot decode is
rejected to `dead_letter_exchange` when one is set (declared on the queues as
x-dead-letter-exchange), else acknowledged and counted: never requeued forever.

Keys (Heka's): url (amqp:// or amqps://; the password never appears in logs), exchange,
exchange_type ("topic"), exchange_durability (false), exchange_auto_delete (true),
routing_key (""), prefetch_count (2), queue (""), bind_queue (true), queue_durability
(false), queue_exclusive (false), queue_auto_delete (true), queue_ttl (ms, -1 = none),
read_only (false: true declares nothing, the exchange and queues must exist), tls.
hekapy's: queues (several queues, each bound with its own name as routing key when
routing_key is ""), dead_letter_exchange, connect_timeout ("10s").

    [openstack_info]
    type = "AMQPInput"
    url = "amqp://nova:secret@192.168.0.2:5673/"
    exchange = "nova"
    exchange_type = "topic"
    exchange_durability = false
    exchange_auto_delete = false
    queue = "lma_notifications.info"
    routing_key = "lma_notifications.info"
    queue_auto_delete = false
    decoder = "notification_decoder"
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from typing import Any, ClassVar

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from hekapy.collector.engine.contexts import InputContext
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import Input, Option, OptionError, register
from hekapy.collector.engine.redact import redact_url
from hekapy.collector.engine.retry import Backoff
from hekapy.collector.net.amqp import CONNECT_ERRORS, EXCHANGE_TYPES, check_amqp_url, connect_broker
from hekapy.collector.net.tls import tls_settings


def body_uuid(body: bytes) -> bytes:
    """A version-4-shaped Uuid from the body's hash: the same body, the same id."""
    u = bytearray(hashlib.blake2b(body, digest_size=16).digest())
    u[6] = (u[6] & 0x0F) | 0x40
    u[8] = (u[8] & 0x3F) | 0x80
    return bytes(u)


@register
class AMQPInput(Input):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "url": Option("str", None, required=True, check=check_amqp_url),
        "exchange": Option("str", ""),
        "exchange_type": Option("str", "topic", choices=EXCHANGE_TYPES),
        "exchange_durability": Option("bool", False),
        "exchange_auto_delete": Option("bool", True),
        "routing_key": Option("str", ""),
        "prefetch_count": Option("int", 2),
        "queue": Option("str", ""),
        "queues": Option("strlist", [], doc="several queues (hekapy)"),
        "bind_queue": Option("bool", True),
        "queue_durability": Option("bool", False),
        "queue_exclusive": Option("bool", False),
        "queue_auto_delete": Option("bool", True),
        "queue_ttl": Option("int", -1, doc="message TTL in ms, -1 = none"),
        "read_only": Option("bool", False, doc="declare nothing (passive checks)"),
        "dead_letter_exchange": Option("str", "", doc="where undecodable messages go"),
        "connect_timeout": Option("duration", "10s"),
        "tls": Option("table", {}),
    }

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self.queue_names = ([cfg.queue] if cfg.queue else []) + [
            q for q in cfg.queues if q != cfg.queue]
        if not self.queue_names:
            raise OptionError("give a queue (or queues)", key="queue")
        if cfg.prefetch_count < 1:
            raise OptionError("must be at least 1 (0 would be unbounded)",
                              key="prefetch_count")
        if cfg.bind_queue and not cfg.exchange and not cfg.read_only:
            raise OptionError("bind_queue needs an exchange (the default exchange "
                              "cannot be bound)", key="exchange")
        self.tls = tls_settings(cfg.tls) if cfg.tls else None
        self.safe_url = redact_url(cfg.url)
        self.log = logging.getLogger(f"hekapy.input.{name}")
        # Consumer callbacks → the delivery loop; bounded by the prefetch (the broker
        # sends no more than prefetch_count unacknowledged messages per channel).
        self.incoming: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self.background: set[asyncio.Task] = set()
        self.rejected = 0
        self.ack_lost = 0
        self.consuming = asyncio.Event()  # set once the consumers are registered

    async def connect(self, ctx: InputContext) -> aio_pika.abc.AbstractRobustConnection:
        """Connect, retrying with backoff until the broker answers or hekapy stops."""
        backoff = Backoff(0.5, 30.0, 0.5)
        failing = False
        while True:
            try:
                conn = await connect_broker(self.cfg.url, self.tls, self.cfg.connect_timeout)
                if failing:
                    ctx.log.info("connected to %s", self.safe_url)
                return conn
            except CONNECT_ERRORS as e:
                if not failing:  # logged once until it works
                    ctx.log.warning("cannot connect to %s: %s: %s; retrying",
                                    self.safe_url, type(e).__name__, e)
                    failing = True
                ctx.stats.errors += 1
                try:
                    await asyncio.wait_for(ctx.stopping.wait(), backoff.next_delay())
                    raise asyncio.CancelledError from None
                except TimeoutError:
                    pass

    async def declare(self, channel: aio_pika.abc.AbstractChannel) -> list:
        cfg = self.cfg
        passive = cfg.read_only
        exchange = None
        if cfg.exchange:
            exchange = await channel.declare_exchange(
                cfg.exchange, cfg.exchange_type, durable=cfg.exchange_durability,
                auto_delete=cfg.exchange_auto_delete, passive=passive)
        arguments: dict[str, Any] = {}
        if cfg.queue_ttl >= 0:
            arguments["x-message-ttl"] = cfg.queue_ttl
        if cfg.dead_letter_exchange:
            arguments["x-dead-letter-exchange"] = cfg.dead_letter_exchange
        queues = []
        for name in self.queue_names:
            q = await channel.declare_queue(
                name, durable=cfg.queue_durability, exclusive=cfg.queue_exclusive,
                auto_delete=cfg.queue_auto_delete, arguments=arguments or None,
                passive=passive)
            if cfg.bind_queue and exchange is not None and not passive:
                await q.bind(exchange, cfg.routing_key or name)
            queues.append(q)
        return queues

    async def run(self, ctx: InputContext) -> None:
        ctx.on_ack(self.acknowledged)
        splitter = ctx.new_splitter()
        try:
            conn = await self.connect(ctx)
        except asyncio.CancelledError:
            if ctx.stopping.is_set():
                return
            raise
        try:
            channel = await conn.channel()
            await channel.set_qos(prefetch_count=self.cfg.prefetch_count)
            for q in await self.declare(channel):
                await q.consume(self.incoming.put, no_ack=False)
            ctx.log.info("consuming %s from %s", ", ".join(self.queue_names), self.safe_url)
            self.consuming.set()
            while not ctx.stopping.is_set():
                first = await self.next_message(ctx)
                if first is None:
                    break
                batch = [first]
                while not self.incoming.empty():
                    batch.append(self.incoming.get_nowait())
                await self.deliver(ctx, splitter, batch)
        finally:
            # What was delivered but not yet acknowledged goes back to the broker when
            # the connection closes: delivered again next time (same Uuids).
            await self.drain_acks()
            await conn.close()

    async def next_message(self, ctx: InputContext) -> AbstractIncomingMessage | None:
        get = asyncio.ensure_future(self.incoming.get())
        stop = asyncio.ensure_future(ctx.stopping.wait())
        try:
            await asyncio.wait({get, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not get.done():
                get.cancel()
        return get.result() if get.done() and not get.cancelled() else None

    async def deliver(self, ctx: InputContext, splitter: Any,
                      batch: list[AbstractIncomingMessage]) -> None:
        messages: list[Message] = []
        carried: list[AbstractIncomingMessage] = []
        nbytes = 0
        for incoming in batch:
            body = incoming.body
            nbytes += len(body)
            records = splitter.split(body) + splitter.flush()
            if not records:
                ctx.stats.errors += 1
                self.settle(incoming, ctx, "empty body or a record over max_message_size")
                continue
            ts = incoming.timestamp
            timestamp = int(ts.timestamp() * 1e9) if ts is not None else None
            for i, record in enumerate(records):
                m = Message(type="amqp", logger=self.name, hostname=ctx.hostname,
                            timestamp=timestamp, payload=record.decode("utf-8", "replace"),
                            raw=record if ctx.use_message_bytes else None)
                m.uuid = body_uuid(body if i == 0 else body + i.to_bytes(4, "big"))
                messages.append(m)
            carried.append(incoming)
        ctx.stats.messages_in += len(messages)
        if not messages:
            return
        decoded_before = ctx.stats.decode_failures
        if ctx.decoder is not None and len(carried) == len(messages):
            # Decode here, message by message, to settle the undecodable ones with the
            # broker (dead-letter or ack); deliver() then routes the rest.
            good, good_carried = [], []
            for m, incoming in zip(messages, carried, strict=True):
                out = ctx.decode([m])
                failed = ctx.stats.decode_failures != decoded_before
                decoded_before = ctx.stats.decode_failures
                if failed and not out:  # (forwarded when send_decode_failures is set)
                    self.settle(incoming, ctx, "undecodable")
                    continue
                good += out
                good_carried.append(incoming)
            await ctx.deliver_decoded(good, good_carried, nbytes)
        else:
            await ctx.deliver(messages, carried, nbytes)

    def settle(self, incoming: AbstractIncomingMessage, ctx: InputContext, why: str) -> None:
        """A message no output will see: dead-lettered when configured, else acked."""
        if self.cfg.dead_letter_exchange:
            self.rejected += 1
            self.spawn(self._settle(incoming.reject(requeue=False)))
        else:
            self.spawn(self._settle(incoming.ack()))
        ctx.limited_log(logging.WARNING, "%s message %s from %s", why,
                        "dead-lettered" if self.cfg.dead_letter_exchange else "dropped",
                        incoming.routing_key)

    def acknowledged(self, position: Any) -> None:
        """Every output took these messages: acknowledge them to the broker."""
        if position:
            self.spawn(self._ack_all(position))

    async def _ack_all(self, messages: list[AbstractIncomingMessage]) -> None:
        # Batches complete in delivery order (the tracker's watermark) and share one
        # channel, so one ack with multiple=True settles the whole batch; a message of
        # it settled earlier (dead-lettered) is simply no longer outstanding. Messages
        # from a channel lost since are delivered again by the broker.
        # (After a reconnection the batch may span two channels: the ack on the new one
        # covers its messages, the old channel's are delivered again.)
        await self._settle(messages[-1].ack(multiple=True))

    async def _settle(self, action: Any) -> None:
        try:
            await action
        except Exception:  # the channel closed since: the broker delivers it again
            self.ack_lost += 1

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def drain_acks(self) -> None:
        while self.background:
            with contextlib.suppress(Exception):
                await asyncio.gather(*list(self.background), return_exceptions=True)

    async def close(self, ctx: InputContext) -> None:
        await self.drain_acks()
