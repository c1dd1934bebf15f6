"""Keeping secrets out of logs, errors and the status server: what counts as a secret
key, URL userinfo (`scheme://user:password@host`) masked or removed, and a `Redactor`
that masks every secret one config holds wherever it shows up in text."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from hekapy.collector.engine.config import Config

# Config keys whose values are secrets (password, hmac_key, token, api_key, ...).
SECRET_KEY = re.compile(r"pass(word|wd|phrase)?|secret|token|api_?key|credential|"
                        r"private_?key|hmac_?key", re.I)
URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s\"']+@")


def is_secret_key(name: str) -> bool:
    return SECRET_KEY.search(name) is not None


def redact_userinfo(text: str) -> str:
    """Every `scheme://user:password@` in `text` as `scheme://***@`."""
    return URL_USERINFO.sub(r"\g<scheme>***@", text)


def redact_url(url: str) -> str:
    """The URL without user:password@ (for logs and errors)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def mask_value(text: str, value: object) -> str:
    """`text` (an error about `value`) with the value itself masked."""
    for shown in {repr(value), str(value)}:
        if len(shown) >= 3:
            text = text.replace(shown, "***")
    return text


class Redactor:
    """Masks secrets in text: URL userinfo, and every value of a secret-looking key
    anywhere in the config (plugins' sections, nested tables, [hekad]). Built once per
    config, for output that may show any string the config holds (the status server's
    documents, names, paths and error texts)."""

    def __init__(self, config: Config | None = None) -> None:
        found: set[str] = set()
        if config is not None:
            self._walk(vars(config.hekad), found)
            for spec in config.plugins.values():
                self._walk(vars(spec.cfg), found)
        # Longest first: a secret that contains another is masked whole.
        self.secrets = sorted((s for s in found if len(s) >= 3), key=len, reverse=True)

    def _walk(self, obj: Any, found: set[str], key: str = "") -> None:
        if isinstance(obj, SimpleNamespace):
            obj = vars(obj)
        if isinstance(obj, dict):
            for k, v in obj.items():
                self._walk(v, found, str(k))
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                self._walk(v, found, key)
        elif isinstance(obj, str):
            if key and is_secret_key(key) and obj:
                found.add(obj)
            for m in URL_USERINFO.finditer(obj):
                userinfo = m.group(0)[len(m.group("scheme")):-1]
                found.add(userinfo)
                _, _, pw = userinfo.partition(":")
                if pw:
                    found.add(pw)

    def mask(self, s: str) -> str:
        s = redact_userinfo(s)
        for secret in self.secrets:
            if secret in s:
                s = s.replace(secret, "***")
        return s

    def mask_obj(self, obj: Any) -> Any:
        """`obj` (JSON-like) with every string value masked; keys are left alone, so
        the document keeps its shape."""
        if isinstance(obj, str):
            return self.mask(obj) if obj else obj
        if isinstance(obj, dict):
            return {k: self.mask_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.mask_obj(v) for v in obj]
        return obj
