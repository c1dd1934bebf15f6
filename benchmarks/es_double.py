"""An Elasticsearch test double: the one place tests and benchmarks get an
Elasticsearch/OpenSearch-like server, since none can be installed here (docs/design.md,
"Tests").

Faithful where shippers depend on it:
- `GET /` answers as Elasticsearch 7.17, 8.x or OpenSearch 2.x (`flavor`);
- `POST /_bulk` and `/<index>/_bulk` (index, create, update with `doc`, delete), NDJSON,
  gzip bodies, auto ids, per-item results in Elasticsearch's format (`_index`, `_id`,
  `_version`, `result`, `status`, `error`), `errors` flag; 409 on `create` of an
  existing id; a `_type` in an action line is refused with a whole-request 400 by 8.x
  and OpenSearch 2.x (types were removed), accepted by 7.x;
- dynamic mappings per index (the first document fixes a field's type; an
  incompatible value later is a per-item 400 `mapper_parsing_exception`) and index
  templates (`_index_template`, legacy `_template`) that fix types up front;
- `_count` and `_search` (match_all or one `term`), index wildcards like `log-*`;
- lifecycle policies: ILM on Elasticsearch (`_ilm/policy/<name>`; an index's
  `index.lifecycle.name` setting comes from its template or `PUT <index>/_settings`),
  ISM on OpenSearch (`_plugins/_ism/policies/<name>` with OpenSearch's optimistic
  concurrency: overwriting needs `if_seq_no`/`if_primary_term`, else 409; `ism_template`
  puts new indices under a policy; `_plugins/_ism/add|change_policy|explain/<index>`);
  the other flavor's API answers 400 "no handler found", as the real servers do.
  Policies are stored, not run: nothing is deleted;
- basic auth and `Authorization: ApiKey` when configured (401 otherwise).
Not modelled: shards, refresh, analyzers, dates, nested queries, aggregations.

Fault injection, from Python (`es.faults.reject_429 = 3`) or over HTTP
(`POST /_double/faults` with a JSON object of the same names): `reject_429` /
`fail_5xx` (next N bulk requests), `item_failure_rate` + `item_failure_status`
(random per-item failures, seeded), `mapping_conflicts` (next N documents refused with
400), `hang` (next N requests never answered), `reset` (next N connections closed
without an answer), `delay` (seconds before each bulk answer), `down` (every request's
connection closed), `reject_429_every` (every Nth bulk request answered 429, for good),
`down_after` (once that many documents are stored, `down` turns on by itself: an outage
at an exact point, whatever the client's speed).
`GET /_double/stats`, `GET /_double/count` (cheap: the number of stored documents, for
polling), `GET /_double/ids`, `POST /_double/reset`. `GET`/`HEAD /_cat/health` answers
as a green one-node cluster (rsyslog's omelasticsearch checks it before sending).

Every stored `_id` is recorded with how many times it was written, so a test can check
"every document exactly once".

Arrival times (benchmarks: write-to-acknowledged latency, lines lost): with
`record_seq` (a bytes regex with one group of digits, e.g. rb"hkseq=(\\d+)"), the
double notes the first time (time.time(), so another process on the machine can compare
its own clock) each sequence number appeared in a stored document's source, just before
the bulk request is answered. `GET /_double/arrivals` → {"seqs": [...], "times": [...]};
`GET /_double/count` adds how many arrived, `seq_floor`, the lowest one still missing
(writers number their lines from 0), and `seq_duplicates`, how many times a number
arrived in a second document (another index or `_id`: a line shipped twice).

In process: `async with EsDouble(flavor="es8") as es: es.url`. As a process (for
benchmarks, and kill/restart tests):
`python -m hekapy.benchmarks.es_double --port 0 --flavor opensearch2` prints the URL
on its first line of stdout once it listens. Process flags: `--faults '{"reject_429_every":
5}'` (faults from the start), `--record-seq 'hkseq=(\\d+)'`; SIGUSR1 puts it down
(`go_down`, and open connections are closed on their next request), SIGUSR2 brings it
back (`come_back`), stored documents kept: an Elasticsearch outage for a process under
test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fnmatch
import gzip
import random
import re
import signal
import ssl
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import Any

import orjson
from aiohttp import web

VERSIONS = {
    "es7": {"number": "7.17.24", "build_flavor": "default", "lucene_version": "8.11.3"},
    "es8": {"number": "8.15.3", "build_flavor": "default", "lucene_version": "9.11.1"},
    "opensearch2": {"distribution": "opensearch", "number": "2.17.1",
                    "lucene_version": "9.11.1"},
}


@dataclass
class Faults:
    reject_429: int = 0
    fail_5xx: int = 0
    fail_status: int = 503
    item_failure_rate: float = 0.0
    item_failure_status: int = 429
    mapping_conflicts: int = 0
    hang: int = 0
    reset: int = 0
    delay: float = 0.0
    down: bool = False
    reject_429_every: int = 0
    down_after: int = 0


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "float"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return _kind(value[0]) if value else None
    return "text"


_NUMERIC = {"long", "integer", "short", "byte", "float", "double", "half_float",
            "scaled_float", "unsigned_long"}


def _compatible(mapped: str, value: Any) -> bool:
    """Whether Elasticsearch would index `value` into a field mapped as `mapped`."""
    if isinstance(value, list):
        return all(_compatible(mapped, v) for v in value)
    if value is None:
        return True
    if mapped == "object":
        return isinstance(value, dict)
    if isinstance(value, dict):
        return False
    if mapped in _NUMERIC:
        if isinstance(value, bool):
            return False
        if isinstance(value, (int, float)):
            return True
        try:
            float(value)
            return True
        except (TypeError, ValueError):
            return False
    if mapped == "boolean":
        return isinstance(value, bool) or value in ("true", "false", "")
    return True  # text, keyword, date (not checked) take anything scalar


class Index:
    def __init__(self, name: str, mapping: dict[str, str],
                 settings: dict[str, Any] | None = None) -> None:
        self.name = name
        self.mapping = dict(mapping)
        self.settings: dict[str, Any] = dict(settings or {})  # flat "index.x.y" keys
        self.ism_policy: str | None = None  # OpenSearch: the ISM policy managing it
        self.docs: dict[str, bytes | None] = {}
        self.versions: Counter[str] = Counter()
        self.parsed: dict[str, dict] = {}


class EsDouble:
    def __init__(self, flavor: str = "es8", *, username: str | None = None,
                 password: str | None = None, api_key: str | None = None,
                 store_sources: bool = True, check_mappings: bool = True,
                 seed: int = 0, record_seq: bytes | None = None) -> None:
        if flavor not in VERSIONS:
            raise ValueError(f"flavor must be one of {sorted(VERSIONS)}")
        self.flavor = flavor
        self.auth: set[str] = set()
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self.auth.add(f"Basic {token}")
        if api_key is not None:
            self.auth.add(f"ApiKey {api_key}")
        self.store_sources = store_sources
        self.check_mappings = check_mappings
        self.rng = random.Random(seed)
        self.record_seq = re.compile(record_seq) if record_seq else None
        self.faults = Faults()
        self.reset_state()
        self.host = "127.0.0.1"
        self.port = 0
        self.ssl_context: ssl.SSLContext | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    # --- state ----------------------------------------------------------------------
    def reset_state(self) -> None:
        self.indices: dict[str, Index] = {}
        self.templates: dict[str, dict] = {}
        self.legacy_templates: dict[str, dict] = {}
        self.ilm_policies: dict[str, dict] = {}
        self.ism_policies: dict[str, dict] = {}  # name → {"policy", "seq_no", "version"}
        self._seq_no = 0
        self.write_counts: Counter[tuple[str, str]] = Counter()
        self.stats: Counter[str] = Counter()
        self.arrivals: dict[int, float] = {}
        self.seq_floor = 0  # every sequence number below it has arrived
        # A sequence number stored under a second document (another _index/_id): the
        # same line shipped twice as two documents, a duplicate a re-write cannot hide.
        self._seq_docs: dict[int, int] = {}  # seq → hash of its first (index, id)
        self.seq_duplicates = 0
        self._stored = asyncio.Event()  # set after each bulk request (wait_count)

    def ids(self, pattern: str = "*") -> set[str]:
        return {i for ix in self._match(pattern) for i in ix.docs}

    def docs(self, pattern: str = "*") -> list[dict]:
        out = []
        for ix in self._match(pattern):
            for doc_id, src in ix.docs.items():
                d = orjson.loads(src) if src is not None else {}
                out.append({"_index": ix.name, "_id": doc_id, "_source": d})
        return out

    def count(self, pattern: str = "*") -> int:
        return sum(len(ix.docs) for ix in self._match(pattern))

    async def wait_count(self, n: int, pattern: str = "*", timeout: float = 60.0,
                         proc: object = None) -> None:
        """Until at least `n` documents match `pattern`: woken by every bulk request,
        no polling. `proc` (a subprocess.Popen) dying first is an AssertionError."""
        async def wait() -> None:
            while self.count(pattern) < n:
                self._stored.clear()
                if proc is not None and proc.poll() is not None:  # type: ignore[attr-defined]
                    raise AssertionError(f"the client exited with {proc.returncode}")  # type: ignore[attr-defined]
                try:
                    await asyncio.wait_for(self._stored.wait(), 1.0)
                except TimeoutError:
                    pass  # look at the client process again
        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"only {self.count(pattern)} of {n} documents "
                                 f"after {timeout} s") from None

    def _match(self, pattern: str) -> list[Index]:
        pats = pattern.split(",")
        return [ix for name, ix in self.indices.items()
                if any(fnmatch.fnmatchcase(name, p) for p in pats)]

    def _index(self, name: str) -> Index:
        ix = self.indices.get(name)
        if ix is None:
            ix = self.indices[name] = Index(name, self._template_mapping(name),
                                            self._template_settings(name))
            ix.ism_policy = self._ism_policy_for(name)
        return ix

    def _template_settings(self, name: str) -> dict[str, Any]:
        """The settings of the composable template that wins for `name`, flattened."""
        best: tuple[int, dict] | None = None
        for body in self.templates.values():
            if any(fnmatch.fnmatchcase(name, p) for p in body.get("index_patterns", [])):
                prio = int(body.get("priority", 0))
                if best is None or prio > best[0]:
                    best = (prio, body.get("template", {}).get("settings", {}))
        return _flat_settings(best[1]) if best else {}

    def _ism_policy_for(self, name: str) -> str | None:
        if not self.flavor.startswith("opensearch"):
            return None
        best: tuple[int, str] | None = None
        for policy_id, stored in self.ism_policies.items():
            for t in stored["policy"].get("ism_template") or []:
                if any(fnmatch.fnmatchcase(name, p) for p in t.get("index_patterns", [])):
                    prio = int(t.get("priority", 0))
                    if best is None or prio > best[0]:
                        best = (prio, policy_id)
        return best[1] if best else None

    def _template_mapping(self, name: str) -> dict[str, str]:
        best: tuple[int, dict] | None = None
        for body in self.templates.values():
            if any(fnmatch.fnmatchcase(name, p) for p in body.get("index_patterns", [])):
                prio = int(body.get("priority", 0))
                props = body.get("template", {}).get("mappings", {}).get("properties", {})
                if best is None or prio > best[0]:
                    best = (prio, props)
        if best is None:
            for body in self.legacy_templates.values():
                pats = body.get("index_patterns") or [body.get("template", "")]
                if any(fnmatch.fnmatchcase(name, p) for p in pats):
                    m = body.get("mappings", {})
                    props = m.get("properties") or next(
                        (v.get("properties", {}) for v in m.values() if isinstance(v, dict)),
                        {})
                    best = (0, props)
                    break
        if best is None:
            return {}
        return {k: v.get("type", "object") for k, v in best[1].items() if isinstance(v, dict)}

    # --- server ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 30, middlewares=[self._middleware])
        r = app.router
        r.add_get("/", self._root)
        r.add_post("/_double/faults", self._set_faults)
        r.add_get("/_double/stats", self._get_stats)
        r.add_get("/_double/count", self._get_count)
        r.add_get("/_double/arrivals", self._get_arrivals)
        r.add_get("/_cat/health", self._cat_health)
        r.add_get("/_double/ids", self._get_ids)
        r.add_post("/_double/reset", self._reset)
        r.add_post("/_bulk", self._bulk)
        r.add_put("/_bulk", self._bulk)
        r.add_post("/{index}/_bulk", self._bulk)
        for path, store in (("/_index_template/{name}", "templates"),
                            ("/_template/{name}", "legacy_templates")):
            r.add_put(path, self._put_template(store))
            r.add_post(path, self._put_template(store))
            r.add_get(path, self._get_template(store))
            r.add_delete(path, self._delete_template(store))
        r.add_route("*", "/_ilm/policy/{name}", self._ilm_policy)
        r.add_route("*", "/_plugins/_ism/policies/{name}", self._ism_policy)
        r.add_post("/_plugins/_ism/add/{index}", self._ism_attach)
        r.add_post("/_plugins/_ism/change_policy/{index}", self._ism_attach)
        r.add_get("/_plugins/_ism/explain/{index}", self._ism_explain)
        r.add_put("/{index}/_settings", self._put_settings)
        r.add_get("/{index}/_settings", self._get_settings)
        r.add_route("*", "/_count", self._count)
        r.add_route("*", "/{index}/_count", self._count)
        r.add_route("*", "/_search", self._search)
        r.add_route("*", "/{index}/_search", self._search)
        r.add_put("/{index}", self._create_index)
        r.add_get("/{index}", self._get_index)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0,
                    ssl_context: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.ssl_context = ssl_context
        # Short shutdown: a request the "hang" fault holds must not delay stopping.
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port or self.port, reuse_address=True,
                                 ssl_context=ssl_context)
        await self._site.start()
        self.port = self._site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def go_down(self) -> None:
        """Stop listening (connections are refused) but keep every stored document."""
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def come_back(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True,
                                 ssl_context=self.ssl_context)
        await self._site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> EsDouble:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # --- middleware: faults and auth ------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.stats["requests"] += 1
        if request.path.startswith("/_double/"):
            return await handler(request)
        f = self.faults
        if f.down or f.reset > 0:
            if not f.down:
                f.reset -= 1
            self.stats["resets"] += 1
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing is sent back
        if f.hang > 0:
            f.hang -= 1
            self.stats["hangs"] += 1
            await asyncio.Event().wait()
        if self.auth and request.headers.get("Authorization") not in self.auth:
            self.stats["unauthorized"] += 1
            return _json({"error": {"type": "security_exception",
                                    "reason": "missing authentication credentials"},
                          "status": 401}, 401, {"WWW-Authenticate": 'Basic realm="security"'})
        return await handler(request)

    # --- handlers -------------------------------------------------------------------
    async def _root(self, request: web.Request) -> web.Response:
        return _json({"name": "es-double", "cluster_name": "hekapy-test",
                      "cluster_uuid": "d0ub1e", "version": VERSIONS[self.flavor],
                      "tagline": "The OpenSearch Project: https://opensearch.org/"
                      if self.flavor.startswith("opensearch") else "You Know, for Search"})

    async def _set_faults(self, request: web.Request) -> web.Response:
        body = await request.json()
        names = {f.name for f in fields(Faults)}
        for k, v in body.items():
            if k not in names:
                return _json({"error": f"unknown fault {k!r}"}, 400)
            setattr(self.faults, k, v)
        return _json(asdict(self.faults))

    async def _get_stats(self, request: web.Request) -> web.Response:
        counts = Counter(self.write_counts.values())
        return _json({**self.stats, "documents": self.count(),
                      "ids_written_more_than_once": sum(n for c, n in counts.items() if c > 1),
                      "faults": asdict(self.faults)})

    async def _get_count(self, request: web.Request) -> web.Response:
        return _json({"documents": self.count(), "bulk_requests": self.stats["bulk_requests"],
                      "seqs": len(self.arrivals), "seq_floor": self.seq_floor,
                      "seq_duplicates": self.seq_duplicates})

    async def _get_arrivals(self, request: web.Request) -> web.Response:
        return _json({"seqs": list(self.arrivals), "times": list(self.arrivals.values())})

    async def _cat_health(self, request: web.Request) -> web.Response:
        now = int(time.time())
        if request.query.get("format") == "json":
            return _json([{"epoch": str(now), "cluster": "hekapy-test", "status": "green",
                           "node.total": "1", "node.data": "1", "shards": "1"}])
        return web.Response(text=f"{now} {time.strftime('%H:%M:%S', time.gmtime(now))} "
                                 "hekapy-test green 1 1 1 1 0 0 0 0 - 100.0%\n")

    async def _get_ids(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(
            {f"{i}/{d}": n for (i, d), n in self.write_counts.items()}),
            content_type="application/json")

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset_state()
        self.faults = Faults()
        return _json({"acknowledged": True})

    def _put_template(self, store: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            getattr(self, store)[request.match_info["name"]] = await request.json()
            return _json({"acknowledged": True})
        return handler

    def _get_template(self, store: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            body = getattr(self, store).get(name)
            if body is None:
                return _json({"error": {"type": "resource_not_found_exception",
                                        "reason": f"index template matching [{name}] not "
                                                  "found"}, "status": 404}, 404)
            if store == "templates":
                return _json({"index_templates": [{"name": name, "index_template": body}]})
            return _json({name: body})
        return handler

    def _delete_template(self, store: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            if getattr(self, store).pop(request.match_info["name"], None) is None:
                return _json({"error": {"type": "resource_not_found_exception"},
                              "status": 404}, 404)
            return _json({"acknowledged": True})
        return handler

    # --- lifecycle policies (stored, never run) ----------------------------------------
    def _no_handler(self, request: web.Request) -> web.Response:
        reason = f"no handler found for uri [{request.path_qs}] and method [{request.method}]"
        return _json({"error": reason, "status": 400}, 400)

    async def _ilm_policy(self, request: web.Request) -> web.Response:
        if self.flavor.startswith("opensearch"):
            return self._no_handler(request)
        name = request.match_info["name"]
        if request.method == "PUT":
            body = await request.json()
            phases = body.get("policy", {}).get("phases") if isinstance(body, dict) else None
            if not isinstance(phases, dict) or set(body) != {"policy"}:
                return _bad_request("policy must be {\"policy\": {\"phases\": {...}}}")
            old = self.ilm_policies.get(name)
            self.ilm_policies[name] = {"version": old["version"] + 1 if old else 1,
                                       "policy": body["policy"]}
            return _json({"acknowledged": True})
        if request.method == "GET":
            stored = self.ilm_policies.get(name)
            if stored is None:
                return _json({"error": {"type": "resource_not_found_exception",
                                        "reason": f"Lifecycle policy not found: {name}"},
                              "status": 404}, 404)
            return _json({name: {"version": stored["version"],
                                 "modified_date": "2026-01-01T00:00:00.000Z",
                                 "policy": stored["policy"]}})
        if request.method == "DELETE":
            if self.ilm_policies.pop(name, None) is None:
                return _json({"error": {"type": "resource_not_found_exception"},
                              "status": 404}, 404)
            return _json({"acknowledged": True})
        return self._no_handler(request)

    def _ism_answer(self, name: str) -> dict:
        """A stored ISM policy as OpenSearch shows it, with the keys it adds."""
        stored = self.ism_policies[name]
        policy = orjson.loads(orjson.dumps(stored["policy"]))
        for state in policy.get("states", []):
            for action in state.get("actions", []):
                action.setdefault("retry", {"count": 3, "backoff": "exponential",
                                            "delay": "1m"})
        for t in policy.get("ism_template") or []:
            t["last_updated_time"] = 1767225600000
        policy.update(policy_id=name, last_updated_time=1767225600000, schema_version=21,
                      error_notification=None)
        return {"_id": name, "_version": stored["version"], "_seq_no": stored["seq_no"],
                "_primary_term": 1, "policy": policy}

    async def _ism_policy(self, request: web.Request) -> web.Response:
        if not self.flavor.startswith("opensearch"):
            return self._no_handler(request)
        name = request.match_info["name"]
        stored = self.ism_policies.get(name)
        if request.method == "GET":
            if stored is None:
                return _json({"error": {"type": "status_exception",
                                        "reason": "Policy not found"}, "status": 404}, 404)
            return _json(self._ism_answer(name))
        if request.method == "DELETE":
            if self.ism_policies.pop(name, None) is None:
                return _json({"error": {"type": "status_exception"}, "status": 404}, 404)
            return _json({"_id": name, "result": "deleted"})
        if request.method != "PUT":
            return self._no_handler(request)
        body = await request.json()
        policy = body.get("policy") if isinstance(body, dict) else None
        states = policy.get("states") if isinstance(policy, dict) else None
        if not isinstance(states, list) or policy.get("default_state") not in {
                s.get("name") for s in states if isinstance(s, dict)}:
            return _bad_request("policy needs states and a default_state among them")
        if stored is not None:
            seq, term = request.query.get("if_seq_no"), request.query.get("if_primary_term")
            if seq is None or term is None or int(seq) != stored["seq_no"] or term != "1":
                return _json({"error": {
                    "type": "version_conflict_engine_exception",
                    "reason": f"[{name}]: version conflict, required seqNo [{seq}], "
                              f"primary term [{term}]. current document has seqNo "
                              f"[{stored['seq_no']}] and primary term [1]"},
                    "status": 409}, 409)
        self._seq_no += 1
        self.ism_policies[name] = {"policy": policy, "seq_no": self._seq_no,
                                   "version": stored["version"] + 1 if stored else 1}
        return _json(self._ism_answer(name), 200 if stored else 201)

    async def _ism_attach(self, request: web.Request) -> web.Response:
        if not self.flavor.startswith("opensearch"):
            return self._no_handler(request)
        policy_id = (await request.json()).get("policy_id")
        if policy_id not in self.ism_policies:
            return _json({"error": {"type": "status_exception",
                                    "reason": f"Could not find policy={policy_id}"},
                          "status": 404}, 404)
        adding = request.path.startswith("/_plugins/_ism/add/")
        updated, failed = 0, []
        for ix in self._match(request.match_info["index"]):
            if adding and ix.ism_policy is not None:
                failed.append({"index_name": ix.name, "index_uuid": ix.name,
                               "reason": "This index already has a policy, use the update "
                                         "policy API to update index policies"})
            elif not adding and ix.ism_policy is None:
                failed.append({"index_name": ix.name, "index_uuid": ix.name,
                               "reason": "This index does not have a policy"})
            else:
                ix.ism_policy = policy_id
                updated += 1
        return _json({"updated_indices": updated, "failures": bool(failed),
                      "failed_indices": failed})

    async def _ism_explain(self, request: web.Request) -> web.Response:
        if not self.flavor.startswith("opensearch"):
            return self._no_handler(request)
        found = self._match(request.match_info["index"])
        out: dict[str, Any] = {ix.name: {
            "index.plugins.index_state_management.policy_id": ix.ism_policy,
            "policy_id": ix.ism_policy} for ix in found}
        out["total_managed_indices"] = sum(ix.ism_policy is not None for ix in found)
        return _json(out)

    async def _put_settings(self, request: web.Request) -> web.Response:
        found = self._match(request.match_info["index"])
        if not found and request.query.get("allow_no_indices") != "true":
            return _json({"error": {"type": "index_not_found_exception"}, "status": 404}, 404)
        settings = _flat_settings(await request.json())
        for ix in found:
            ix.settings.update(settings)
        return _json({"acknowledged": True})

    async def _get_settings(self, request: web.Request) -> web.Response:
        found = self._match(request.match_info["index"])
        if not found:
            return _json({"error": {"type": "index_not_found_exception"}, "status": 404}, 404)
        return _json({ix.name: {"settings": ix.settings} for ix in found})

    async def _create_index(self, request: web.Request) -> web.Response:
        name = request.match_info["index"]
        if name in self.indices:
            return _json({"error": {"type": "resource_already_exists_exception"},
                          "status": 400}, 400)
        self._index(name)
        return _json({"acknowledged": True, "index": name})

    async def _get_index(self, request: web.Request) -> web.Response:
        found = self._match(request.match_info["index"])
        if not found:
            return _json({"error": {"type": "index_not_found_exception"}, "status": 404}, 404)
        return _json({ix.name: {"mappings": {"properties": {
            k: {"type": v} for k, v in ix.mapping.items()}}} for ix in found})

    async def _query(self, request: web.Request) -> tuple[list[dict], int]:
        body = {}
        if request.can_read_body:
            raw = await request.read()
            if raw.strip():
                body = orjson.loads(raw)
        pattern = request.match_info.get("index", "*")
        query = body.get("query", {"match_all": {}})
        term = query.get("term")
        hits = []
        for ix in self._match(pattern):
            for doc_id, src in ix.docs.items():
                doc = ix.parsed.get(doc_id)
                if doc is None:
                    doc = orjson.loads(src) if src is not None else {}
                if term:
                    ((field, want),) = term.items()
                    if isinstance(want, dict):
                        want = want.get("value")
                    value = doc.get(field)
                    if value != want and not (isinstance(value, list) and want in value):
                        continue
                hits.append({"_index": ix.name, "_id": doc_id, "_source": doc})
        return hits, int(body.get("size", request.query.get("size", 10)))

    async def _count(self, request: web.Request) -> web.Response:
        hits, _ = await self._query(request)
        return _json({"count": len(hits), "_shards": {"total": 1, "successful": 1,
                                                      "skipped": 0, "failed": 0}})

    async def _search(self, request: web.Request) -> web.Response:
        hits, size = await self._query(request)
        return _json({"took": 1, "timed_out": False,
                      "hits": {"total": {"value": len(hits), "relation": "eq"},
                               "hits": hits[:size]}})

    async def _bulk(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        body = await request.read()
        # aiohttp inflates `Content-Encoding: gzip` bodies itself; a body still gzipped
        # (another server stack) is inflated here.
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        self.stats["bulk_requests"] += 1
        f = self.faults
        if f.delay:
            await asyncio.sleep(f.delay)
        every = f.reject_429_every
        if f.reject_429 > 0 or (every > 0 and self.stats["bulk_requests"] % every == 0):
            if f.reject_429 > 0:
                f.reject_429 -= 1
            self.stats["rejected_429"] += 1
            return _json({"error": {"type": "es_rejected_execution_exception",
                                    "reason": "rejected execution of coordinating operation"},
                          "status": 429}, 429)
        if f.fail_5xx > 0:
            f.fail_5xx -= 1
            self.stats["failed_5xx"] += 1
            return _json({"error": {"type": "unavailable_shards_exception",
                                    "reason": "primary shard is not active"},
                          "status": f.fail_status}, f.fail_status)
        default_index = request.match_info.get("index")
        lines = body.split(b"\n")
        items = []
        stored: list[tuple[bytes, int]] = []  # (source, its document) (record_seq)
        errors = False
        i = 0
        n = len(lines)
        while i < n:
            line = lines[i]
            i += 1
            if not line.strip():
                continue
            try:
                ((op, meta),) = orjson.loads(line).items()
            except (orjson.JSONDecodeError, ValueError, AttributeError):
                return _bad_request(f"Malformed action/metadata line [{i}], expected "
                                    "START_OBJECT or END_OBJECT")
            if "_type" in meta and self.flavor != "es7":
                return _bad_request(f"Action/metadata line [{i}] contains an unknown "
                                    "parameter [_type]")
            source = None
            if op != "delete":
                if i >= n:
                    return _bad_request("The bulk request must be terminated by a newline "
                                        "[\\n]")
                source = lines[i]
                i += 1
            item = self._apply(op, meta, source, default_index)
            status = item[op]["status"]
            errors = errors or status >= 300
            if status < 300 and source is not None and self.record_seq is not None:
                stored.append((source, hash((item[op]["_index"], item[op]["_id"]))))
            items.append(item)
        self.stats["items"] += len(items)
        if self.record_seq is not None:
            now = time.time()
            arrivals = self.arrivals
            seq_docs = self._seq_docs
            search = self.record_seq.search
            for source, doc in stored:
                m = search(source)
                if m is not None:
                    seq = int(m.group(1))
                    arrivals.setdefault(seq, now)
                    if seq_docs.setdefault(seq, doc) != doc:
                        self.seq_duplicates += 1
            while self.seq_floor in arrivals:
                self.seq_floor += 1
        if f.down_after and self.count() >= f.down_after:
            f.down_after = 0
            f.down = True  # this answer still goes out; the next request finds it down
        self._stored.set()
        took = int((time.perf_counter() - started) * 1000)
        return web.Response(body=orjson.dumps({"took": took, "errors": errors,
                                               "items": items}),
                            content_type="application/json")

    def _apply(self, op: str, meta: dict, source: bytes | None, default_index: str | None
               ) -> dict:
        index = meta.get("_index") or default_index
        if index is None:
            return {op: _item_error("", "", 400, "action_request_validation_exception",
                                    "index is missing")}
        doc_id = meta.get("_id") or (uuid.uuid4().hex[:20] if op in ("index", "create")
                                     else None)
        f = self.faults
        if f.item_failure_rate and self.rng.random() < f.item_failure_rate:
            self.stats["item_failures"] += 1
            kind = ("es_rejected_execution_exception" if f.item_failure_status == 429
                    else "unavailable_shards_exception")
            return {op: _item_error(index, doc_id, f.item_failure_status, kind,
                                    "injected failure")}
        ix = self._index(index)
        if op == "delete":
            if ix.docs.pop(doc_id, None) is None and doc_id not in ix.versions:
                return {op: {"_index": index, "_id": doc_id, "status": 404,
                             "result": "not_found", "_version": 1}}
            ix.parsed.pop(doc_id, None)
            ix.versions[doc_id] += 1
            return {op: {"_index": index, "_id": doc_id, "status": 200, "result": "deleted",
                         "_version": ix.versions[doc_id]}}
        if op not in ("index", "create", "update"):
            return {op: _item_error(index, doc_id, 400, "illegal_argument_exception",
                                    f"unknown action [{op}]")}
        if op == "create" and doc_id in ix.docs:
            return {op: _item_error(index, doc_id, 409, "version_conflict_engine_exception",
                                    f"[{doc_id}]: version conflict, document already "
                                    "exists (current version [1])")}
        parsed: dict | None = None
        if self.check_mappings or op == "update" or self.store_sources:
            try:
                parsed = orjson.loads(source or b"")
            except orjson.JSONDecodeError as e:
                return {op: _item_error(index, doc_id, 400, "mapper_parsing_exception",
                                        f"failed to parse: {e}")}
            if not isinstance(parsed, dict):
                return {op: _item_error(index, doc_id, 400, "mapper_parsing_exception",
                                        "document is not an object")}
            if op == "update":
                if doc_id not in ix.docs:
                    return {op: _item_error(index, doc_id, 404, "document_missing_exception",
                                            f"[{doc_id}]: document missing")}
                old = ix.parsed.get(doc_id) or orjson.loads(ix.docs[doc_id] or b"{}")
                parsed = {**old, **parsed.get("doc", {})}
                source = orjson.dumps(parsed)
        if f.mapping_conflicts > 0:
            f.mapping_conflicts -= 1
            return {op: _item_error(index, doc_id, 400, "mapper_parsing_exception",
                                    "injected mapping conflict")}
        if self.check_mappings and parsed is not None:
            for field, value in parsed.items():
                mapped = ix.mapping.get(field)
                if mapped is None:
                    kind = _kind(value)
                    if kind is not None:
                        ix.mapping[field] = kind
                elif not _compatible(mapped, value):
                    self.stats["mapping_conflicts"] += 1
                    return {op: _item_error(
                        index, doc_id, 400, "mapper_parsing_exception",
                        f"failed to parse field [{field}] of type [{mapped}] in document "
                        f"with id '{doc_id}'. Preview of field's value: '{value}'")}
        existed = doc_id in ix.docs
        ix.docs[doc_id] = source if self.store_sources else None
        if self.store_sources and parsed is not None:
            ix.parsed[doc_id] = parsed
        ix.versions[doc_id] += 1
        self.write_counts[(index, doc_id)] += 1
        out = {"_index": index, "_id": doc_id, "_version": ix.versions[doc_id],
               "result": "updated" if existed else "created",
               "_shards": {"total": 2, "successful": 1, "failed": 0},
               "_seq_no": self.stats["items"], "_primary_term": 1,
               "status": 200 if existed else 201}
        if self.flavor == "es7":
            out["_type"] = "_doc"
        return {op: out}


def _flat_settings(settings: dict, prefix: str = "") -> dict[str, Any]:
    """{"index": {"lifecycle": {"name": x}}} and {"number_of_shards": 1} as
    {"index.lifecycle.name": x, "index.number_of_shards": 1}, as Elasticsearch
    shows settings flattened."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict) and key != "analysis":
            out.update(_flat_settings(value, full + "."))
        else:
            out[full if full.startswith("index.") else "index." + full] = value
    return out


def _item_error(index: str, doc_id: str | None, status: int, kind: str, reason: str
                ) -> dict:
    return {"_index": index, "_id": doc_id, "status": status,
            "error": {"type": kind, "reason": reason, "index": index}}


def _bad_request(reason: str) -> web.Response:
    return _json({"error": {"root_cause": [{"type": "illegal_argument_exception",
                                            "reason": reason}],
                            "type": "illegal_argument_exception", "reason": reason},
                  "status": 400}, 400)


def _json(obj: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, headers=headers,
                        content_type="application/json")


def start_process(*flags: str) -> tuple[Any, str]:
    """The double in a process of its own (so it does not share a benchmark's core):
    (the Popen, its URL). Benchmarks pass "--no-sources", "--no-mappings"."""
    import subprocess
    proc = subprocess.Popen([sys.executable, "-m", "hekapy.benchmarks.es_double", *flags],
                            stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()  # type: ignore[union-attr]
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit(f"the Elasticsearch double did not start: {url!r}")
    return proc, url


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Elasticsearch test double")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--flavor", default="es8", choices=sorted(VERSIONS))
    ap.add_argument("--username")
    ap.add_argument("--password")
    ap.add_argument("--api-key")
    ap.add_argument("--no-sources", action="store_true", help="keep ids only (benchmarks)")
    ap.add_argument("--no-mappings", action="store_true", help="skip mapping checks")
    ap.add_argument("--faults", default="{}", help="faults from the start, as the JSON "
                    "object POST /_double/faults takes, e.g. '{\"reject_429_every\": 5}'")
    ap.add_argument("--record-seq", metavar="REGEX", help="note when each sequence number "
                    "(the regex's one group) first appears in a stored document")
    args = ap.parse_args(argv)
    faults = orjson.loads(args.faults)
    unknown = set(faults) - {f.name for f in fields(Faults)}
    if unknown:
        ap.error(f"unknown fault(s) {', '.join(sorted(unknown))}")

    async def serve() -> None:
        es = EsDouble(args.flavor, username=args.username, password=args.password,
                      api_key=args.api_key, store_sources=not args.no_sources,
                      check_mappings=not args.no_mappings,
                      record_seq=args.record_seq.encode() if args.record_seq else None)
        for k, v in faults.items():
            setattr(es.faults, k, v)
        await es.start(args.host, args.port)
        loop = asyncio.get_running_loop()

        tasks: set[asyncio.Task] = set()

        def spawn(coro: Any) -> None:
            task = loop.create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        def down() -> None:  # an outage: refuse new connections, close open ones
            es.faults.down = True
            if es._site is not None:
                spawn(es.go_down())

        def back() -> None:
            async def come_back() -> None:
                if es._site is None:
                    await es.come_back()
                es.faults.down = False
            spawn(come_back())
        loop.add_signal_handler(signal.SIGUSR1, down)
        loop.add_signal_handler(signal.SIGUSR2, back)
        print(es.url, flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
