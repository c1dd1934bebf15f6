"""How tests/data/lab/cadf_notifications.json was made (not run by the tests, which
have neither pycadf nor keystonemiddleware): real CADF audit notifications as RabbitMQ
carries them, from

- pycadf's EventFactory, built as Keystone builds `identity.authenticate` (success,
  and a failure with a reason) and `identity.project.created`, published by
  oslo.messaging's Notifier as `identity.controller-1`;
- keystonemiddleware's AuditMiddleware (`audit.http.request` / `audit.http.response`)
  around a small WSGI app, with pycadf's own nova_api_audit_map.conf and a service
  catalog as keystonemiddleware's auth_token hands it on.

Run it as `nova-api` (keystonemiddleware names its publisher after the program), in a
venv with pycadf, keystonemiddleware, oslo.messaging and webob, with RabbitMQ on
127.0.0.1:5672: `cp capture_cadf.py nova-api && python nova-api AUDIT_MAP OUT.json`.
"""

from __future__ import annotations

import json
import sys
import uuid

import kombu
import oslo_messaging
import webob
from keystonemiddleware import audit
from oslo_config import cfg
from pycadf import cadftaxonomy, cadftype, eventfactory, host, reason, resource

URL = "rabbit://guest:guest@127.0.0.1:5672/"
TOPIC = "hekapycapture"
OBSERVER_ID = "0b7e2b1c5d6f4a8e9c3d2f1a0b9c8d7e"


def keystone_events(notifier: oslo_messaging.Notifier) -> None:
    for outcome, why in ((cadftaxonomy.OUTCOME_SUCCESS, None),
                         (cadftaxonomy.OUTCOME_FAILURE,
                          reason.Reason("The account is locked for user: 9f1c", "401"))):
        initiator = resource.Resource(
            typeURI=cadftaxonomy.ACCOUNT_USER,
            host=host.Host(address="192.168.0.21", agent="python-keystoneclient"))
        initiator.user_id = "9f1c6c1a7b3e4c0f8a5d2e7b6c4a3f21"
        initiator.id = str(uuid.uuid5(uuid.NAMESPACE_URL, initiator.user_id))
        initiator.request_id = "req-1f0c9e8a-7b6d-4c5e-9f8a-0b1c2d3e4f50"
        event = eventfactory.EventFactory().new_event(
            eventType=cadftype.EVENTTYPE_ACTIVITY, outcome=outcome, action="authenticate",
            initiator=initiator, target=resource.Resource(typeURI=cadftaxonomy.ACCOUNT_USER),
            reason=why, observer=resource.Resource(typeURI=cadftaxonomy.SERVICE_SECURITY))
        event.observer.id = OBSERVER_ID
        notifier.info({}, "identity.authenticate", event.as_dict())
    initiator = resource.Resource(
        typeURI=cadftaxonomy.ACCOUNT_USER,
        host=host.Host(address="10.20.0.5", agent="openstacksdk/1.0"))
    initiator.user_id = initiator.id = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
    initiator.project_id = "112245730b1f4858ab62e3673e1ee9e2"
    target = resource.Resource(typeURI=cadftaxonomy.SECURITY_PROJECT,
                               id="4e1d2c3b4a5968778695a4b3c2d1e0f9")
    event = eventfactory.EventFactory().new_event(
        eventType=cadftype.EVENTTYPE_ACTIVITY, outcome=cadftaxonomy.OUTCOME_SUCCESS,
        action="created.project", initiator=initiator, target=target,
        observer=resource.Resource(typeURI=cadftaxonomy.SERVICE_SECURITY))
    event.observer.id = OBSERVER_ID
    event.resource_info = target.id
    notifier.info({}, "identity.project.created", event.as_dict())


def middleware_events(audit_map: str) -> None:
    def app(environ: dict, start_response) -> list[bytes]:
        status = "202 Accepted" if environ["REQUEST_METHOD"] == "POST" else "200 OK"
        if environ["PATH_INFO"].endswith("/missing"):
            status = "404 Not Found"
        start_response(status, [("Content-Type", "application/json")])
        return [b"{}"]

    middleware = audit.AuditMiddleware(app, audit_map_file=audit_map, driver="messagingv2",
                                       topics=TOPIC, transport_url=URL)
    endpoint = "http://compute.example.org:8774/v2.1"
    catalog = [{"type": "compute", "name": "nova", "endpoints": [{
        "region": "RegionOne", "id": "e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6",
        "publicURL": endpoint, "adminURL": endpoint, "internalURL": endpoint}]}]
    headers = {"X-Identity-Status": "Confirmed", "X-User-Id": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
               "X-User-Name": "alice", "X-Project-Id": "112245730b1f4858ab62e3673e1ee9e2",
               "X-Project-Name": "demo", "X-Roles": "member,reader",
               "X-Service-Catalog": json.dumps(catalog), "X-Auth-Token": "gAAAAAsecrettoken",
               "User-Agent": "python-novaclient"}
    server = "/v2.1/servers/3f6a2b1c-1111-4222-8333-944445555666"
    for method, path in (("POST", "/v2.1/servers"), ("GET", server), ("DELETE", server),
                         ("GET", "/v2.1/servers/missing")):
        req = webob.Request.blank("http://compute.example.org:8774" + path, method=method,
                                  headers=headers, remote_addr="192.168.0.21")
        if method == "POST":
            req.body, req.content_type = b'{"server": {"name": "vm-1"}}', "application/json"
        req.get_response(middleware)


def main() -> None:
    audit_map, out = sys.argv[1], sys.argv[2]
    connection = kombu.Connection("amqp://guest:guest@127.0.0.1:5672//")
    exchange = kombu.Exchange("openstack", type="topic", durable=False)
    queue = kombu.Queue(TOPIC + ".info", exchange, routing_key=TOPIC + ".info",
                        durable=False)
    queue(connection.channel()).declare()
    conf = cfg.ConfigOpts()
    conf([], project="capture")
    transport = oslo_messaging.get_notification_transport(conf, url=URL)
    keystone_events(oslo_messaging.Notifier(transport, publisher_id="identity.controller-1",
                                            driver="messagingv2", topics=[TOPIC]))
    middleware_events(audit_map)
    transport.cleanup()
    bodies = []
    with connection.SimpleQueue(queue) as sq:
        while True:
            try:
                m = sq.get(timeout=3)
            except sq.Empty:
                break
            bodies.append(m.body if isinstance(m.body, str) else m.body.decode())
            m.ack()
    with open(out, "w") as f:
        json.dump(bodies, f, indent=1)


if __name__ == "__main__":
    main()
