"""The TOML loader, with Heka's rules (docs/compatibility.md, "Configuration").

- A path is a file or a directory; a directory loads its `*.toml` files in alphabetical
  order and a later file's section replaces an earlier one of the same name.
- `%ENV[NAME]` is replaced by the environment value before parsing.
- Each top-level table is a plugin; `type` defaults to the section name; the category
  comes from the type's suffix; `[hekad]` holds the globals.
- Keys may be snake_case or Go CamelCase (`match_regex` / `MatchRegex`).
- Every problem becomes a `ConfigError` naming the file, the section and the key; the
  loader collects all of them instead of stopping at the first.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hekapy.collector import catalog
from hekapy.collector.catalog import DEFAULT_PLUGIN_NAMES
from hekapy.collector.engine.plugin import (
    RETRIES_OPTIONS,
    Option,
    OptionError,
    Plugin,
    PluginSpec,
    category_of,
)
from hekapy.collector.engine.redact import is_secret_key, mask_value, redact_userinfo


@dataclass
class ConfigError:
    file: str
    section: str | None
    key: str | None
    message: str

    def __post_init__(self) -> None:
        # A URL in an error ("'ftp://u:p@h' is not an http:// URL") loses its userinfo.
        self.message = redact_userinfo(self.message)

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.section is not None:
            where += f": [{self.section}]"
        if self.key is not None:
            where += f" {self.key}"
        return f"{where}: {self.message}"


class ConfigInvalid(Exception):
    """Raised by `load_config(..., strict=True)` with every error found."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("\n".join(map(str, errors)))
        self.errors = errors


HEKAD_OPTIONS: dict[str, Option] = {
    "maxprocs": Option("int", 1, doc="kept for compatibility; hekapy runs one event loop"),
    "poolsize": Option("int", 100, doc="batches each input may have unacknowledged"),
    "plugin_chansize": Option("int", 30, doc="batches each filter/output queue holds"),
    "max_message_loops": Option("int", 4, doc="re-injections allowed for a message chain"),
    "max_process_inject": Option("int", 1),
    "max_timer_inject": Option("int", 10),
    "max_process_duration": Option("int", 100000),
    "max_pack_idle": Option("duration", "2m"),
    "base_dir": Option("str", "/var/cache/hekad", doc="state: journals, queues"),
    "share_dir": Option("str", "/usr/share/heka", doc="read-only resources"),
    "sample_denominator": Option("int", 1000),
    "pid_file": Option("str", ""),
    "hostname": Option("str", "", doc="defaults to the OS hostname"),
    "max_message_size": Option("int", 65536),
    "log_flags": Option("int", 3),
    "full_buffer_max_retries": Option("int", 10),
    "cpuprof": Option("str", ""),
    "memprof": Option("str", ""),
    # hekapy additions
    # 4 MiB of records (about 11k log lines): the files are the tailing inputs' buffer,
    # so more queued here only costs memory, and cache: an output encodes messages
    # decoded that long ago. Measured against 16 MiB in the same run: RSS 131 MiB
    # instead of 173, CPU per GiB 42-43 s instead of 42-48 (tail → Elasticsearch).
    "max_queue_bytes": Option("int", 4 << 20, doc="bytes each filter/output queue holds"),
    "max_inflight_bytes": Option("int", 64 << 20,
                                 doc="bytes each input may have unacknowledged"),
    "shutdown_timeout": Option("duration", "30s",
                               doc="how long a stop waits for outputs to drain"),
    "log_level": Option("str", "info", choices=("debug", "info", "warning", "error")),
    "log_file": Option("str", "", doc="hekapy's own log ('' = stderr); reopened when "
                       "logrotate moves it away"),
    "deployment_tags": Option("table", {}, doc="fields added to every message an input "
                              "produces, unless present (LMA's extra_fields: deployment_id, "
                              "environment_label, openstack_region, openstack_release, "
                              "openstack_roles)"),
    # the status server (collector/app/status/): /metrics, /health, /heka.all-report, tap
    "status_address": Option("str", "127.0.0.1:4352",
                             doc="host:port of the status server; \"\" turns it off"),
    "status_username": Option("str", "", doc="basic auth for the status server"),
    "status_password": Option("str", "", doc="basic auth for the status server"),
    "status_allow_remote": Option("bool", False,
                                  doc="allow status_address on a non-loopback interface"),
    "status_degraded_after": Option("duration", "30s",
                                    doc="/health: an output retrying this long is degraded"),
}

BUFFERING_OPTIONS: dict[str, Option] = {
    "max_file_size": Option("int", 512 << 20),
    "max_buffer_size": Option("int", 0, doc="0 = unlimited"),
    "full_action": Option("str", "shutdown", choices=("shutdown", "drop", "block")),
    "cursor_update_count": Option("int", 1),
}

_ENV_RE = re.compile(r"%ENV\[([^\]\n]*)\]")
# A variable's name as a shell takes it. Anything else inside %ENV[...] is reported by its
# line only: it is text of the file (a fuzzer made one hold a password), not a name.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def split_host_port(address: str) -> tuple[str, int]:
    """"host:port", "[::1]:port" or ":port" (all interfaces, as Go reads it)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {address!r}")
    host = host.strip("[]")
    return host or "0.0.0.0", int(port)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    import ipaddress
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything


def _check_status_keys(hekad: SimpleNamespace, file: str, errors: list[ConfigError],
                       warnings: list[str]) -> None:
    if not hekad.status_address:
        return
    try:
        host, _ = split_host_port(hekad.status_address)
    except ValueError as e:
        errors.append(ConfigError(file, "hekad", "status_address", str(e)))
        return
    remote = not is_loopback(host)
    if remote and not hekad.status_allow_remote:
        errors.append(ConfigError(
            file, "hekad", "status_address",
            f"{hekad.status_address!r} is not a loopback address: the status server "
            "would be reachable from the network; set status_allow_remote = true "
            "(with status_username and status_password) to allow it"))
    if bool(hekad.status_username) != bool(hekad.status_password):
        key = "status_password" if hekad.status_username else "status_username"
        errors.append(ConfigError(file, "hekad", key, "status_username and "
                                  "status_password go together (basic auth)"))
    elif remote and hekad.status_allow_remote and not hekad.status_password:
        warnings.append(f"{file}: [hekad] status_address: reachable from the network "
                        "without authentication (set status_username/status_password)")


def normalize_key(key: str) -> str:
    """`MatchRegex`, `match_regex` and `matchregex` are the same key to Heka."""
    return key.replace("_", "").lower()


@dataclass
class Config:
    """A loaded configuration: globals, plugin specs (in file order) and every error."""

    files: list[str]
    hekad: SimpleNamespace
    plugins: dict[str, PluginSpec] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Heka's always-available plugins not overridden by a section (DEFAULT_PLUGIN_NAMES).
    defaults: dict[str, PluginSpec] = field(default_factory=dict)

    def by_category(self, category: str) -> list[PluginSpec]:
        return [p for p in self.plugins.values() if p.category == category]

    def resolve(self, name: str, category: str) -> PluginSpec | None:
        """A plugin referenced by name (`decoder = "x"`), or a built-in default one."""
        spec = self.plugins.get(name)
        if spec is not None:
            return spec if spec.category == category else None
        spec = self.defaults.get(name)
        return spec if spec is not None and spec.category == category else None


def _substitute_env(text: str, file: str, errors: list[ConfigError],
                    unset: dict[str, int]) -> str:
    """`%ENV[NAME]` replaced by the variable's value. A variable that is not set stays
    as written, so that the parsed value names it (`_unset_env_errors`); `unset` gets
    its name and first line. (hekad replaced it by "", which only showed later, as a
    missing or bad value somewhere else.)"""
    start = text.find("%ENV[")
    while start != -1:
        end = text.find("\n", start)
        if text.find("]", start, len(text) if end == -1 else end) == -1:
            line = text.count("\n", 0, start) + 1
            errors.append(ConfigError(file, None, None,
                                      f"unclosed %ENV[ on line {line}"))
            return text
        start = text.find("%ENV[", start + 5)

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if not _ENV_NAME.fullmatch(name):
            line = text.count("\n", 0, m.start()) + 1
            errors.append(ConfigError(file, None, None, (
                f"%ENV[...] on line {line} does not name an environment variable "
                "(letters, digits and _, not starting with a digit)")))
            return ""
        v = os.environ.get(name)
        if v is None:
            unset.setdefault(name, text.count("\n", 0, m.start()) + 1)
            return m.group(0)
        return v

    return _ENV_RE.sub(value, text)


def read_env_file(path: str | os.PathLike) -> dict[str, str]:
    """`KEY=VALUE` lines as systemd's EnvironmentFile= reads them: blank lines and lines
    starting with # or ; are skipped, whitespace around the key and the value is dropped,
    a value in single or double quotes loses them (backslash escapes in double quotes),
    a backslash at the end of a line continues the value. ValueError naming the file and
    line for anything else."""
    out: dict[str, str] = {}
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        n, line = i + 1, lines[i].strip()
        i += 1
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + lines[i].strip()
            i += 1
        if not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            # The line itself is not quoted: it may hold a secret.
            raise ValueError(f"{path}, line {n}: expected KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = re.sub(r'\\(.)', r"\1", value)
        out[key] = value
    return out


def _unset_env_errors(data: dict[str, Any], file: str, unset: dict[str, int],
                      errors: list[ConfigError], where: set[tuple[str, str | None]]) -> None:
    """An error for each value that uses an unset variable, naming the variable, the
    section and the key; `where` collects (section, key) so that the loader's later
    complaints about the same value (a bad URL, say) do not bury the cause."""
    def walk(section: str, key: str | None, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(section, k if key is None else f"{key}.{k}", v)
        elif isinstance(value, list):
            for v in value:
                walk(section, key, v)
        elif isinstance(value, str) and "%ENV[" in value:
            for name in _ENV_RE.findall(value):
                if name in unset:
                    errors.append(ConfigError(file, section, key, (
                        f"environment variable {name} is not set (%ENV[{name}]); set it, "
                        "or give an environment file with --env-file")))
                    where.add((section, key))

    for section, body in data.items():
        walk(section, None, body)


def _read_sections(path: Path, errors: list[ConfigError],
                   env_values: set[tuple[str, str | None]] | None = None
                   ) -> tuple[list[str], dict, dict]:
    """Every section of the file or directory, and the file each came from.
    `env_values` collects the (section, key) of values that name an unset variable."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == ".toml" and p.is_file())
        if not files:
            errors.append(ConfigError(str(path), None, None, "directory has no *.toml files"))
    elif path.exists():
        files = [path]
    else:
        errors.append(ConfigError(str(path), None, None, "no such file or directory"))
        files = []
    sections: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for f in files:
        name = str(f)
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            errors.append(ConfigError(name, None, None, f"cannot read: {e}"))
            continue
        unset: dict[str, int] = {}
        text = _substitute_env(text, name, errors, unset)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            errors.append(ConfigError(name, None, None, f"not valid TOML: {e}"))
            for var, line in unset.items():  # e.g. a bare `poolsize = %ENV[POOL]`
                errors.append(ConfigError(name, None, None, (
                    f"environment variable {var} is not set (%ENV[{var}] on line "
                    f"{line})")))
            continue
        if unset:
            _unset_env_errors(data, name, unset, errors,
                              env_values if env_values is not None else set())
        for section, body in data.items():
            sections[section] = body
            origin[section] = name
    return [str(f) for f in files], sections, origin


def convert_options(options: dict[str, Option], values: dict[str, Any], file: str,
                    section: str, errors: list[ConfigError],
                    defaults: dict[str, Any] | None = None,
                    prefix: str = "") -> SimpleNamespace:
    """Validate a TOML table against `options`; return every option as an attribute."""
    by_norm = {normalize_key(k): k for k in options}
    out: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for key, value in values.items():
        canon = by_norm.get(normalize_key(key))
        if canon is None:
            close = difflib.get_close_matches(key.lower(), list(options), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.append(ConfigError(
                file, section, prefix + key,
                f"unknown key{hint}; valid keys: {', '.join(sorted(options))}"))
            continue
        if canon in seen:
            errors.append(ConfigError(file, section, prefix + key,
                                      f"given twice (also as {seen[canon]!r})"))
            continue
        seen[canon] = key
        try:
            out[canon] = options[canon].convert(value)
        except OptionError as e:
            msg = str(e)
            if is_secret_key(canon):  # "expected a string, got <the password>": no
                msg = mask_value(msg, value)
            errors.append(ConfigError(file, section, prefix + key, msg))
    for canon, opt in options.items():
        if canon in out:
            continue
        if opt.required:
            errors.append(ConfigError(file, section, prefix + canon, "required key is missing"))
        if defaults and canon in defaults:
            out[canon] = opt.convert(defaults[canon])
        else:
            out[canon] = opt.default_value()
    return SimpleNamespace(**out)


def plugin_globals(cls: type, cfg: SimpleNamespace, hekad: SimpleNamespace | None) -> None:
    """Give a plugin the [hekad] settings it reads when it is built.

    A plugin class names them in `hekad_settings` (the sandbox plugins: share_dir, for
    a relative `filename` or `module_directory`) and finds them as `cfg.hekad`. They
    travel with the section's values, so every build of the plugin (`hekapy check`,
    the pipeline, each input's own decoder) sees the same [hekad], and a reload that
    changes them rebuilds the plugin."""
    wanted = getattr(cls, "hekad_settings", ())
    if wanted and hekad is not None:
        cfg.hekad = SimpleNamespace(**{k: getattr(hekad, k) for k in wanted})


def _build_spec(name: str, body: dict, file: str, errors: list[ConfigError],
                hekad: SimpleNamespace | None = None,
                plugin_class: Callable[[str], type[Plugin] | None] | None = None
                ) -> PluginSpec | None:
    """The validated spec of one section. `plugin_class` finds a class by type name
    (default: the catalog's built-ins)."""
    type_key = next((k for k in body if normalize_key(k) == "type"), None)
    type_name = body[type_key] if type_key else name
    if not isinstance(type_name, str):
        errors.append(ConfigError(file, name, type_key, "type must be a string"))
        return None
    cls = (plugin_class or catalog.plugin_class)(type_name)
    if cls is None:
        registry = catalog.type_names()
        cat = category_of(type_name)
        where = type_key or None
        if type_key is None and cat is None:
            msg = ("no `type` key, and the section name is not a plugin type; valid types: "
                   + ", ".join(sorted(registry)))
        else:
            close = difflib.get_close_matches(type_name, list(registry), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            same = sorted(t for t in registry if cat and t.endswith(cat)) or sorted(registry)
            msg = f"unknown plugin type {type_name!r}{hint}; valid types: {', '.join(same)}"
        errors.append(ConfigError(file, name, where, msg))
        return None
    n_before = len(errors)
    cfg = convert_options(cls.all_options(), body, file, name, errors, cls.defaults)
    cfg.type = type_name
    given = {normalize_key(k) for k in body}
    for sub, opts in (("retries", RETRIES_OPTIONS), ("buffering", BUFFERING_OPTIONS)):
        table = getattr(cfg, sub, None)
        if isinstance(table, dict):
            defaults = (cls.buffering_defaults if sub == "buffering"
                        and normalize_key(sub) not in given else None)
            setattr(cfg, sub, convert_options(opts, table, file, name, errors, defaults,
                                              prefix=f"{sub}."))
    if len(errors) == n_before:
        special = cls.specialize(
            cfg, lambda key, msg: errors.append(ConfigError(file, name, key, msg)))
        if special is not None:
            cls, cfg = special
    plugin_globals(cls, cfg, hekad)
    # A section with bad values is still cross-checked (matcher, references) so that one
    # run reports everything, but it is never built.
    return PluginSpec(name=name, type_name=type_name, cls=cls, cfg=cfg, file=file,
                      valid=len(errors) == n_before)


def load_config(path: str | os.PathLike, strict: bool = False) -> Config:
    """Load, validate and cross-check a config file or directory.

    With strict=True, raise ConfigInvalid when anything is wrong; otherwise the caller
    inspects `config.errors` (so `hekapy check` can print every problem at once).
    """
    errors: list[ConfigError] = []
    env_values: set[tuple[str, str | None]] = set()
    files, sections, origin = _read_sections(Path(path), errors, env_values)
    n_env = len(errors)

    hekad_file = origin.get("hekad", files[0] if files else str(path))
    hekad_body = sections.pop("hekad", {})
    if not isinstance(hekad_body, dict):
        errors.append(ConfigError(hekad_file, "hekad", None, "must be a table"))
        hekad_body = {}
    hekad = convert_options(HEKAD_OPTIONS, hekad_body, hekad_file, "hekad", errors)
    if not hekad.hostname:
        hekad.hostname = socket.gethostname()
    for key, value in list(hekad.deployment_tags.items()):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            errors.append(ConfigError(hekad_file, "hekad", f"deployment_tags.{key}",
                                      f"must be a string or a number, got {value!r}"))
            del hekad.deployment_tags[key]
    if hekad.max_message_size == 0:
        hekad.max_message_size = 65536
    elif hekad.max_message_size <= 1024:
        errors.append(ConfigError(hekad_file, "hekad", "max_message_size",
                                  "must be greater than 1024"))
    for key in ("poolsize", "plugin_chansize", "max_queue_bytes", "max_inflight_bytes"):
        if getattr(hekad, key, 1) < 1:
            errors.append(ConfigError(hekad_file, "hekad", key, "must be at least 1"))

    config = Config(files=files, hekad=hekad, errors=errors)
    _check_status_keys(hekad, hekad_file, errors, config.warnings)
    for name, body in sections.items():
        file = origin[name]
        if not isinstance(body, dict):
            errors.append(ConfigError(file, None, name,
                                      "top-level key outside a section; every plugin is a "
                                      "[table]"))
            continue
        spec = _build_spec(name, body, file, errors, hekad)
        if spec is not None:
            config.plugins[name] = spec

    for dname in DEFAULT_PLUGIN_NAMES:
        if dname not in config.plugins:
            cls = catalog.plugin_class(dname)
            assert cls is not None
            # A default that needs keys (PatternGroupingSplitter's grouping) is only
            # usable through a section of its own.
            default_errors: list[ConfigError] = []
            cfg = convert_options(cls.all_options(), {}, "", dname, default_errors,
                                  cls.defaults)
            if not default_errors:
                cfg.type = dname
                plugin_globals(cls, cfg, hekad)
                config.defaults[dname] = PluginSpec(dname, dname, cls, cfg)

    _check_plugins(config)
    if env_values:  # the unset variable is the cause: drop what follows from it
        errors[n_env:] = [e for e in errors[n_env:]
                          if (e.section, e.key) not in env_values
                          and not (e.section is not None and e.key is not None
                                   and (e.section, e.key.split(".")[0]) in env_values)]
    if strict and config.errors:
        raise ConfigInvalid(config.errors)
    return config


def _check_reference(config: Config, spec: PluginSpec, key: str, category: str) -> None:
    refs = getattr(spec.cfg, key, "")
    for ref in ([refs] if isinstance(refs, str) else refs or ()):
        if ref:
            _check_one_reference(config, spec, key, category, ref)


def _check_one_reference(config: Config, spec: PluginSpec, key: str, category: str,
                         ref: str) -> None:
    if ref == spec.name:
        config.errors.append(ConfigError(spec.file, spec.name, key, "refers to itself"))
    elif config.resolve(ref, category) is None:
        other = config.plugins.get(ref)
        if other is not None:
            msg = f"{ref!r} is a {other.category.lower()}, not a {category.lower()}"
        else:
            choices = sorted(p.name for p in config.by_category(category))
            choices += [d for d in config.defaults if d.endswith(category)]
            msg = (f"no {category.lower()} named {ref!r}; defined: "
                   f"{', '.join(choices) or 'none'}")
        config.errors.append(ConfigError(spec.file, spec.name, key, msg))


def _check_plugins(config: Config) -> None:
    """Cross references, matchers, and each plugin's own constructor checks."""
    from hekapy.collector.engine.matcher import (
        MatcherSyntaxError,
        compile_matcher,
        matcher_warnings,
    )

    for spec in config.plugins.values():
        cat = spec.category
        if cat == "Input":
            _check_reference(config, spec, "decoder", "Decoder")
            _check_reference(config, spec, "splitter", "Splitter")
        if cat == "Output":
            _check_reference(config, spec, "encoder", "Encoder")
        for key, ref_category in spec.cls.references.items():
            _check_reference(config, spec, key, ref_category)
        if cat in ("Filter", "Output"):
            m = spec.cfg.message_matcher
            try:
                compile_matcher(m)
            except MatcherSyntaxError as e:
                config.errors.append(ConfigError(spec.file, spec.name, "message_matcher",
                                                 f"does not parse: {e}"))
            for w in matcher_warnings(m):
                config.warnings.append(f"{spec.file}: [{spec.name}] message_matcher: {w}")
            if not m.strip():
                config.warnings.append(f"{spec.file}: [{spec.name}] has no message_matcher "
                                       "and will receive no messages")
        if not spec.valid:
            continue
        try:
            spec.build()
        except OptionError as e:
            config.errors.append(ConfigError(spec.file, spec.name, e.key, str(e)))
