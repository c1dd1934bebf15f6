"""CADF audit notifications (Type audit): who did what to what, from bodies that
pycadf and keystonemiddleware really emitted (tests/data/lab/cadf_notifications.json,
tests/tools/capture_cadf.py)."""

from __future__ import annotations

import json

from hekapy.collector.engine.message import STRING, Message
from hekapy.decoders.notification import NotificationDecoder
from tests.helpers.paths import LAB_DATA
from tests.helpers.plugins import make_plugin

BODIES = json.loads((LAB_DATA / "cadf_notifications.json").read_text())


def decode(body: str) -> Message:
    dec = make_plugin(NotificationDecoder, "notification_decoder")
    return dec.decode(Message(type="amqp", logger="openstack_info", hostname="rabbit-1",
                              payload=body))


def fields(msg: Message) -> dict:
    return {f.name: f.values[0] for f in msg.fields}


def test_keystone_authentication_names_initiator_target_observer_and_request():
    ok, locked = decode(BODIES[0]), decode(BODIES[1])
    for msg in (ok, locked):
        assert msg.type == "audit" and msg.logger == "identity.controller-1"
    f = fields(ok)
    assert {k: f[k] for k in ("action", "outcome", "notification_type", "event_type")} == {
        "action": "authenticate", "outcome": "success",
        "notification_type": "identity.authenticate", "event_type": "activity"}
    assert f["initiator_type_uri"] == "service/security/account/user"
    assert f["initiator_host_address"] == "192.168.0.21"
    assert f["initiator_id"] == "936e1912-d009-5e02-a089-dd49d3c111fd"
    assert f["target_type_uri"] == "service/security/account/user"
    assert f["observer_type_uri"] == "service/security"
    assert f["observer_id"] == "0b7e2b1c5d6f4a8e9c3d2f1a0b9c8d7e"
    assert f["request_id"] == "req-1f0c9e8a-7b6d-4c5e-9f8a-0b1c2d3e4f50"
    assert "reason_code" not in f and "initiator_name" not in f  # Keystone sends neither
    g = fields(locked)
    assert g["outcome"] == "failure" and g["reason_code"] == "401"


def test_keystone_project_creation_names_the_project_and_its_creator():
    f = fields(decode(BODIES[2]))
    assert f["action"] == "created.project"
    assert f["target_type_uri"] == "data/security/project"
    assert f["target_id"] == "4e1d2c3b4a5968778695a4b3c2d1e0f9"
    assert f["initiator_project_id"] == "112245730b1f4858ab62e3673e1ee9e2"
    assert f["initiator_host_address"] == "10.20.0.5"


def test_keystonemiddleware_api_audit_names_user_service_and_status():
    msgs = [decode(b) for b in BODIES[3:]]
    assert {m.logger for m in msgs} == {"nova-api"}
    rows = [(f["notification_type"], f["action"], f["outcome"], f.get("reason_code"),
             f["target_type_uri"]) for f in map(fields, msgs)]
    server = "service/compute/servers/server"
    assert rows == [
        ("audit.http.request", "create", "pending", None, "service/compute/servers"),
        ("audit.http.response", "create", "success", "202", "service/compute/servers"),
        ("audit.http.request", "read", "pending", None, server),
        ("audit.http.response", "read", "success", "200", server),
        ("audit.http.request", "delete", "pending", None, server),
        ("audit.http.response", "delete", "success", "200", server),
        ("audit.http.request", "read", "pending", None, server),
        ("audit.http.response", "read", "failure", "404", server)]
    f = fields(msgs[1])
    assert (f["initiator_name"], f["initiator_id"], f["initiator_project_id"],
            f["initiator_host_address"]) == ("alice", "a1b2c3d4e5f60718293a4b5c6d7e8f90",
                                             "112245730b1f4858ab62e3673e1ee9e2",
                                             "192.168.0.21")
    assert (f["target_name"], f["target_id"]) == ("nova", "e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6")
    assert f["observer_id"] == "target" and "observer_type_uri" not in f


def test_party_fields_are_strings_and_the_credential_is_not_a_field():
    for body in BODIES:
        msg = decode(body)
        party = [f for f in msg.fields if f.name.startswith(("initiator_", "target_",
                                                             "observer_"))]
        assert party and all(f.value_type == STRING for f in party)
        assert not any("credential" in f.name or "token" in f.name for f in msg.fields)


def test_odd_cadf_parties_are_left_out_not_a_failure():
    notif = json.loads(json.loads(BODIES[4])["oslo.message"])
    notif["payload"]["initiator"] = {"id": 42, "name": None, "host": "10.0.0.1"}
    notif["payload"]["target"] = "not an object"
    notif["payload"]["reason"] = {"reasonCode": 404}
    f = fields(decode(json.dumps(notif)))
    assert f["action"] == "create" and f["outcome"] == "success"
    assert not any(k.startswith(("initiator_", "target_", "reason_")) for k in f)
