"""rsyslog from Debian as the compiled-shipper anchor, run on the same corpus and into
the same Elasticsearch double as hekapy, in the same run
(https://www.rsyslog.com/doc/configuration/modules/omelasticsearch.html).

- `rsyslog-es`: imfile → omelasticsearch (bulkmode, the same `log-YYYY.MM.DD` index
  from each line's date, an id from the file name and offset like hekapy's Uuid, so a
  resend overwrites): the raw line as Payload, no parsing;
- `rsyslog-mmnormalize`: the same with mmnormalize (liblognorm) parsing each oslo.log
  line first (time, pid, level, module, request context, HTTP access part), the
  fields in the document: the closest rsyslog gets to hekapy's LMA decoding;
- `rsyslog-file`: imfile → omfile, the raw lines to a file (rsyslog's own ceiling).

rsyslogd runs in the foreground (`-n -f CONF -i PIDFILE`) with its own work directory
(imfile state files), so a run reads every file from the start (readMode 0,
freshStartTail off). Timed like hekapy's pipeline: from the first stored document (or
line) until the double holds one document per line (or the file every line), CPU
seconds and peak RSS of rsyslogd alike; then SIGTERM, and it must exit cleanly with an
empty error file. The omelasticsearch action has its own queue handing batches of
`DEQUEUE_BATCH` messages to up to `ES_WORKERS` workers (each with its own connection):
the batch size and in-flight requests of hekapy's output (1-4 workers and batches of
256-8000 measured within the noise of each other here).

Needs `rsyslogd` (scripts/install-bench-deps installs rsyslog and
rsyslog-elasticsearch; mmnormalize is in Debian's rsyslog package itself); a
requested rsyslog scenario without it fails with that hint.
"""

from __future__ import annotations

import glob
import subprocess
from collections.abc import Callable
from pathlib import Path

from hekapy.benchmarks.harness import (
    Bench,
    Double,
    Monitor,
    Sample,
    ScenarioError,
    SeqWriter,
    repeat,
    stop_process,
    tail,
    time_corpus,
    tool_path,
    wait_ready,
)

INSTALL_HINT = ("install rsyslog and rsyslog-elasticsearch with scripts/install-bench-deps "
                "(apt-get install rsyslog rsyslog-elasticsearch), or give --rsyslogd PATH")
MODULE_DIRS = ("/usr/lib/x86_64-linux-gnu/rsyslog", "/usr/lib/*-linux-gnu/rsyslog",
               "/usr/lib/rsyslog", "/usr/lib64/rsyslog")
VARIANTS = ("es", "mmnormalize", "file")
DEQUEUE_BATCH = 2000
ES_WORKERS = 4

# liblognorm v2 rules for oslo.log lines: the HTTP access line, a line with a request
# context, any other line (tracebacks included). Field names as hekapy's documents.
RULEBASE = r"""version=2
rule=:%date:date-iso% %time:time-24hr%.%msec:number% %Pid:number% %severity_label:word% %python_module:word% [%global_request_id:word% req-%request_id:word% %user_id:word% %tenant_id:word% %-:char-to{"extradata":"]"}%] %remote_addr:ipv4% "%http_method:word% %http_url:word% HTTP/%http_version:char-to{"extradata":"\""}%" status: %http_status:number% len: %http_response_size:number% time: %http_response_time:float%
rule=:%date:date-iso% %time:time-24hr%.%msec:number% %Pid:number% %severity_label:word% %python_module:word% [%global_request_id:word% req-%request_id:word% %user_id:word% %tenant_id:word% %-:char-to{"extradata":"]"}%] %Payload:rest%
rule=:%date:date-iso% %time:time-24hr%.%msec:number% %Pid:number% %severity_label:word% %python_module:word% %Payload:rest%
"""  # noqa: E501 (one rule a line is liblognorm's syntax)

_PARSED_FIELDS = ("Pid", "severity_label", "python_module", "global_request_id",
                  "request_id", "user_id", "tenant_id", "remote_addr", "http_method",
                  "http_url", "http_version", "http_status", "http_response_size",
                  "http_response_time")


def _quote(value: str | Path) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _json_field(name: str, prop: str, first: bool = False) -> str:
    sep = "{" if first else ","
    return (f'  constant(value="{sep}\\"{name}\\":\\"") property(name="{prop}")\n'
            '  constant(value="\\"")\n')


def document_template(variant: str) -> str:
    """The Elasticsearch document: hekapy's LMA fields where rsyslog has them."""
    lines = ['template(name="hk_doc" type="list" option.json="on") {\n']
    if variant == "mmnormalize":
        lines.append('  constant(value="{\\"Timestamp\\":\\"") property(name="$!date")\n'
                     '  constant(value="T") property(name="$!time")\n'
                     '  constant(value=".") property(name="$!msec")\n'
                     '  constant(value="\\"")\n')
        lines.append(_json_field("Payload", "$!Payload"))
        lines += [_json_field(f, f"$!{f}") for f in _PARSED_FIELDS]
    else:
        lines.append(_json_field("Timestamp", "timereported", first=True)
                     .replace('name="timereported"',
                              'name="timereported" dateFormat="rfc3339"'))
        lines.append(_json_field("Payload", "msg"))
    lines.append(_json_field("Hostname", "hostname"))
    lines.append(_json_field("Logger", "programname"))
    lines.append('  constant(value=",\\"Type\\":\\"log\\"}")\n}\n')
    return "".join(lines)


def rsyslog_config(variant: str, workdir: Path, inputs: dict[Path, str], *,
                   es_url: str | None = None, out_file: Path | None = None,
                   rulebase: Path | None = None, errorfile: Path | None = None,
                   workers: int = ES_WORKERS, batch: int = DEQUEUE_BATCH) -> str:
    """rsyslog.conf for `variant` ("es", "mmnormalize", "file"): imfile on each input
    file (path → tag) into one ruleset, then omelasticsearch (to `es_url`) or omfile
    (to `out_file`)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}")
    to_es = variant != "file"
    if to_es and not es_url:
        raise ValueError("an Elasticsearch variant needs es_url")
    if not to_es and out_file is None:
        raise ValueError("the file variant needs out_file")
    if variant == "mmnormalize" and rulebase is None:
        raise ValueError("mmnormalize needs a rulebase file")
    out = [f"# rsyslog {variant} peer for the hekapy benchmark harness (generated)",
           f"global(workDirectory={_quote(workdir)} maxMessageSize=\"64k\")",
           'module(load="imfile" mode="inotify")']
    if to_es:
        out.append('module(load="omelasticsearch")')
    if variant == "mmnormalize":
        out.append('module(load="mmnormalize")')
    if to_es:
        out.append(document_template(variant))
        out.append('template(name="hk_index" type="list") {\n'
                   '  constant(value="log-") property(name="msg" position.from="1" '
                   'position.to="4")\n'
                   '  constant(value=".") property(name="msg" position.from="6" '
                   'position.to="7")\n'
                   '  constant(value=".") property(name="msg" position.from="9" '
                   'position.to="10")\n}')
        out.append('template(name="hk_id" type="list") {\n'
                   '  property(name="$!metadata!filename") constant(value=":")\n'
                   '  property(name="$!metadata!fileoffset")\n}')
    else:
        out.append('template(name="hk_line" type="string" string="%msg%\\n")')
    body = []
    if variant == "mmnormalize":
        body.append(f'  action(type="mmnormalize" ruleBase={_quote(rulebase or "")})')
        # An HTTP access line's rule has no Payload part: the line is the Payload.
        body.append('  if $!Payload == "" then { set $!Payload = $msg; }')
    if to_es:
        from urllib.parse import urlsplit
        u = urlsplit(es_url or "")
        action = [
            'type="omelasticsearch"', f'server="{u.hostname}"', f'serverport="{u.port}"',
            'template="hk_doc"', 'searchIndex="hk_index"', 'dynSearchIndex="on"',
            'searchType=""', 'esVersion.major="8"', 'bulkmode="on"', 'maxbytes="5m"',
            'bulkid="hk_id"', 'dynbulkid="on"', 'action.resumeRetryCount="-1"',
            'queue.type="LinkedList"', 'queue.size="200000"',
            f'queue.dequeueBatchSize="{batch}"', f'queue.workerThreads="{workers}"',
            f'queue.workerThreadMinimumMessages="{batch}"']
        if errorfile is not None:
            action.append(f"errorfile={_quote(errorfile)}")
        body.append("  action(" + "\n         ".join(action) + ")")
    else:
        body.append(f'  action(type="omfile" file={_quote(out_file or "")} '
                    'template="hk_line" ioBufferSize="1m" flushOnTXEnd="on")')
    out.append('ruleset(name="hk_bench") {\n' + "\n".join(body) + "\n}")
    for path, tag in inputs.items():
        out.append(f'input(type="imfile" file={_quote(path)} tag={_quote(tag)} '
                   'ruleset="hk_bench" readMode="0" freshStartTail="off" '
                   f'addMetadata="{"on" if to_es else "off"}" reopenOnTruncate="off")')
    return "\n".join(out) + "\n"


def module_available(name: str) -> bool:
    return any(glob.glob(f"{d}/{name}.so") for d in MODULE_DIRS)


def check(variant: str, rsyslogd: str | None = None) -> str:
    """rsyslogd's path, or a ScenarioError saying what to install."""
    binary = tool_path("rsyslogd", rsyslogd, INSTALL_HINT)
    if rsyslogd is None:  # a given binary brings its own modules: not checked here
        if variant != "file" and not module_available("omelasticsearch"):
            raise ScenarioError(f"rsyslog's omelasticsearch module is missing: "
                                f"{INSTALL_HINT}")
        if variant == "mmnormalize" and not module_available("mmnormalize"):
            raise ScenarioError("this rsyslog has no mmnormalize module (liblognorm): the "
                                "mmnormalize peer is unavailable on this system")
    return binary


class LineCounter:
    """Newlines in a growing file, read incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def __call__(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return 0
        self.offset += len(data)
        self.lines += data.count(b"\n")
        return self.lines


def rsyslog_once(bench: Bench, variant: str) -> Sample:
    from hekapy.benchmarks.scenarios_pipeline import empty_logs
    binary = check(variant, bench.args.rsyslogd)
    tmp = bench.scratch(f"rsyslog-{variant}")
    work = tmp / "work"
    work.mkdir()
    paths = empty_logs(tmp / "logs")
    inputs = {p: p.name.removesuffix(".log") for p in paths}  # tags: nova-api, server, …
    conf = tmp / "rsyslog.conf"
    log = tmp / "rsyslogd.stderr"
    errorfile = tmp / "es-errors.json"
    rulebase = None
    if variant == "mmnormalize":
        rulebase = tmp / "oslo.rulebase"
        rulebase.write_text(RULEBASE)
    double = Double() if variant != "file" else None
    try:
        count: Callable[[], int]
        if double is not None:
            conf.write_text(rsyslog_config(variant, work, inputs, es_url=double.url,
                                           rulebase=rulebase, errorfile=errorfile))
            count = lambda: double.count()["documents"]  # noqa: E731
        else:
            out_file = tmp / "out.log"
            conf.write_text(rsyslog_config(variant, work, inputs, out_file=out_file))
            count = LineCounter(out_file)
        with open(log, "wb") as err:
            proc = subprocess.Popen([binary, "-n", "-f", str(conf), "-i",
                                     str(tmp / "rsyslogd.pid")],
                                    stdout=subprocess.DEVNULL, stderr=err)
        ok = False
        try:
            mon = Monitor(proc.pid)
            probe = SeqWriter(paths[:1])
            probe.write(1)  # rsyslogd is up once this line went through
            probe.close()
            wait_ready(count, 1, proc, "rsyslogd", log)
            sample = time_corpus(bench, paths, count, 1, bench.lines, mon, proc, "rsyslogd",
                                 log, sink=double)
            ok = True
        finally:
            if ok:
                rc = stop_process(proc, "rsyslogd", timeout=30)
            else:
                proc.kill()
                proc.wait()
        if rc != 0:
            raise ScenarioError(f"rsyslogd exited with {rc} on SIGTERM: {tail(log)}")
        if double is not None:
            stats = double.stats()
            sample["bulk_requests"] = stats["bulk_requests"]
            if stats["documents"] != bench.lines + 1:
                raise ScenarioError(f"the double holds {stats['documents']} documents "
                                    f"after rsyslogd stopped, {bench.lines + 1} expected")
        if errorfile.exists() and errorfile.stat().st_size:
            raise ScenarioError(f"omelasticsearch wrote errors: {tail(errorfile)}")
    finally:
        if double is not None:
            double.close()
    sample["documents"] = bench.lines
    return sample


def bench_rsyslog_es(bench: Bench) -> list[Sample]:
    return repeat(bench, lambda: rsyslog_once(bench, "es"))


def bench_rsyslog_mmnormalize(bench: Bench) -> list[Sample]:
    return repeat(bench, lambda: rsyslog_once(bench, "mmnormalize"))


def bench_rsyslog_file(bench: Bench) -> list[Sample]:
    return repeat(bench, lambda: rsyslog_once(bench, "file"))
