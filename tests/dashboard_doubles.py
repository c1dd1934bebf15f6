"""Recording HTTP doubles of the Grafana and Kibana / OpenSearch Dashboards APIs that
`hekapy dashboards install` uses (no Grafana or Kibana can be installed here). They
answer as the real servers do for those requests (statuses, bodies, what the servers
add to what they store, the xsrf header check, 401s) and record every request:
`requests` holds (method, path with query, headers, body) in order.

docs/dashboards-install.md lists the same requests with their public API references."""

from __future__ import annotations

import base64
import copy
import json
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Double:
    """Common server plumbing: auth, recording, start/stop."""
    username: str = "admin"
    password: str = "admin-Pa55"
    token: str = ""
    token_scheme: str = "Bearer"
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def allowed(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "")
        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return given == f"Basic {basic}" or (bool(self.token) and
                                             given == f"{self.token_scheme} {self.token}")

    async def record(self, request: web.Request) -> Any:
        body: Any = None
        if request.content_type == "application/json":
            body = await request.json()
        elif request.content_type == "multipart/form-data":
            form = await request.post()
            body = {k: (v.file.read() if hasattr(v, "file") else v) for k, v in form.items()}
            body["_filenames"] = {k: v.filename for k, v in form.items()
                                  if hasattr(v, "filename")}
        self.requests.append(Recorded(request.method, request.path_qs,
                                      dict(request.headers), body))
        return body

    def writes(self) -> list[Recorded]:
        """The requests that change something (bulk_get is a read sent as POST)."""
        return [r for r in self.requests if r.method in ("POST", "PUT", "DELETE")
                and not r.path.endswith("/_bulk_get")]

    def app(self) -> web.Application:
        raise NotImplementedError

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"

    async def stop(self) -> None:
        await self._runner.cleanup()


BODY = web.RequestKey("body", object)  # the request's parsed body, read once


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.json_response(obj, status=status)


@dataclass
class GrafanaDouble(Double):
    """Grafana 10's /api/datasources, /api/folders and /api/dashboards."""
    datasources: dict[str, dict] = field(default_factory=dict)
    folders: dict[str, dict] = field(default_factory=dict)
    dashboards: dict[str, dict] = field(default_factory=dict)  # uid → {dashboard, folderUid}
    next_id: int = 1

    def app(self) -> web.Application:
        @web.middleware
        async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
            request[BODY] = await self.record(request)
            if not self.allowed(request):
                return _json({"message": "Invalid username or password"}, 401)
            return await handler(request)

        app = web.Application(middlewares=[middleware])
        r = app.router
        r.add_get("/api/datasources/uid/{uid}", self.get_datasource)
        r.add_post("/api/datasources", self.add_datasource)
        r.add_put("/api/datasources/uid/{uid}", self.update_datasource)
        r.add_get("/api/folders/{uid}", self.get_folder)
        r.add_post("/api/folders", self.add_folder)
        r.add_get("/api/dashboards/uid/{uid}", self.get_dashboard)
        r.add_post("/api/dashboards/db", self.save_dashboard)
        return app

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    @staticmethod
    def _shown(ds: dict) -> dict:
        """A datasource as Grafana answers: secrets only as secureJsonFields flags."""
        out = {k: v for k, v in ds.items() if k != "secureJsonData"}
        out["secureJsonFields"] = {k: True for k in ds.get("secureJsonData", {})}
        return out

    async def get_datasource(self, request: web.Request) -> web.Response:
        ds = self.datasources.get(request.match_info["uid"])
        if ds is None:
            return _json({"message": "Data source not found"}, 404)
        return _json(self._shown(ds))

    async def add_datasource(self, request: web.Request) -> web.Response:
        body = request[BODY]
        if any(d["name"] == body["name"] for d in self.datasources.values()):
            return _json({"message": "data source with the same name already exists"}, 409)
        ds = {**body, "id": self._id(), "readOnly": False}
        self.datasources[body["uid"]] = ds
        return _json({"datasource": self._shown(ds), "id": ds["id"],
                      "message": "Datasource added", "name": ds["name"]})

    async def update_datasource(self, request: web.Request) -> web.Response:
        old = self.datasources.get(request.match_info["uid"])
        if old is None:
            return _json({"message": "Data source not found"}, 404)
        if old.get("readOnly"):
            return _json({"message": "Cannot update read-only data source"}, 403)
        new = {**request[BODY], "id": old["id"], "readOnly": False}
        if "secureJsonData" not in new and "secureJsonData" in old:
            new["secureJsonData"] = old["secureJsonData"]  # kept unless sent again
        self.datasources[request.match_info["uid"]] = new
        return _json({"datasource": self._shown(new), "message": "Datasource updated"})

    async def get_folder(self, request: web.Request) -> web.Response:
        folder = self.folders.get(request.match_info["uid"])
        return _json(folder) if folder else _json({"message": "folder not found"}, 404)

    async def add_folder(self, request: web.Request) -> web.Response:
        body = request[BODY]
        if body["uid"] in self.folders:
            return _json({"message": "a folder with the same uid already exists"}, 409)
        self.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"],
                                     "id": self._id(), "version": 1}
        return _json(self.folders[body["uid"]])

    async def get_dashboard(self, request: web.Request) -> web.Response:
        saved = self.dashboards.get(request.match_info["uid"])
        if saved is None:
            return _json({"message": "Dashboard not found"}, 404)
        return _json({"dashboard": saved["dashboard"],
                      "meta": {"folderUid": saved["folderUid"], "slug": "x",
                               "provisioned": False}})

    async def save_dashboard(self, request: web.Request) -> web.Response:
        body = request[BODY]
        dash = copy.deepcopy(body["dashboard"])
        uid = dash.get("uid")
        if body.get("folderUid") and body["folderUid"] not in self.folders:
            return _json({"message": "folder not found"}, 400)
        old = self.dashboards.get(uid)
        if old is not None and not body.get("overwrite"):
            return _json({"message": "A dashboard with the same uid already exists",
                          "status": "name-exists"}, 412)
        dash["id"] = old["dashboard"]["id"] if old else self._id()
        dash["version"] = old["dashboard"]["version"] + 1 if old else 1
        self.dashboards[uid] = {"dashboard": dash, "folderUid": body.get("folderUid", "")}
        return _json({"id": dash["id"], "uid": uid, "url": f"/d/{uid}/x",
                      "status": "success", "version": dash["version"]})


@dataclass
class KibanaDouble(Double):
    """Kibana 8's (or OpenSearch Dashboards 2's) saved-objects _bulk_get and _import,
    in the default space or under /s/<space>."""
    opensearch: bool = False
    username: str = "elastic"
    token_scheme: str = "ApiKey"
    objects: dict[tuple[str, str, str], dict] = field(default_factory=dict)  # space,type,id

    @property
    def xsrf(self) -> str:
        return "osd-xsrf" if self.opensearch else "kbn-xsrf"

    def app(self) -> web.Application:
        @web.middleware
        async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
            request[BODY] = await self.record(request)
            if not self.allowed(request):
                return _json({"statusCode": 401, "error": "Unauthorized",
                              "message": "[security_exception] unable to authenticate"},
                             401)
            if request.method == "POST" and self.xsrf not in request.headers:
                return _json({"statusCode": 400, "error": "Bad Request",
                              "message": f"Request must contain a {self.xsrf} header."}, 400)
            return await handler(request)

        app = web.Application(middlewares=[middleware])
        for prefix in ("", "/s/{space}"):
            app.router.add_post(prefix + "/api/saved_objects/_bulk_get", self.bulk_get)
            app.router.add_post(prefix + "/api/saved_objects/_import", self.import_)
        return app

    async def bulk_get(self, request: web.Request) -> web.Response:
        space = request.match_info.get("space", "default")
        out = []
        for want in request[BODY]:
            obj = self.objects.get((space, want["type"], want["id"]))
            out.append(obj if obj is not None else {
                "id": want["id"], "type": want["type"], "error": {
                    "statusCode": 404, "error": "Not Found",
                    "message": f"Saved object [{want['type']}/{want['id']}] not found"}})
        return _json({"saved_objects": out})

    @staticmethod
    def _migrated(obj: dict, space: str) -> dict:
        """What the server stores: the object plus its own keys, and a migration that
        adds to a visualization's JSON (as Kibana's migrations do)."""
        stored = copy.deepcopy(obj)
        stored.pop("migrationVersion", None)
        stored.update(coreMigrationVersion="8.8.0", typeMigrationVersion="8.5.0",
                      updated_at="2026-12-07T00:00:00.000Z", version="WzEsMV0=",
                      namespaces=[space], managed=False)
        if stored["type"] == "visualization":
            state = json.loads(stored["attributes"]["visState"])
            state["params"]["migratedBy"] = "double"
            stored["attributes"]["visState"] = json.dumps(state)
        return stored

    async def import_(self, request: web.Request) -> web.Response:
        space = request.match_info.get("space", "default")
        body = request[BODY]
        if "file" not in body:
            return _json({"statusCode": 400, "error": "Bad Request",
                          "message": "[request body.file]: expected value of type "
                                     "[Stream] but got [undefined]"}, 400)
        overwrite = request.query.get("overwrite") == "true"
        objects = [json.loads(line) for line in body["file"].splitlines() if line.strip()]
        objects = [o for o in objects if "exportedCount" not in o]
        present = {(o["type"], o["id"]) for o in objects} | {
            (t, i) for (s, t, i) in self.objects if s == space}
        errors = []
        for o in objects:
            missing = [r for r in o["references"] if (r["type"], r["id"]) not in present]
            if missing:
                errors.append({"id": o["id"], "type": o["type"], "error": {
                    "type": "missing_references",
                    "references": [{"type": r["type"], "id": r["id"]} for r in missing]}})
            elif (space, o["type"], o["id"]) in self.objects and not overwrite:
                errors.append({"id": o["id"], "type": o["type"],
                               "error": {"type": "conflict"}})
        if errors:
            return _json({"success": False, "successCount": 0, "errors": errors})
        for o in objects:
            self.objects[space, o["type"], o["id"]] = self._migrated(o, space)
        return _json({"success": True, "successCount": len(objects), "successResults": [
            {"type": o["type"], "id": o["id"], "meta": {"title": o["attributes"].get(
                "title")}, **({"overwrite": True} if overwrite else {})} for o in objects]})
