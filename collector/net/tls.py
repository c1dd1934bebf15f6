"""The `tls` table of Heka's network plugins (inputs and outputs that talk TLS), turned
into an ssl.SSLContext for a client (outputs) or a server (listening inputs).

Keys (Heka's names): server_name, cert_file, key_file, root_cafile, insecure_skip_verify
(false), min_version / max_version ("TLS10" … "TLS13"). Heka's cipher-suite and session
ticket keys are accepted and ignored: Python's defaults are the safe choice. A server
(use_tls = true on a listening input) needs cert_file and key_file; `client_auth`
(Heka's names: NoClientCert, RequestClientCert, RequireAnyClientCert,
VerifyClientCertIfGiven, RequireAndVerifyClientCert) with `client_cafile` asks clients
for certificates.

    [elasticsearch_output.tls]
    root_cafile = "/etc/ssl/certs/es-ca.pem"
    cert_file = "/etc/hekapy/client.pem"
    key_file = "/etc/hekapy/client.key"
"""

from __future__ import annotations

import ssl
from types import SimpleNamespace

from hekapy.collector.engine.plugin import Option, OptionError

_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
             "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}

TLS_OPTIONS: dict[str, Option] = {
    "server_name": Option("str", "", doc="name to verify instead of the URL's host"),
    "cert_file": Option("str", "", doc="client certificate (PEM)"),
    "key_file": Option("str", "", doc="client key (PEM)"),
    "root_cafile": Option("str", "", doc="CA bundle to verify the server (PEM)"),
    "insecure_skip_verify": Option("bool", False, doc="do not verify the server"),
    "min_version": Option("str", "TLS12", choices=tuple(_VERSIONS)),
    "max_version": Option("str", "TLS13", choices=tuple(_VERSIONS)),
    "client_auth": Option("str", "NoClientCert", choices=(
        "NoClientCert", "RequestClientCert", "RequireAnyClientCert",
        "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"),
        doc="server side: whether clients must show a certificate"),
    "client_cafile": Option("str", "", doc="server side: CA bundle for client certificates"),
    # Accepted for Heka compatibility, ignored.
    "ciphers": Option("any", None),
    "prefer_server_ciphers": Option("any", None),
    "session_tickets_disabled": Option("any", None),
    "session_ticket_key": Option("any", None),
}


def tls_settings(table: dict) -> SimpleNamespace:
    """Validate a `tls` table; OptionError names the key as `tls.<key>`."""
    from hekapy.collector.engine.config import ConfigError, convert_options

    errors: list[ConfigError] = []
    cfg = convert_options(TLS_OPTIONS, table, "", "", errors, prefix="tls.")
    if errors:
        raise OptionError(errors[0].message, key=errors[0].key)
    if bool(cfg.cert_file) != bool(cfg.key_file):
        raise OptionError("cert_file and key_file go together", key="tls.cert_file")
    return cfg


def client_ssl_context(cfg: SimpleNamespace) -> ssl.SSLContext:
    """A client context: system CAs (or root_cafile), optional client certificate."""
    ctx = ssl.create_default_context(cafile=cfg.root_cafile or None)
    ctx.minimum_version = _VERSIONS[cfg.min_version]
    ctx.maximum_version = _VERSIONS[cfg.max_version]
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    if cfg.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def server_ssl_context(cfg: SimpleNamespace) -> ssl.SSLContext:
    """A server context with our certificate; client certificates as `client_auth` asks
    (the "Any" modes still verify against client_cafile: Python cannot accept a
    certificate it does not check)."""
    if not cfg.cert_file:
        raise OptionError("a TLS listener needs cert_file and key_file", key="tls.cert_file")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = _VERSIONS[cfg.min_version]
    ctx.maximum_version = _VERSIONS[cfg.max_version]
    ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    if cfg.client_auth != "NoClientCert":
        if not cfg.client_cafile:
            raise OptionError(f"client_auth = {cfg.client_auth!r} needs client_cafile",
                              key="tls.client_cafile")
        ctx.load_verify_locations(cfg.client_cafile)
        required = cfg.client_auth in ("RequireAnyClientCert", "RequireAndVerifyClientCert")
        ctx.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    return ctx
