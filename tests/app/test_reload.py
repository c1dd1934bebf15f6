"""SIGHUP: `hekapy run` reads its configuration again. An invalid one is refused with
the file, section and key, and the running one goes on; an unchanged one changes
nothing; a changed one is applied after a drain, keeping the positions (no line lost or
read twice) and the disk buffers. hekapy's own log file follows logrotate's renames."""

from __future__ import annotations

import signal

import pytest

from hekapy.benchmarks.es_double import EsDouble
from tests.fault_harness import (
    Daemon,
    account,
    config,
    finish_writer,
    settle_to,
    wait_for,
    write_lines,
)
from tests.helpers.plugins import write_config

pytestmark = pytest.mark.services


async def until_logged(daemon: Daemon, text: str, log) -> str:
    """Until `text` appears in hekapy's own log file `log`; its contents then."""
    await wait_for(lambda: log.exists() and text in log.read_text(), daemon,
                   f"{text!r} in the log", timeout=20)
    return log.read_text()


async def test_sighup_refuses_invalid_applies_changed_and_keeps_positions(tmp_path):
    logs = tmp_path / "logs"
    own_log = tmp_path / "own" / "hekapy.log"
    async with EsDouble() as es:
        base = config(tmp_path / "state", logs, es.url).replace(
            'hostname = "fault-1"', f'hostname = "fault-1"\nlog_file = "{own_log}"')
        conf = write_config(tmp_path, base)
        logs.mkdir()
        daemon = Daemon(conf, tmp_path / "stderr.log")
        await daemon.start()
        await finish_writer(await write_lines(logs, 3000))
        await settle_to(es, 3000, daemon)

        # Invalid: refused, named, and the old pipeline keeps shipping.
        conf.write_text(base.replace("flush_count = 1000", "flush_count = 1000\nbogus = 1"))
        daemon.proc.send_signal(signal.SIGHUP)
        out = await until_logged(daemon, "reload refused: 1 error(s)", own_log)
        assert "[elasticsearch_output] bogus" in out
        await finish_writer(await write_lines(logs, 3000, first=3000))
        await settle_to(es, 6000, daemon)

        # Unchanged (comments and layout do not count): nothing happens.
        conf.write_text("# a comment\n" + base)
        daemon.proc.send_signal(signal.SIGHUP)
        await until_logged(daemon, "has not changed", own_log)

        # logrotate moves the log away: the next record starts a new file.
        own_log.rename(own_log.with_suffix(".log.1"))

        # Changed: a new index for new documents, from where the old pipeline stopped.
        conf.write_text(base.replace('index = "%{Type}-%{%Y.%m.%d}"',
                                     'index = "reloaded-%{%Y.%m.%d}"'))
        daemon.proc.send_signal(signal.SIGHUP)
        await until_logged(daemon, "the new configuration is running", own_log)
        await finish_writer(await write_lines(logs, 3000, first=6000))
        await settle_to(es, 9000, daemon)
        assert await daemon.stop() == 0
        account("SIGHUP: refused, unchanged, then a changed output index", 9000, es,
                tmp_path / "state")
        assert es.count("reloaded-*") == 3000 and es.count("log-*") == 6000
    assert "SIGHUP received" in own_log.read_text()
    assert "has not changed" in own_log.with_suffix(".log.1").read_text()
