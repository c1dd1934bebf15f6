"""`hekapy es-setup`: prepares Elasticsearch or OpenSearch for what hekapy ships, in one
idempotent run.

1. `GET /` tells Elasticsearch (ILM) from OpenSearch (ISM, `version.distribution`).
2. The retention policy (outputs/elasticsearch/retention.py), unless retention_days
   is 0: `PUT /_ilm/policy/hekapy-retention` on Elasticsearch; on OpenSearch, which
   refuses to overwrite a policy blindly, `GET /_plugins/_ism/policies/hekapy-retention`
   first, then a create, an update with `if_seq_no`/`if_primary_term`, or nothing when
   it is the same.
3. The `log`, `notification` and `audit` index templates (templates.py), which name the
   ILM policy on Elasticsearch.
4. Indices that already exist get the policy too (`PUT <patterns>/_settings` on
   Elasticsearch; `POST /_plugins/_ism/add/<patterns>`, or `change_policy` after an
   update, on OpenSearch), or they would never expire.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import click
import orjson

from hekapy.collector.engine.config import Config
from hekapy.outputs.elasticsearch.client import EsClient, TransportError
from hekapy.outputs.elasticsearch.retention import (
    INDEX_PATTERNS,
    POLICY_NAME,
    ilm_policy,
    ism_policy,
    same_ism_policy,
)
from hekapy.outputs.elasticsearch.templates import all_templates

EXIT_FAILED = 1
PATTERNS = ",".join(INDEX_PATTERNS)


class SetupError(Exception):
    """The server cannot be prepared: a clear reason, never a credential."""


@dataclass
class Server:
    opensearch: bool
    version: str

    @property
    def product(self) -> str:
        return "OpenSearch" if self.opensearch else "Elasticsearch"


def client_from(config: Config | None, output_name: str | None, servers: tuple[str, ...],
                path: str | None) -> EsClient:
    """The client of the config's ElasticSearchOutput (its servers, credentials, TLS),
    or for `servers` with credentials from HEKAPY_ES_USERNAME / HEKAPY_ES_PASSWORD or
    HEKAPY_ES_API_KEY."""
    if config is not None:
        outputs = [s for s in config.by_category("Output")
                   if s.cls.type_name == "ElasticSearchOutput"
                   and (output_name is None or s.name == output_name)]
        if len(outputs) != 1:
            names = ", ".join(s.name for s in outputs) or "none"
            raise SetupError(f"need exactly one ElasticSearchOutput in {path} "
                             f"(found: {names}); choose with --output")
        return outputs[0].build()._client()  # type: ignore[attr-defined]
    if servers:
        return EsClient(list(servers), username=os.environ.get("HEKAPY_ES_USERNAME", ""),
                        password=os.environ.get("HEKAPY_ES_PASSWORD", ""),
                        api_key=os.environ.get("HEKAPY_ES_API_KEY", ""))
    raise SetupError("give -c CONFIG or --server URL")


async def _call(client: EsClient, method: str, path: str, body: object = None
                ) -> tuple[int, Any]:
    """(status, parsed JSON answer or the text); SetupError when nothing answered or
    the credentials were refused."""
    try:
        status, raw = await client.request(method, path, body)
    except TransportError as e:
        raise SetupError(str(e)) from None
    if status in (401, 403):
        raise SetupError(f"{client.server} answered {status} to {method} {path}: check the "
                         "credentials (the output's, or HEKAPY_ES_*) and their privileges")
    try:
        return status, orjson.loads(raw)
    except orjson.JSONDecodeError:
        return status, raw[:300].decode("utf-8", "replace")


def _failed(what: str, status: int, reply: Any) -> SetupError:
    text = reply if isinstance(reply, str) else orjson.dumps(reply).decode()
    return SetupError(f"{what}: {status} {text[:300]}")


async def detect(client: EsClient) -> Server:
    status, info = await _call(client, "GET", "/")
    if status != 200 or not isinstance(info, dict) or "version" not in info:
        raise _failed(f"GET / on {client.server} (is it Elasticsearch or OpenSearch?)",
                      status, info)
    version = info["version"]
    server = Server(version.get("distribution") == "opensearch", str(version.get("number")))
    if not server.opensearch:
        m = re.match(r"(\d+)\.(\d+)", server.version)
        if m is None or (int(m[1]), int(m[2])) < (7, 8):
            raise SetupError(f"Elasticsearch {server.version} at {client.server}: the "
                             "composable index templates need 7.8 or later")
    return server


async def _install_ilm(client: EsClient, retention_days: int) -> str:
    status, reply = await _call(client, "PUT", f"/_ilm/policy/{POLICY_NAME}",
                                ilm_policy(retention_days))
    if status != 200:
        raise _failed(f"lifecycle policy {POLICY_NAME!r} (ILM)", status, reply)
    return "installed"


async def _install_ism(client: EsClient, retention_days: int) -> str:
    """'created', 'updated' or 'unchanged'."""
    path = f"/_plugins/_ism/policies/{POLICY_NAME}"
    wanted = ism_policy(retention_days)
    status, stored = await _call(client, "GET", path)
    if status == 404:
        status, reply = await _call(client, "PUT", path, wanted)
        outcome = "created"
    elif status == 200 and isinstance(stored, dict):
        if same_ism_policy(stored.get("policy") or {}, wanted):
            return "unchanged"
        status, reply = await _call(
            client, "PUT", f"{path}?if_seq_no={stored['_seq_no']}"
                           f"&if_primary_term={stored['_primary_term']}", wanted)
        outcome = "updated"
    else:
        raise _failed(f"reading lifecycle policy {POLICY_NAME!r} (ISM)", status, stored)
    if status not in (200, 201):
        raise _failed(f"lifecycle policy {POLICY_NAME!r} (ISM)", status, reply)
    return outcome


async def _adopt_existing(client: EsClient, server: Server, policy_outcome: str) -> str:
    """Puts the indices that exist already under the policy; a description of it."""
    if not server.opensearch:
        status, reply = await _call(
            client, "PUT", f"/{PATTERNS}/_settings?allow_no_indices=true",
            {"index": {"lifecycle": {"name": POLICY_NAME}}})
        if status != 200:
            raise _failed("attaching the policy to existing indices", status, reply)
        return f"existing {PATTERNS} indices now under {POLICY_NAME!r}"
    # ISM: `add` for indices without a policy; after an update, managed indices go on
    # with the version they started with unless told to change.
    verb = "change_policy" if policy_outcome == "updated" else "add"
    status, reply = await _call(client, "POST", f"/_plugins/_ism/{verb}/{PATTERNS}",
                                {"policy_id": POLICY_NAME})
    if status == 404 or not isinstance(reply, dict):  # no such index yet
        return f"no existing {PATTERNS} index"
    if status != 200:
        raise _failed(f"ISM {verb} on existing indices", status, reply)
    already = [f for f in reply.get("failed_indices", [])
               if "already has a policy" in str(f.get("reason", ""))]
    others = [f for f in reply.get("failed_indices", []) if f not in already]
    if others:
        raise _failed(f"ISM {verb} on existing indices", status, {"failed_indices": others})
    return (f"existing indices: {reply.get('updated_indices', 0)} put under "
            f"{POLICY_NAME!r}, {len(already)} already under a policy")


async def setup(client: EsClient, shards: int, replicas: int, retention_days: int) -> int:
    """The whole of es-setup against one server; the exit status."""
    try:
        server = await detect(client)
        click.echo(f"{server.product} {server.version} at {client.server}")
        ilm_name = None
        if retention_days <= 0:
            click.echo("retention off (--retention-days 0): no lifecycle policy installed")
        elif server.opensearch:
            outcome = await _install_ism(client, retention_days)
            click.echo(f"lifecycle policy {POLICY_NAME!r} (ISM) {outcome}: deletes "
                       f"{PATTERNS} indices {retention_days} days after their creation")
        else:
            outcome = await _install_ilm(client, retention_days)
            ilm_name = POLICY_NAME
            click.echo(f"lifecycle policy {POLICY_NAME!r} (ILM) {outcome}: deletes "
                       f"{PATTERNS} indices {retention_days} days after their creation")
        for name, body in all_templates(shards, replicas, ilm_name).items():
            status, reply = await _call(client, "PUT", f"/_index_template/{name}", body)
            if not 200 <= status < 300:
                raise _failed(f"index template {name!r}", status, reply)
            click.echo(f"installed index template {name!r} ({name}-*) on {client.server}: "
                       f"{status}")
        if retention_days > 0:
            click.echo(await _adopt_existing(client, server, outcome))
    except SetupError as e:
        click.echo(f"error: {e}", err=True)
        return EXIT_FAILED
    finally:
        await client.close()
    return 0
