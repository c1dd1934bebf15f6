"""The `hekapy` command: run, check, replay, cat, quickstart, demo, es-setup, and the
operator's views of a running collector, tap and top (collector/app/tap.py, top.py)."""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from hekapy.collector import __version__, catalog, compiled
from hekapy.collector.engine.config import Config, load_config, read_env_file

EXIT_CONFIG = 2
EXIT_FAILED = 1

log = logging.getLogger("hekapy")


def _setup_logging(level: str, log_file: str = "") -> None:
    """stderr (the journal, under systemd), or `log_file` through a WatchedFileHandler:
    when logrotate renames the file, the next record goes to a new one (no copytruncate,
    no signal needed)."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if log_file:
        from logging.handlers import WatchedFileHandler
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handler: logging.Handler = WatchedFileHandler(log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # aio-pika/aiormq log every failed reconnection attempt (an error and an info line
    # each time, unlimited): hekapy's AMQP plugins report those, rate-limited.
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)


def _reloaded(path: str, running: Config) -> Config | None:
    """The configuration at `path` when it is valid and differs from the running one;
    None otherwise, with the reason logged (errors name file, section and key)."""
    try:
        new = load_config(path)
    except Exception as e:  # unreadable files, TOML syntax: the loader's own message
        log.error("reload refused, still running the previous configuration: %s", e)
        return None
    for w in new.warnings:
        log.warning("reload: %s", w)
    if new.errors:
        for error in new.errors:
            log.error("reload refused: %s", error)
        log.error("reload refused: %d error(s) in %s; still running the previous "
                  "configuration", len(new.errors), path)
        return None
    if _settings(new) == _settings(running):
        log.info("reload: %s has not changed; nothing to do", path)
        return None
    return new


def _settings(config: Config) -> tuple:
    """What a configuration asks for, comparable: [hekad] and every section's type and
    values (the files' layout and comments do not count)."""
    return (vars(config.hekad),
            {name: (spec.type_name, vars(spec.cfg)) for name, spec in config.plugins.items()})


def _load_or_exit(path: str) -> Config:
    config = load_config(path)
    for w in config.warnings:
        click.echo(f"warning: {w}", err=True)
    if config.errors:
        for e in config.errors:
            click.echo(f"error: {e}", err=True)
        n = len(config.errors)
        click.echo(f"{n} error{'s' if n > 1 else ''} in {path}; nothing started", err=True)
        sys.exit(EXIT_CONFIG)
    return config


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


async def _serve(config: Config, extra_tasks: tuple = (), path: str | None = None) -> int:
    """Run the pipeline until SIGTERM/SIGINT; a second signal stops without draining.

    SIGHUP (with `path`): the configuration is read again. Invalid, it is refused and
    the running one goes on; unchanged, nothing happens; changed, the running pipeline
    drains as for a stop (inputs checkpoint their positions, outputs deliver or keep
    what they hold in their disk buffers) and the new one starts from those positions
    and buffers: nothing is lost or read twice, at the cost of a pause of the drain's
    length. (Heka could not reload at all.)"""
    from hekapy.collector.app.gc_tuning import release_memory, tune_gc
    from hekapy.collector.engine.pipeline import Pipeline

    pipeline = Pipeline(config)
    tune_gc()
    log.info("hekapy %s starting; hot path: %s", __version__, compiled.summary())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signame: str) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            log.info("%s received: draining (send it again to stop at once)", signame)
            stop.set()
        else:
            log.warning("%s received again: stopping without draining", signame)
            for t in asyncio.all_tasks(loop):
                if t is not asyncio.current_task():
                    t.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    reload = asyncio.Event()
    if path is not None:
        loop.add_signal_handler(signal.SIGHUP, reload.set)

    async def start_status(config: Config, pipeline: Pipeline) -> Any:
        if not config.hekad.status_address:
            return None
        from hekapy.collector.app.status import StatusServer
        server = StatusServer(pipeline, config)
        await server.start()
        return server

    status = await start_status(config, pipeline)
    await pipeline.start()
    helpers = [asyncio.create_task(c) for c in extra_tasks]
    from hekapy.collector.app.gc_tuning import release_memory_periodically
    helpers.append(asyncio.create_task(release_memory_periodically(
        lambda: pipeline.router.messages_routed)))  # the current pipeline, after reloads
    while True:
        await _first_set(stop, pipeline.stopping, reload)
        if not reload.is_set() or stop.is_set() or pipeline.stopping.is_set():
            break
        reload.clear()
        log.info("SIGHUP received: reading %s again", path)
        assert path is not None
        new = _reloaded(path, config)
        if new is None:
            continue
        log.info("reload: the configuration changed; draining the running pipeline")
        await pipeline.stop()
        if status is not None:
            await status.stop()
        config, pipeline = new, Pipeline(new)
        _setup_logging(config.hekad.log_level, config.hekad.log_file)
        status = await start_status(config, pipeline)
        await pipeline.start()
        # The old pipeline and status server are now garbage in reference cycles: a
        # full collection frees them (else each reload kept one, 6-7 MiB for the LMA
        # log_collector; docs/reliability.md), and the heap they held goes back.
        tune_gc()
        release_memory()
        log.info("reload: the new configuration is running")
    for w in helpers:
        w.cancel()
    await pipeline.stop()
    if status is not None:
        await status.stop()
    if pipeline.failed:
        log.error("stopped: %s", pipeline.failed)
        return EXIT_FAILED
    log.info("stopped cleanly")
    return 0


async def _first_set(*events: asyncio.Event) -> None:
    """Until one of `events` is set. A function of its own, so that no local of the
    serving loop keeps the waiting tasks, and through them a replaced pipeline."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


def run_config(config: Config, extra_tasks: tuple = (), path: str | None = None) -> int:
    _setup_logging(config.hekad.log_level, config.hekad.log_file)
    loop = _new_loop()
    try:
        return loop.run_until_complete(_serve(config, extra_tasks, path))
    finally:
        loop.close()


def _apply_env_file(_ctx: click.Context, _param: click.Parameter, path: str | None) -> None:
    """--env-file: the file's variables, for the configuration's %ENV[NAME], as systemd's
    EnvironmentFile= would set them (its values win over the inherited environment)."""
    if not path:
        return
    try:
        os.environ.update(read_env_file(path))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise click.BadParameter(str(e), param_hint="--env-file") from None


def env_file_option(command: Any) -> Any:
    """The --env-file option, read before the command loads its configuration."""
    return click.option("--env-file", type=click.Path(exists=True, dir_okay=False),
                        is_eager=True, expose_value=False, callback=_apply_env_file,
                        help="KEY=VALUE lines (systemd EnvironmentFile syntax) for the "
                             "configuration's %ENV[NAME]")(command)


def _print_version(ctx: click.Context) -> None:
    # Importing the hot modules tells whether they are the compiled ones.
    click.echo(f"hekapy {__version__} (hot path: {compiled.summary()})")
    ctx.exit()


def heka_spelling(args: list[str]) -> list[str]:
    """hekad's own command line, `hekad -config=FILE` (Go's flag syntax: one dash, `=` or
    a space), as `run --config FILE`; `-config` after a command is its `--config`.
    Click would otherwise read `-config=FILE` as `-c onfig=FILE`."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "-config" or arg.startswith("-config="):
            if i == 0:
                out.append("run")
            out.append("--config" + arg[len("-config"):])
        else:
            out.append(arg)
    return out


class HekapyCommands(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, heka_spelling(args))


@click.group(cls=HekapyCommands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=lambda ctx, _param, value: _print_version(ctx) if value else None,
              help="Show the version and whether the hot path runs compiled, and exit.")
def main() -> None:
    """hekapy: a Heka-compatible log and metrics collector."""


@main.command()
@env_file_option
@click.option("-c", "--config", "path", required=True, type=click.Path(),
              help="TOML file or directory of *.toml files")
def run(path: str) -> None:
    """Run the collector until SIGTERM or SIGINT (drains, checkpoints, exits 0); SIGHUP
    reads the configuration again and applies it (an invalid one is refused)."""
    config = _load_or_exit(path)
    sys.exit(run_config(config, path=path))


def describe_graph(config: Config) -> list[str]:
    """The plugin graph as text: inputs with splitter and decoder, consumers with their
    matcher and encoder."""
    lines = []
    inputs = config.by_category("Input")
    lines.append(f"inputs ({len(inputs)}):")
    for s in inputs:
        parts = [f"  {s.name} ({s.type_name})"]
        if s.cfg.splitter:
            parts.append(f"splitter {s.cfg.splitter}")
        if s.cfg.decoder:
            d = config.resolve(s.cfg.decoder, "Decoder")
            parts.append(f"decoder {s.cfg.decoder} ({d.type_name if d else '?'})")
        lines.append(" → ".join(parts) + " → router")
    for cat in ("Filter", "Output"):
        specs = config.by_category(cat)
        lines.append(f"{cat.lower()}s ({len(specs)}):")
        for s in specs:
            m = s.cfg.message_matcher or "(no matcher: receives nothing)"
            enc = ""
            if cat == "Output" and s.cfg.encoder:
                e = config.resolve(s.cfg.encoder, "Encoder")
                enc = f" → encoder {s.cfg.encoder} ({e.type_name if e else '?'})"
            lines.append(f"  router → [{m}] → {s.name} ({s.type_name}){enc}")
    return lines


@main.command()
@env_file_option
@click.option("-c", "--config", "path", type=click.Path(),
              help="TOML file or directory of *.toml files")
@click.option("--sample", "sample", metavar="TYPE",
              help="print a plugin type's keys and a sample section instead")
def check(path: str | None, sample: str | None) -> None:
    """Validate a configuration and print its plugin graph (exit 2 on any error)."""
    if sample:
        cls = catalog.plugin_class(sample)
        if cls is None:
            click.echo(f"error: unknown plugin type {sample!r}; valid types: "
                       f"{', '.join(catalog.type_names())}", err=True)
            sys.exit(EXIT_CONFIG)
        from hekapy.collector.app.plugin_docs import sample_text
        click.echo(sample_text(cls))
        return
    if not path:
        raise click.UsageError("give -c PATH (or --sample TYPE)")
    config = _load_or_exit(path)
    for line in describe_graph(config):
        click.echo(line)
    click.echo(f"OK: {len(config.plugins)} plugins in {', '.join(config.files)}")


@main.command()
@env_file_option
@click.option("--data-dir", default="data/quickstart", show_default=True,
              type=click.Path(file_okay=False),
              help="where demo logs, journals and decoded documents go")
@click.option("--rate", default=20.0, show_default=True, help="demo log lines per second")
@click.option("-c", "--config", "path", default=None, type=click.Path(),
              help="config to run (default: the built-in conf/quickstart.toml)")
def quickstart(data_dir: str, rate: float, path: str | None) -> None:
    """Write demo OpenStack logs and run the collector on them, no server needed."""
    from hekapy.collector.app.demo import DemoLogWriter

    data = Path(data_dir).resolve()
    (data / "logs").mkdir(parents=True, exist_ok=True)
    os.environ["HEKAPY_DATA"] = str(data)
    if path is None:
        path = str(importlib.resources.files("hekapy.conf") / "quickstart.toml")
    config = _load_or_exit(path)
    writer = DemoLogWriter(data / "logs", rate=rate)
    writer.write_batch(max(1, int(rate)) * 5)  # every demo file exists before the first scan
    click.echo(f"hekapy quickstart: demo logs in {data / 'logs'}, decoded documents in "
               f"{data / 'output'}; Ctrl-C stops.", err=True)
    stop_writer = asyncio.Event()
    sys.exit(run_config(config, (writer.run(stop_writer),)))


@main.command()
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False),
              help="directory to write the logs into (nova/, neutron/, keystone/, haproxy.log)")
@click.option("--rate", default=20.0, show_default=True, help="events per second")
@click.option("--seed", default=1, show_default=True, help="the same seed, the same lines")
@click.option("--duration", default=0.0, show_default=True,
              help="seconds to write for; 0 = until Ctrl-C")
@click.option("--rotate-bytes", default=1 << 20, show_default=True,
              help="rotate a file (as logrotate's create) once it is this large")
def demo(directory: str, rate: float, seed: int, duration: float, rotate_bytes: int) -> None:
    """Write realistic OpenStack demo logs (Nova, Neutron with the LBaaS agent, Keystone,
    HAProxy) into a directory, rotating them, for trying hekapy without OpenStack."""
    from hekapy.collector.app.demo import write_demo_logs
    lines = write_demo_logs(directory, rate, seed, duration, rotate_bytes)
    click.echo(f"wrote {lines} lines under {directory}")




@main.command()
@env_file_option
@click.option("-c", "--config", "path", required=True, type=click.Path(exists=True),
              help="the daemon's config: its decoders, filters and outputs")
@click.option("--since", help="keep messages from this time on (ISO 8601, UTC by default)")
@click.option("--until", help="keep messages before this time")
@click.option("--workers", default=max(1, (os.cpu_count() or 1)), show_default=True,
              help="worker processes (each decodes and ships its files)")
@click.option("--resume", is_flag=True, help="go on from the state file")
@click.option("--dry-run", is_flag=True, help="show which section, stream and decoder "
              "each file gets, and stop")
@click.option("--decoder", default="", help="this decoder section for every file")
@click.option("--live-dir", default="", help="the live directory the PATH directories "
              "are copies of (default: inferred from the config's log_directory)")
@click.option("--hostname", default="", help="the node the archive comes from (Hostname "
              "and Uuids; default: the config's)")
@click.option("--max-undecodable", default=50.0, show_default=True, type=float,
              help="percent of a file's records undecodable above which the replay "
              "names it and exits 3")
@click.option("--state", "state_path", type=click.Path(), help="state file (default "
              "<base_dir>/replay/state.json)")
@click.argument("paths", nargs=-1, required=True)
def replay(path: str, since: str | None, until: str | None, workers: int, resume: bool,
           dry_run: bool, decoder: str, live_dir: str, hostname: str,
           max_undecodable: float, state_path: str | None, paths: tuple[str, ...]) -> None:
    """Backfill archived logs (plain, .gz, .bz2, .xz, .zst, Heka streams) through the
    config's decoders, filters and outputs; resumable, without duplicates. Exit codes:
    0 done, 1 a file not read to its end, 3 a file mostly undecodable, 130 interrupted."""
    from hekapy.collector.app.replay import ReplayError, replay_command

    config = _load_or_exit(path)
    _setup_logging(config.hekad.log_level)
    try:
        code = replay_command(config, path, list(paths), since=since, until=until,
                              workers=workers, resume=resume, dry_run=dry_run,
                              decoder=decoder, live_dir=live_dir, hostname=hostname,
                              max_undecodable=max_undecodable, state_path=state_path)
    except ReplayError as e:
        raise click.UsageError(str(e)) from None
    sys.exit(code)


@main.command("cat")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text: Heka's RST dump; json: one object per line")
@click.option("--match", "match", default="TRUE", help="message matcher (Heka syntax)")
@click.option("--head", type=int, default=0, help="stop after this many matches")
@click.argument("path", type=click.Path(exists=True))
def cat(fmt: str, match: str, head: int, path: str) -> None:
    """Print the messages of a Heka stream file (as heka-cat does; .gz etc. too)."""
    from types import SimpleNamespace

    from hekapy.collector.app.replay_worker import READ_ERRORS, open_archive
    from hekapy.collector.engine.matcher import MatcherSyntaxError, compile_matcher
    from hekapy.collector.engine.protobuf import FrameReader, WireError, decode_message

    try:
        pred = compile_matcher(match)
    except MatcherSyntaxError as e:
        raise click.UsageError(f"--match: {e}") from None
    encoder_class = catalog.plugin_class("JsonEncoder" if fmt == "json" else "RstEncoder")
    assert encoder_class is not None
    encoder: Any = encoder_class("cat", SimpleNamespace(append_newlines=True))
    reader = FrameReader()
    shown = bad = frames = size = 0
    failed = False
    f, raw = open_archive(path)
    out = sys.stdout.buffer
    try:
        while not head or shown < head:
            try:
                chunk = f.read(1 << 20)
            except READ_ERRORS as e:
                click.echo(f"error: {path}: {type(e).__name__}: {e}", err=True)
                failed = True
                break
            if not chunk:
                break
            size += len(chunk)
            for _header, body in reader.feed(chunk):
                frames += 1
                try:
                    msg = decode_message(body)
                except WireError:
                    bad += 1
                    continue
                if pred(msg):
                    out.write(encoder.encode(msg))
                    shown += 1
                    if head and shown >= head:
                        break
    finally:
        raw.close()
        out.flush()
    skipped = reader.stats.skipped_bytes
    if size and not frames:
        click.echo(f"error: {path} is not a Heka stream: no Heka frame in its {size} "
                   "byte(s) (a Heka stream is what FileOutput or TcpOutput write with "
                   "use_framing = true)", err=True)
        sys.exit(EXIT_FAILED)
    if bad or skipped:
        click.echo(f"{bad} undecodable message(s), {skipped} byte(s) of garbage skipped",
                   err=True)
    click.echo(f"{shown} message(s) shown", err=True)
    if failed:
        sys.exit(EXIT_FAILED)


@main.command()
@env_file_option
@click.option("-c", "--config", "path", required=True, type=click.Path(),
              help="the running collector's config (its [hekad] status_* keys)")
@click.option("--match", "match", default="TRUE", show_default=True,
              help="message matcher (Heka syntax)")
@click.option("--plugin", default="", help="only what the router hands this filter or "
              "output (its message_matcher, and --match)")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text: one line per message; json: Heka's JSON")
@click.option("--head", type=int, default=0, help="stop after this many messages")
@click.option("--buffer", type=int, default=1000, show_default=True,
              help="messages the collector queues for this viewer before dropping")
def tap(path: str, match: str, plugin: str, fmt: str, head: int, buffer: int) -> None:
    """Watch the messages flowing through a running collector. The collector drops
    (and reports) what this viewer cannot keep up with: it never waits for it."""
    from hekapy.collector.app.status.client import StatusClientError, run_client
    from hekapy.collector.app.tap import run_tap
    from hekapy.collector.engine.matcher import MatcherSyntaxError, compile_matcher

    try:
        compile_matcher(match)
    except MatcherSyntaxError as e:
        raise click.UsageError(f"--match: {e}") from None
    config = _load_or_exit(path)
    try:
        sys.exit(run_client(run_tap(config, match, plugin, fmt, head, buffer)))
    except StatusClientError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_FAILED)


@main.command()
@env_file_option
@click.option("-c", "--config", "path", required=True, type=click.Path(),
              help="the running collector's config (its [hekad] status_* keys)")
@click.option("--once", is_flag=True, help="print one snapshot (rates over one interval)")
@click.option("--interval", type=float, default=2.0, show_default=True,
              help="seconds between refreshes")
def top(path: str, once: bool, interval: float) -> None:
    """Per-plugin message rates, queue depths, buffers and errors of a running
    collector, refreshed in the terminal."""
    from hekapy.collector.app.status.client import StatusClientError, run_client
    from hekapy.collector.app.top import run_top

    config = _load_or_exit(path)
    try:
        sys.exit(run_client(run_top(config, once, max(0.05, interval))))
    except StatusClientError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_FAILED)


@main.command("es-setup")
@env_file_option
@click.option("-c", "--config", "path", type=click.Path(),
              help="take server, credentials and TLS from this config's "
                   "ElasticSearchOutput")
@click.option("--output", "output_name", help="which ElasticSearchOutput (default: the "
              "only one)")
@click.option("--server", "servers", multiple=True,
              help="Elasticsearch/OpenSearch URL (instead of -c); credentials from "
                   "HEKAPY_ES_USERNAME / HEKAPY_ES_PASSWORD or HEKAPY_ES_API_KEY")
@click.option("--shards", default=1, show_default=True)
@click.option("--replicas", default=1, show_default=True)
@click.option("--retention-days", default=30, show_default=True,
              help="delete log-*, notification-* and audit-* indices this many days "
                   "after their creation (ILM or ISM); 0: keep them")
def es_setup(path: str | None, output_name: str | None, servers: tuple[str, ...],
             shards: int, replicas: int, retention_days: int) -> None:
    """Install the log, notification and audit index templates and the retention
    policy (collector/app/es_setup.py)."""
    from hekapy.collector.app import es_setup as es

    config = _load_or_exit(path) if path else None
    try:
        client = es.client_from(config, output_name, servers, path)
    except es.SetupError as e:
        raise click.UsageError(str(e)) from None
    sys.exit(asyncio.run(es.setup(client, shards, replicas, retention_days)))


@main.command("influxdb-setup")
@env_file_option
@click.option("-c", "--config", "path", type=click.Path(),
              help="take URL, database, retention policy, credentials and TLS from this "
                   "config's InfluxdbOutput")
@click.option("--output", "output_name", help="which InfluxdbOutput (default: the only one)")
@click.option("--url", help="InfluxDB 1.x URL (instead of -c); credentials from "
              "HEKAPY_INFLUXDB_USERNAME / HEKAPY_INFLUXDB_PASSWORD")
@click.option("--database", default="lma", show_default=True, help="with --url")
@click.option("--retention-days", default=30, show_default=True,
              help="how long the database's default retention policy keeps points; "
                   "0: forever")
@click.option("--replication", default=1, show_default=True)
def influxdb_setup(path: str | None, output_name: str | None, url: str | None,
                   database: str, retention_days: int, replication: int) -> None:
    """Create the InfluxDB 1.x database and make its default retention policy keep
    --retention-days (collector/app/influxdb_setup.py)."""
    from hekapy.collector.app import influxdb_setup as influx

    config = _load_or_exit(path) if path else None
    try:
        target = influx.target_from(config, output_name, url, database, path)
    except influx.SetupError as e:
        raise click.UsageError(str(e)) from None
    sys.exit(asyncio.run(influx.setup(target, retention_days, replication)))


@main.group()
def dashboards() -> None:
    """Grafana and Kibana / OpenSearch Dashboards for what hekapy ships."""


@dashboards.command("install")
@click.option("--grafana", "grafana_url", metavar="URL", help="Grafana's URL")
@click.option("--kibana", "kibana_url", metavar="URL",
              help="Kibana's (or OpenSearch Dashboards') URL, with its base path if any")
@click.option("--opensearch-dashboards", is_flag=True,
              help="--kibana is OpenSearch Dashboards (its osd-xsrf header)")
@click.option("--kibana-space", default="", help="Kibana space (default: the default one)")
@click.option("--influxdb-url", default="http://127.0.0.1:8086", show_default=True,
              help="InfluxDB as Grafana reaches it (the datasource)")
@click.option("--influxdb-database", default="lma", show_default=True)
@click.option("--datasource-uid", default=None,
              help="default: the one the dashboards name")
@click.option("--datasource-name", default="hekapy InfluxDB", show_default=True)
@click.option("--folder", "folder_title", default="hekapy", show_default=True,
              help="Grafana folder for the dashboards")
@click.option("--folder-uid", default="hekapy", show_default=True)
@click.option("--dashboards-dir", type=click.Path(exists=True, file_okay=False),
              help="Grafana dashboards (default: the shipped conf/grafana/dashboards)")
@click.option("--saved-objects-dir", type=click.Path(exists=True, file_okay=False),
              help="Kibana saved objects (default: the shipped conf/kibana)")
@click.option("--credentials", "credentials_file", type=click.Path(),
              help="TOML file with [grafana], [kibana], [influxdb] credentials (the "
                   "HEKAPY_GRAFANA_*, HEKAPY_KIBANA_*, HEKAPY_INFLUXDB_* variables win)")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False),
              help="CA bundle to verify the servers' certificates")
@click.option("--insecure", is_flag=True, help="do not verify the servers' certificates")
def dashboards_install(grafana_url: str | None, kibana_url: str | None,
                       opensearch_dashboards: bool, kibana_space: str, influxdb_url: str,
                       influxdb_database: str, datasource_uid: str | None,
                       datasource_name: str, folder_title: str, folder_uid: str,
                       dashboards_dir: str | None, saved_objects_dir: str | None,
                       credentials_file: str | None, ca_file: str | None,
                       insecure: bool) -> None:
    """Install the datasource and dashboards in Grafana and the saved objects in Kibana
    or OpenSearch Dashboards; a second run changes nothing (docs/dashboards-install.md)."""
    from hekapy.collector.app import dashboards_install as di

    if not grafana_url and not kibana_url:
        raise click.UsageError("give --grafana URL, --kibana URL, or both")
    plan = di.Plan(grafana_url, kibana_url, opensearch_dashboards, kibana_space,
                   Path(dashboards_dir) if dashboards_dir else di.shipped("grafana/dashboards"),
                   Path(saved_objects_dir) if saved_objects_dir else di.shipped("kibana"),
                   influxdb_url, influxdb_database, datasource_uid, datasource_name,
                   folder_uid, folder_title, credentials_file, ca_file, insecure)
    sys.exit(asyncio.run(di.install(plan)))


if __name__ == "__main__":
    main()
