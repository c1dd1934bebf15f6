"""The configuration the benchmarks and the replay tests share: OpenStack logs under
`<logs>/nova` and `<logs>/neutron` (LMA's logstreamer layout, rotated names included)
decoded by the OpenStackLogDecoder, and an Elasticsearch output (LMA's index and id)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def openstack_logs(state: str | Path, logs: str | Path = "/var/log",
                   hostname: str = "bench-1") -> str:
    """[hekad], the decoder and the nova and neutron LogstreamerInputs."""
    sections = [f"[hekad]\nbase_dir = {_toml(str(state))}\nhostname = {_toml(hostname)}",
                '[openstack_decoder]\ntype = "OpenStackLogDecoder"\ntz = "UTC"']
    for service in ("nova", "neutron"):
        sections.append(f"""[{service}_logstreamer]
type = "LogstreamerInput"
log_directory = {_toml(f"{logs}/{service}")}
file_match = '(?P<Service>.+)\\.log\\.?(?P<Seq>\\d*)$'
differentiator = ["{service}", "_", "Service"]
priority = ["^Seq"]
decoder = "openstack_decoder\"""")
    return "\n".join(sections) + "\n"


def es_output(es_url: str, fields: list[str] | None = None, *,
              buffering: dict[str, Any] | None = None, **output: Any) -> str:
    """LMA's ESJsonEncoder (index by message date, id = Uuid) and an
    ElasticSearchOutput for Type 'log' with `output` keys (flush_count, …).
    `buffering` (max_file_size, max_buffer_size, full_action, …) turns `use_buffering`
    on with that [elasticsearch_output.buffering] table; without it, no disk buffer."""
    encoder = ['[elasticsearch_encoder]', 'type = "ESJsonEncoder"',
               'index = "%{Type}-%{%Y.%m.%d}"', "es_index_from_timestamp = true",
               'type_name = ""', 'id = "%{UUID}"']
    if fields is not None:
        encoder.append(f"fields = {_toml(fields)}")
    out = ["[elasticsearch_output]", 'type = "ElasticSearchOutput"',
           "message_matcher = \"Type == 'log'\"", 'encoder = "elasticsearch_encoder"',
           f"server = {_toml(es_url)}", f"use_buffering = {_toml(buffering is not None)}"]
    out += [f"{key} = {_toml(value)}" for key, value in output.items()]
    if buffering is not None:
        out.append("[elasticsearch_output.buffering]")
        out += [f"{key} = {_toml(value)}" for key, value in buffering.items()]
    return "\n".join(encoder + out) + "\n"
