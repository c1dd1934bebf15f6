"""The status server: what a running collector is doing, over HTTP (aiohttp).

Endpoints (all behind basic auth when status_username/status_password are set):

- `GET /metrics`: Prometheus text format 0.0.4 (metrics.py lists the families).
- `GET /health`: ok, degraded or failing, with the reasons (snapshot.py, `Snapshot.health`).
- `GET /heka.all-report`, `/heka/all-report.json` and `/data/heka_report.json`: the
  JSON Heka's DashboardOutput served (collector/engine/heka_report.py renders it, for
  DashboardOutput's report messages too).
- `GET /stats`: everything above as one JSON document (`hekapy top` reads it).
- `GET /tap?match=EXPR&plugin=NAME&buffer=N`: a live NDJSON stream of matching messages
  (server.py); the pipeline never waits for a viewer.

The seams: `Snapshot` reads the running pipeline into plain data once per request, the
renderers turn that data into a format, and `StatusServer` serves them. Secrets never
leave: every string of every response (and of the tap stream) goes through the config's
`Redactor` (collector/engine/redact.py), so the documents keep their shape and the
Prometheus text stays valid. The server logs no credentials and no access log. A failed
bind is logged and hekapy keeps running without it.

    [hekad]
    status_address = "127.0.0.1:4352"   # "" turns it off
    status_username = "ops"             # optional basic auth: both or neither
    status_password = "%ENV[HEKAPY_STATUS_PASSWORD]"
    status_allow_remote = false         # a non-loopback address is a config error
    status_degraded_after = "30s"       # /health: retrying this long is "degraded"
"""

from hekapy.collector.app.status.metrics import render_metrics
from hekapy.collector.app.status.server import StatusServer
from hekapy.collector.app.status.snapshot import Snapshot
from hekapy.collector.engine.heka_report import render_all_report
from hekapy.collector.engine.redact import Redactor

__all__ = ["Redactor", "Snapshot", "StatusServer", "render_all_report", "render_metrics"]
