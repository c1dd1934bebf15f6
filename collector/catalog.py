"""The plugin catalog: every built-in plugin's Heka type name and the module that holds it.

A configuration names plugins by type; the engine asks this table for the class and
imports the module only then, so a collector loads the plugins its configuration uses
and nothing else (the Lua runtime, aio-pika and the HTTP clients stay unloaded where no
section needs them). The table is also the map for a reader: where the type's suffix
puts a plugin (docs/design.md, "Where plugins live"), under the type name without its
suffix, in snake_case. tests/engine/test_catalog.py holds the table, the modules and that rule
to each other.
"""

from __future__ import annotations

import importlib

from hekapy.collector.engine.plugin import REGISTRY, Plugin

_IN = "hekapy.collector.inputs"
_SPLIT = "hekapy.collector.splitters"
_SANDBOX = "hekapy.collector.sandbox"
_DEC = "hekapy.decoders"
_FIL = "hekapy.filters"
_OUT = "hekapy.outputs"
_ENC = "hekapy.outputs.encoders"
_ES = "hekapy.outputs.elasticsearch"

MODULES: dict[str, str] = {
    # Inputs: collector/inputs/
    "AMQPInput": f"{_IN}.amqp",
    "HaproxyStatsInput": f"{_IN}.haproxy_stats",
    "HekapyStatsInput": f"{_IN}.hekapy_stats",
    "HttpListenInput": f"{_IN}.http_listen",
    "LogstreamerInput": f"{_IN}.logstreamer.logstreamer_input",
    "ProcessInput": f"{_IN}.process",
    "TcpInput": f"{_IN}.tcp",
    "UdpInput": f"{_IN}.udp",
    # Splitters: collector/splitters/
    "HekaFramingSplitter": f"{_SPLIT}.heka_framing",
    "NullSplitter": f"{_SPLIT}.null",
    "PatternGroupingSplitter": f"{_SPLIT}.pattern_grouping",
    "RegexSplitter": f"{_SPLIT}.regex",
    "TokenSplitter": f"{_SPLIT}.token",
    # Decoders: decoders/
    "CollectdDecoder": f"{_DEC}.collectd",
    "HaproxyLogDecoder": f"{_DEC}.haproxy_log",
    "KeystoneWsgiDecoder": f"{_DEC}.keystone_wsgi",
    "LibvirtLogDecoder": f"{_DEC}.libvirt_log",
    "MetricDecoder": f"{_DEC}.metric",
    "MultiDecoder": f"{_DEC}.multi",
    "MysqlLogDecoder": f"{_DEC}.mysql_log",
    "NoopDecoder": f"{_DEC}.noop",
    "NotificationDecoder": f"{_DEC}.notification",
    "OpenStackLogDecoder": f"{_DEC}.openstack_log",
    "OvsLogDecoder": f"{_DEC}.ovs_log",
    "PacemakerLogDecoder": f"{_DEC}.pacemaker_log",
    "PayloadRegexDecoder": f"{_DEC}.payload_regex",
    "ProtobufDecoder": f"{_DEC}.protobuf",
    "RabbitmqLogDecoder": f"{_DEC}.rabbitmq_log",
    "ScribbleDecoder": f"{_DEC}.scribble",
    "SyslogDecoder": f"{_DEC}.syslog",
    # Filters: filters/
    "AfdFilter": f"{_FIL}.afd",
    "CounterFilter": f"{_FIL}.counter",
    "GseFilter": f"{_FIL}.gse",
    "HddErrorsCounterFilter": f"{_FIL}.hdd_errors_counter",
    "HttpMetricsFilter": f"{_FIL}.http_metrics",
    "InfluxdbAccumulatorFilter": f"{_FIL}.influxdb_accumulator",
    "InfluxdbAnnotationFilter": f"{_FIL}.influxdb_annotation",
    "LogCounterFilter": f"{_FIL}.log_counter",
    "ResourceCreationTimeFilter": f"{_FIL}.resource_creation_time",
    # Encoders: beside the output they were made for, general ones in outputs/encoders/
    "ESJsonEncoder": f"{_ES}.es_json",
    "ESLogstashV0Encoder": f"{_ES}.es_logstash_v0",
    "JsonEncoder": f"{_ENC}.json",
    "NagiosEncoder": f"{_ENC}.nagios",
    "PayloadEncoder": f"{_ENC}.payload",
    "ProtobufEncoder": f"{_ENC}.protobuf",
    "RstEncoder": f"{_ENC}.rst",
    # Outputs: outputs/
    "AMQPOutput": f"{_OUT}.amqp",
    "DashboardOutput": f"{_OUT}.dashboard",
    "ElasticSearchOutput": f"{_ES}.output",
    "FileOutput": f"{_OUT}.file",
    "HttpOutput": f"{_OUT}.http",
    "InfluxdbOutput": f"{_OUT}.influxdb.output",
    "LogOutput": f"{_OUT}.log",
    "TcpOutput": f"{_OUT}.tcp",
    "UdpOutput": f"{_OUT}.udp",
    # Heka's Lua sandbox plugins: collector/sandbox/, with the runtime they share
    "SandboxDecoder": f"{_SANDBOX}.sandbox_decoder",
    "SandboxEncoder": f"{_SANDBOX}.sandbox_encoder",
    "SandboxFilter": f"{_SANDBOX}.sandbox_filter",
}

# Heka's always-available plugins, usable by name without a section of their own.
DEFAULT_PLUGIN_NAMES = ("ProtobufDecoder", "ProtobufEncoder", "TokenSplitter",
                        "PatternGroupingSplitter", "HekaFramingSplitter", "NullSplitter")


def type_names() -> list[str]:
    """Every built-in type name, sorted (for error messages and `check --sample`)."""
    return sorted(MODULES)


def plugin_class(type_name: str) -> type[Plugin] | None:
    """The class registered under `type_name`, importing its module on first use; None
    for a name that is not a built-in type."""
    cls = REGISTRY.get(type_name)
    if cls is not None:
        return cls
    module = MODULES.get(type_name)
    if module is None:
        return None
    importlib.import_module(module)
    return REGISTRY[type_name]


def load_all() -> dict[str, type[Plugin]]:
    """Every built-in plugin, imported (tests, `check --sample`, documentation)."""
    for name in MODULES:
        plugin_class(name)
    return REGISTRY
