"""ProcessInput: runs a command (or a pipe of commands) and reads its output
(docs/compatibility.md, "Inputs")."""

from __future__ import annotations

import asyncio
import contextlib
import os
from types import SimpleNamespace
from typing import Any

from hekapy.collector.engine.contexts import InputContext
from hekapy.collector.engine.message import INTEGER, STRING, Field, Message
from hekapy.collector.engine.plugin import Input, Option, OptionError, register

READ_SIZE = 1 << 16


def _commands(table: dict) -> list[dict[str, Any]]:
    """`[X.command.0]`, `[X.command.1]`, … → an ordered list, validated."""
    steps = []
    for i in range(len(table)):
        step = table.get(str(i))
        if not isinstance(step, dict):
            raise OptionError(f"expected [command.{i}] (commands are numbered 0, 1, ...)",
                              key="command")
        unknown = set(step) - {"bin", "args", "env", "directory"}
        if unknown:
            raise OptionError(f"unknown key {sorted(unknown)[0]!r} in [command.{i}]; valid "
                              "keys: args, bin, directory, env", key=f"command.{i}")
        if not isinstance(step.get("bin"), str) or not step["bin"]:
            raise OptionError(f"[command.{i}] needs a `bin` string", key=f"command.{i}.bin")
        args = step.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise OptionError("`args` must be an array of strings", key=f"command.{i}.args")
        env = step.get("env")
        if env is not None and (not isinstance(env, list)
                                or not all(isinstance(e, str) and "=" in e for e in env)):
            raise OptionError("`env` must be an array of \"NAME=value\" strings",
                              key=f"command.{i}.env")
        steps.append({"bin": step["bin"], "args": args,
                      "env": dict(e.split("=", 1) for e in env) if env is not None else None,
                      "directory": step.get("directory") or None})
    if not steps:
        raise OptionError("no command configured ([X.command.0] with bin and args)",
                          key="command")
    return steps


@register
class ProcessInput(Input):
    """Runs `command.0 | command.1 | …` and turns its output into messages: Type
    "ProcessInput", Logger = this section's name, Pid = hekapy's pid, field
    ProcessInputName = "<name>.stdout" (or ".stderr").

    With ticker_interval > 0 the chain runs every ticker_interval seconds and its output
    is delivered when it exits, with an INTEGER field ExitStatus (and SubcmdErrors when
    an earlier step of the pipe failed). With ticker_interval = 0 it runs once, streaming
    its output as it comes (a long-lived command such as `journalctl -f`).

    Keys: command (required table of steps: bin, args, env ["K=V"], directory),
    ticker_interval (15), immediate_start (false), stdout (true), stderr (false),
    timeout (seconds, 0 = none), splitter (NullSplitter), decoder.

        [uptime]
        type = "ProcessInput"
        ticker_interval = 60
        splitter = "TokenSplitter"
        [uptime.command.0]
        bin = "/usr/bin/uptime"
        args = []
    """

    options = {
        "command": Option("table", required=True, check=_commands),
        "immediate_start": Option("bool", False),
        "stdout": Option("bool", True),
        "stderr": Option("bool", False),
        "timeout": Option("duration", 0, doc="seconds"),
    }
    defaults = {"ticker_interval": 15}

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        if not (cfg.stdout or cfg.stderr):
            raise OptionError("at least one of stdout and stderr must be true", key="stdout")

    async def run(self, ctx: InputContext) -> None:
        cfg = self.cfg
        if cfg.ticker_interval == 0:
            await self._run_chain(ctx, stream=True)
            return
        first = True
        while not ctx.stopping.is_set():
            if not (first and cfg.immediate_start):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(ctx.stopping.wait(), cfg.ticker_interval)
                if ctx.stopping.is_set():
                    return
            first = False
            await self._run_chain(ctx, stream=False)

    async def _run_chain(self, ctx: InputContext, stream: bool) -> None:
        steps = self.cfg.command
        procs: list[asyncio.subprocess.Process] = []
        stdin: int = asyncio.subprocess.DEVNULL
        try:
            for i, step in enumerate(steps):
                is_last = i == len(steps) - 1
                # Steps are joined by plain OS pipes; only the last step's output is ours.
                read_fd, write_fd = (None, None) if is_last else os.pipe()
                env = None
                if step["env"] is not None:
                    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **step["env"]}
                try:
                    p = await asyncio.create_subprocess_exec(
                        step["bin"], *step["args"], stdin=stdin, cwd=step["directory"],
                        env=env,
                        stdout=asyncio.subprocess.PIPE if is_last else write_fd,
                        stderr=asyncio.subprocess.PIPE if (is_last and self.cfg.stderr)
                        else asyncio.subprocess.DEVNULL)
                except OSError as e:
                    if read_fd is not None:
                        os.close(read_fd)
                    raise RuntimeError(f"cannot start {step['bin']!r}: {e}") from e
                finally:
                    if stdin != asyncio.subprocess.DEVNULL:
                        os.close(stdin)
                    if write_fd is not None:
                        os.close(write_fd)
                procs.append(p)
                if read_fd is not None:
                    stdin = read_fd
        except BaseException:
            for q in procs:
                with contextlib.suppress(ProcessLookupError):
                    q.kill()
            raise

        last = procs[-1]
        readers = []
        if self.cfg.stdout:
            readers.append(("stdout", last.stdout))
        if self.cfg.stderr and last.stderr is not None:
            readers.append(("stderr", last.stderr))

        buffered: list[tuple[str, list[bytes], int]] = []
        watcher = asyncio.create_task(self._kill_on_stop_or_timeout(ctx, procs))
        try:
            await asyncio.gather(*(self._read(ctx, stream_name, r, stream, buffered)
                                   for stream_name, r in readers))
            codes = [await p.wait() for p in procs]
        finally:
            watcher.cancel()
        if not stream:
            exit_status = codes[-1]
            sub_errors = "; ".join(f"{steps[i]['bin']} exited with {c}"
                                   for i, c in enumerate(codes[:-1]) if c)
            for stream_name, records, nbytes in buffered:
                msgs = self._messages(ctx, stream_name, records)
                for m in msgs:
                    m.fields.append(Field("ExitStatus", [exit_status], INTEGER))
                    if sub_errors:
                        m.fields.append(Field("SubcmdErrors", [sub_errors], STRING))
                await ctx.deliver(msgs, None, nbytes)

    def _messages(self, ctx: InputContext, stream_name: str, records: list[bytes]
                  ) -> list[Message]:
        msgs = ctx.records_to_messages(records, type="ProcessInput", logger=self.name)
        pid = os.getpid()
        label = f"{self.name}.{stream_name}"
        for m in msgs:
            m.pid = pid
            m.fields.append(Field("ProcessInputName", [label], STRING))
        return msgs

    async def _read(self, ctx: InputContext, stream_name: str, reader: Any, stream: bool,
                    buffered: list) -> None:
        splitter = ctx.new_splitter()
        records_all: list[bytes] = []
        nbytes_all = 0
        while True:
            chunk = await reader.read(READ_SIZE)
            records = splitter.split(chunk) if chunk else splitter.flush()
            if records:
                ctx.stats.messages_in += len(records)
                nbytes = sum(map(len, records))
                if stream:
                    await ctx.deliver(self._messages(ctx, stream_name, records), None, nbytes)
                else:
                    records_all.extend(records)
                    nbytes_all += nbytes
            if not chunk:
                break
        if not stream and records_all:
            buffered.append((stream_name, records_all, nbytes_all))

    async def _kill_on_stop_or_timeout(self, ctx: InputContext,
                                       procs: list[asyncio.subprocess.Process]) -> None:
        timeout = self.cfg.timeout or None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ctx.stopping.wait(), timeout)
        if not ctx.stopping.is_set():
            ctx.log.warning("command chain exceeded timeout of %.1f s; killing it", timeout)
        for p in procs:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
