"""Sends OpenStack notifications with oslo.messaging's own Notifier (the producer the
AMQP tests use): `python oslo_notify.py URL DRIVER COUNT START [--durable]`.

Notification i (START ≤ i < START+COUNT) is `compute.instance.create.end` from
`compute.node-<i % 3>` with `display_name = "vm-<i>"`; one in five is sent with
`warn`, one in seven with `error`."""

from __future__ import annotations

import sys
import warnings

warnings.simplefilter("ignore")

import oslo_messaging  # noqa: E402
from oslo_config import cfg  # noqa: E402


def main() -> None:
    url, driver, count, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    conf = cfg.ConfigOpts()
    conf([], project="hekapy-test")
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    if "--durable" in sys.argv:  # the driver's options exist once the transport does
        conf.set_override("amqp_durable_queues", True, group="oslo_messaging_rabbit")
        transport.cleanup()
        transport = oslo_messaging.get_notification_transport(conf, url=url)
    notifiers = [oslo_messaging.Notifier(transport, publisher_id=f"compute.node-{n}",
                                         driver=driver, topics=["notifications"])
                 for n in range(3)]
    for i in range(start, start + count):
        notifier = notifiers[i % 3]
        payload = {"instance_id": f"{i:08x}-0000-4000-8000-000000000000",
                   "tenant_id": "112245730b1f4858ab62e3673e1ee9e2",
                   "display_name": f"vm-{i}", "state": "active", "memory_mb": 512,
                   "created_at": "2026-11-23 20:16:20+00:00",
                   "launched_at": "2026-11-23T20:16:28.500000"}
        send = notifier.error if i % 7 == 0 else notifier.warn if i % 5 == 0 else notifier.info
        send({}, "compute.instance.create.end", payload)
    transport.cleanup()


if __name__ == "__main__":
    main()
