"""Where the alarm filters keep their state across a restart (their `preserve_data`, as a
Lua sandbox's): `<base_dir>/alarm_state/<filter name>.json`, written whole to a
temporary file and renamed over the old one, so a crash leaves the old or the new."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any


def state_path(base_dir: str, name: str) -> Path:
    return Path(base_dir) / "alarm_state" / f"{name}.json"


def load_state(base_dir: str, name: str, log: logging.Logger) -> dict[str, Any] | None:
    path = state_path(base_dir, name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        log.error("cannot read the saved state %s: %s; starting afresh", path, e)
        return None
    try:
        state = json.loads(text)
    except ValueError as e:
        log.error("the saved state %s is not valid JSON (%s); starting afresh", path, e)
        return None
    return state if isinstance(state, dict) else None


def save_state(base_dir: str, name: str, state: dict[str, Any], log: logging.Logger) -> None:
    path = state_path(base_dir, name)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, ValueError) as e:
        log.error("cannot save the state to %s: %s", path, e)
