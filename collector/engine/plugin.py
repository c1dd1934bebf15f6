"""Plugin registry, option declarations and the base classes every plugin extends.

A plugin is a class registered under its Heka type name. It declares its TOML keys as
`Option`s; the config loader (collector/engine/config.py) validates a section against them, so
unknown keys, bad values and missing required keys are found before anything starts.

Categories follow Heka: the type name ends in Input, Splitter, Decoder, Filter, Encoder
or Output.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from hekapy.collector.engine.contexts import FilterContext, InputContext, OutputContext
    from hekapy.collector.engine.message import Message

CATEGORIES = ("Input", "Splitter", "Decoder", "Filter", "Encoder", "Output")

REGISTRY: dict[str, type[Plugin]] = {}

class OptionError(ValueError):
    """A value that does not fit its option; the loader adds file, section and key.
    A plugin's constructor may name the key at fault with `key=`."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                   "h": 3600.0}


def parse_duration(value: Any, unit: float = 1.0) -> float:
    """A Go duration string ("250ms", "1m30s", "720h") or a bare number counted in `unit`
    seconds (Heka keeps some intervals as integer milliseconds, others as seconds).
    Returns seconds."""
    if isinstance(value, bool):
        raise OptionError(f"expected a duration, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise OptionError(f"duration must not be negative, got {value!r}")
        return float(value) * unit
    if not isinstance(value, str):
        raise OptionError(f"expected a duration like \"250ms\", got {value!r}")
    s = value.strip()
    if s in ("0", ""):
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise OptionError(f"invalid duration {value!r} (expected e.g. \"250ms\", \"1m30s\", "
                          "\"720h\"; units ns, us, ms, s, m, h)")
    return total


def _check_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise OptionError(f"expected an integer, got {v!r}")
    return v


def _check_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise OptionError(f"expected a number, got {v!r}")
    return float(v)


def _check_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise OptionError(f"expected true or false, got {v!r}")
    return v


def _check_str(v: Any) -> str:
    if not isinstance(v, str):
        raise OptionError(f"expected a string, got {v!r}")
    return v


def _check_list(v: Any) -> list:
    if not isinstance(v, list):
        raise OptionError(f"expected an array, got {v!r}")
    return v


def _check_str_list(v: Any) -> list[str]:
    v = _check_list(v)
    for item in v:
        if not isinstance(item, str):
            raise OptionError(f"expected an array of strings, got item {item!r}")
    return v


def _check_table(v: Any) -> dict:
    if not isinstance(v, dict):
        raise OptionError(f"expected a table, got {v!r}")
    return v


def _check_regex(v: Any) -> str:
    from hekapy.collector.engine.regex import compile_regex
    v = _check_str(v)
    try:
        compile_regex(v)
    except ValueError as e:
        raise OptionError(f"regex {v!r} does not compile: {e}") from None
    return v


_KIND_CHECKS: dict[str, Callable[[Any], Any]] = {
    "int": _check_int,
    "float": _check_float,
    "bool": _check_bool,
    "str": _check_str,
    "list": _check_list,
    "strlist": _check_str_list,
    "table": _check_table,
    "regex": _check_regex,
    "any": lambda v: v,
}


@dataclass(frozen=True)
class Option:
    """One TOML key of a plugin section.

    kind: int | float | bool | str | list | strlist | table | regex | any | duration.
    For `duration`, a bare number is counted in `unit` seconds (1e-3 for Heka's ms keys).
    `check` runs after the kind check and may convert or raise OptionError.
    """

    kind: str
    default: Any = None
    required: bool = False
    doc: str = ""
    unit: float = 1.0
    choices: tuple = ()
    check: Callable[[Any], Any] | None = None

    def convert(self, value: Any) -> Any:
        if self.kind == "duration":
            value = parse_duration(value, self.unit)
        else:
            value = _KIND_CHECKS[self.kind](value)
        if self.choices and value not in self.choices:
            raise OptionError(f"{value!r} is not one of {', '.join(map(repr, self.choices))}")
        if self.check is not None:
            value = self.check(value)
        return value

    def default_value(self) -> Any:
        d = self.default
        if d is None:
            return None
        # Mutable defaults are copied so instances never share them; defaults go through
        # the same conversion as configured values ("644" → 0o644, "250ms" → 0.25).
        if isinstance(d, (list, dict)):
            d = type(d)(d)
        return self.convert(d)


RETRIES_OPTIONS: dict[str, Option] = {
    "delay": Option("duration", "250ms", doc="first restart delay"),
    "max_delay": Option("duration", "30s", doc="largest restart delay"),
    "max_jitter": Option("duration", "500ms", doc="random extra delay"),
    "max_retries": Option("int", -1, doc="-1 retries forever, 0 never restarts"),
}

COMMON_OPTIONS: dict[str, Option] = {
    "type": Option("str", doc="plugin type; defaults to the section name"),
    "retries": Option("table", {}, doc="[X.retries] restart policy"),
    "can_exit": Option("bool", False, doc="may stop without stopping hekapy"),
}

INPUT_OPTIONS: dict[str, Option] = {
    "decoder": Option("str", "", doc="decoder section name"),
    "splitter": Option("str", "", doc="splitter section name (NullSplitter if unset)"),
    "synchronous_decode": Option("bool", False),
    "send_decode_failures": Option("bool", False,
                                   doc="forward undecodable records with decode_failure=true"),
    "log_decode_failures": Option("bool", True),
    "ticker_interval": Option("duration", 0, doc="seconds"),
}

SPLITTER_OPTIONS: dict[str, Option] = {
    "keep_truncated": Option("bool", False, doc="deliver over-long records truncated"),
    "use_message_bytes": Option("bool", False),
    "min_buffer_size": Option("int", 8192),
    "deliver_incomplete_final": Option("bool", False,
                                       doc="deliver a final record with no delimiter at EOF"),
}

CONSUMER_OPTIONS: dict[str, Option] = {
    "message_matcher": Option("str", "", doc="which messages this plugin receives"),
    "message_signer": Option("str", ""),
    "ticker_interval": Option("duration", 0, doc="seconds between timer events; 0 = none"),
    "use_buffering": Option("bool", False),
    "buffering": Option("table", {}, doc="[X.buffering] disk queue settings"),
}

OUTPUT_OPTIONS: dict[str, Option] = {
    "encoder": Option("str", "", doc="encoder section name"),
    "use_framing": Option("bool", None, doc="Heka stream framing around each record"),
}

CATEGORY_OPTIONS = {
    "Input": INPUT_OPTIONS,
    "Splitter": SPLITTER_OPTIONS,
    "Decoder": {},
    "Filter": CONSUMER_OPTIONS,
    "Encoder": {},
    "Output": {**CONSUMER_OPTIONS, **OUTPUT_OPTIONS},
}


def category_of(type_name: str) -> str | None:
    for c in CATEGORIES:
        if type_name.endswith(c):
            return c
    return None


def register(cls: type[Plugin]) -> type[Plugin]:
    """Class decorator: register a plugin under its class name (its Heka type name)."""
    name = cls.__dict__.get("type_name") or cls.__name__
    cat = category_of(name)
    if cat is None:
        raise ValueError(f"plugin type {name!r} must end in one of {CATEGORIES}")
    cls.type_name = name
    cls.category = cat
    REGISTRY[name] = cls
    return cls


class Plugin:
    """Base of every plugin. `cfg` holds the validated options as attributes.

    Constructors validate and precompile only (no I/O, no tasks): `hekapy check` builds
    every plugin to find errors. Raise OptionError(message, key=...) for a bad value."""

    type_name: ClassVar[str] = ""
    category: ClassVar[str] = ""
    options: ClassVar[dict[str, Option]] = {}
    # Per-plugin overrides of category defaults (e.g. TcpInput's default splitter).
    defaults: ClassVar[dict[str, Any]] = {}
    # Plugin-specific [X.buffering] defaults, used when the section gives no table
    # (Heka: a given table gets the global defaults for the keys it leaves out).
    buffering_defaults: ClassVar[dict[str, Any]] = {}
    # Options naming other plugins (a name or a list of names) → their category; the
    # loader checks that they exist, `link` receives them built.
    references: ClassVar[dict[str, str]] = {}

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        self.name = name
        self.cfg = cfg

    @classmethod
    def all_options(cls) -> dict[str, Option]:
        opts = {**COMMON_OPTIONS, **CATEGORY_OPTIONS.get(cls.category, {})}
        for klass in reversed(cls.__mro__):
            opts.update(klass.__dict__.get("options", {}))
        return opts

    def link(self, build: Callable[[str, str], Plugin]) -> None:
        """Called once after construction with `build(name, category)`, which makes a new
        instance of a referenced plugin (see `references`)."""

    @classmethod
    def specialize(cls, cfg: SimpleNamespace, report: Callable[[str | None, str], None]
                   ) -> tuple[type[Plugin], SimpleNamespace] | None:
        """A generic plugin type that stands for a concrete one (a SandboxDecoder whose
        script has a native equivalent) returns that class and its options; problems go
        to `report(key, message)`. None keeps this class."""
        return None

    def heka_report(self) -> dict[str, tuple[Any, str]]:
        """Fields this plugin adds to Heka's report (collector/engine/heka_report.py), as
        Heka's ReportingPlugin did: name → (value, representation). Read from the event
        loop's thread at any time: keep it cheap and side-effect free."""
        return {}

    @classmethod
    def sample(cls) -> str:
        """The class docstring: keys and a sample TOML section."""
        return (cls.__doc__ or "").strip()


class Splitter(Plugin):
    """Cuts a byte stream into records. One instance per stream: it keeps the incomplete
    tail of the data between calls."""

    # The longest record delivered; the runtime sets it from [hekad] max_message_size.
    max_record_size: int = 65536 + 3 + 255

    @classmethod
    def may_sign(cls, cfg: SimpleNamespace, input_cfg: SimpleNamespace) -> bool:
        """Whether records of this splitter, so configured, can carry a verified
        signer (engine/framing.py's SignedRecord). Only Heka's stream framing can."""
        return False

    def add_signers(self, keys: dict[str, str]) -> bool:
        """An input's legacy `[X.signer]` keys, added to the splitter's own; False
        when this splitter verifies no signatures (only Heka's stream framing does)."""
        return False

    def split(self, data: bytes) -> list[bytes]:
        """Records completed by `data` (earlier remainder first)."""
        raise NotImplementedError

    @property
    def remainder(self) -> int:
        """Bytes held back as an incomplete record (for computing checkpoint offsets)."""
        raise NotImplementedError

    def flush(self) -> list[bytes]:
        """At end of stream: the final incomplete record when `deliver_incomplete_final`."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the held-back data (the stream moved to another file)."""
        raise NotImplementedError


class DecodeError(Exception):
    """A record this decoder cannot decode; the runner counts and (optionally) logs it."""


class Decoder(Plugin):
    """Turns a message whose Payload (or `raw` bytes) is a record into zero or more
    messages. The input already set Type, Logger, Hostname, Timestamp and Uuid."""

    # Seconds a held-back message (see `holding`) may wait for its next line before the
    # input runner flushes it anyway (a decoder may make it an option).
    hold_timeout: float = 1.0
    # The number of the input's delivery (batch) whose records are being decoded, set by
    # the input runner before it decodes them. A decoder that holds messages back notes
    # it per held message, for `oldest_held_batch` and `flush_stale`.
    batch: int = 0
    # The longest Payload a decoder that joins records (multi-line messages) builds:
    # hekad's max_message_size, set by the input runner.
    max_message_size: int = 65536

    def decode(self, msg: Message) -> Message | list[Message] | None:
        """Return the message (usually `msg` mutated), a list, or None to drop it;
        raise DecodeError for a record that does not parse."""
        raise NotImplementedError

    @property
    def holding(self) -> bool:
        """True while the decoder keeps a message back waiting for more records (a
        multi-line traceback). The runner then keeps the positions of the records'
        batches from being checkpointed until the held message is delivered, and
        flushes it once its stream stayed idle for `hold_timeout`."""
        return False

    @property
    def oldest_held_batch(self) -> int | None:
        """The `batch` the oldest record of any held-back message came in, or None when
        this decoder does not know (then the runner assumes every batch since it started
        holding). A decoder that holds messages should say: the runner then holds back
        only the positions that really have records in a held message."""
        return None

    def flush(self) -> list[Message]:
        """Give up waiting: the held-back messages, now."""
        return []

    def flush_stale(self, started_before: int = 0, idle_before: int = 0) -> list[Message]:
        """The held-back messages whose first record came in a batch before
        `started_before`, or whose latest record came in a batch before `idle_before`
        (their stream has been quiet since); the others stay held. A decoder that does
        not track batches gives them all (`flush`)."""
        return self.flush()


class Encoder(Plugin):
    """Turns a message into bytes for an output; None means "nothing to write"."""

    # Heka's automatic `use_framing` for TcpOutput and FileOutput: true for an encoder
    # whose records are Heka protobuf messages.
    framed_by_default: ClassVar[bool] = False

    def encode(self, msg: Message) -> bytes | None:
        raise NotImplementedError


class Input(Plugin):
    """Produces records or messages. `run` returns when the input is exhausted or when
    `ctx.stopping` is set; it must not swallow CancelledError."""

    async def run(self, ctx: InputContext) -> None:
        raise NotImplementedError

    async def close(self, ctx: InputContext) -> None:
        """After the pipeline drained: write the final checkpoint, release resources."""


class Filter(Plugin):
    """Consumes matched messages, may inject new ones with `ctx.inject`."""

    def init(self, ctx: FilterContext) -> None:
        """Called once before the first message (restore state, read files)."""

    def process(self, messages: list[Message], ctx: FilterContext) -> None:
        raise NotImplementedError

    def timer_event(self, now_ns: int, ctx: FilterContext) -> None:
        """Every `ticker_interval` seconds."""

    def shutdown(self, ctx: FilterContext) -> None:
        """After the last message, before the pipeline stops."""


class Output(Plugin):
    """Consumes matched batches in `run`: `await ctx.next_batch()` until it returns None,
    hand the data durably to its destination, then `batch.done()` to acknowledge."""

    async def run(self, ctx: OutputContext) -> None:
        raise NotImplementedError


@dataclass
class PluginSpec:
    """A validated config section: everything needed to build the plugin (again)."""

    name: str
    type_name: str
    cls: type[Plugin]
    cfg: SimpleNamespace
    file: str = ""
    # False when the section had errors: it is cross-checked but never built.
    valid: bool = True

    @property
    def category(self) -> str:
        return self.cls.category

    def build(self) -> Plugin:
        return self.cls(self.name, self.cfg)
