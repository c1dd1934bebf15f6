"""Heka's Lua sandbox (docs/compatibility.md, "Lua sandbox"): lupa's Lua 5.1 with the
system's lpeg and cjson and Heka's built-in modules (docs/sandbox-modules.md), the Heka-Go
API, limits and preserved data.

- host.py: the restricted Lua state, module loading, limits, termination;
- api.py: read_message, inject_message and the other functions scripts call;
- preserve.py: `preserve_data` files in lua_sandbox's format;
- runner.py: the common plugin keys and the entry-point calls the plugins use;
- natives.py and lua/: circular_buffer, struct, hyperloglog, bloom_filter, cjson's wrapper;
- sandbox_decoder.py, sandbox_filter.py, sandbox_encoder.py: SandboxDecoder,
  SandboxFilter and SandboxEncoder.
"""

from hekapy.collector.sandbox.host import ApiError, SandboxError, SandboxTerminated
from hekapy.collector.sandbox.runner import (
    HEKAD_SETTINGS,
    SANDBOX_OPTIONS,
    TERMINATED_TYPE,
    Sandbox,
    runner_name,
    terminated_message,
)

__all__ = ["HEKAD_SETTINGS", "SANDBOX_OPTIONS", "TERMINATED_TYPE", "ApiError", "Sandbox",
           "SandboxError", "SandboxTerminated", "runner_name", "terminated_message"]
