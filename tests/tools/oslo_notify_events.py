"""Sends the notifications given as a JSON list on stdin ({publisher_id, event_type,
priority, payload} each) with oslo.messaging's own Notifier, driver messagingv2, topic
`notifications`: `python oslo_notify_events.py URL < events.json`."""

from __future__ import annotations

import json
import sys
import warnings

warnings.simplefilter("ignore")

import oslo_messaging  # noqa: E402
from oslo_config import cfg  # noqa: E402


def main() -> None:
    conf = cfg.ConfigOpts()
    conf([], project="hekapy-test")
    transport = oslo_messaging.get_notification_transport(conf, url=sys.argv[1])
    notifiers: dict[str, oslo_messaging.Notifier] = {}
    for event in json.load(sys.stdin):
        publisher = event["publisher_id"]
        if publisher not in notifiers:
            notifiers[publisher] = oslo_messaging.Notifier(
                transport, publisher_id=publisher, driver="messagingv2",
                topics=["notifications"])
        send = getattr(notifiers[publisher], event.get("priority", "info").lower())
        send({}, event["event_type"], event["payload"])
    transport.cleanup()


if __name__ == "__main__":
    main()
