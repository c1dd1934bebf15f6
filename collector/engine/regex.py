"""Regular expressions with RE2 semantics, as Heka (Go `regexp`) had them.

Heka configs carry RE2 syntax (`\\z`, `\\pL`, `$` only at the end of the text) and RE2's
linear-time guarantee matters when operators' patterns run against untrusted log lines.
google-re2 gives both; Python's `re` would change what `$` and some escapes mean.
"""

from __future__ import annotations

from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # errors are raised, not printed to stderr by the C++ library


def compile_regex(pattern: str | bytes) -> Any:
    """Compile `pattern` (str for text, bytes for raw records) with RE2 semantics.
    Raises ValueError with RE2's reason when it does not compile."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as e:
        reason = e.args[0] if e.args else str(e)
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(str(reason)) from None
