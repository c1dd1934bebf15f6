"""Keeping secrets out of logs, errors and the status server: what counts as a secret
key, and URL userinfo (`scheme://user:password@host`) masked or removed."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

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
