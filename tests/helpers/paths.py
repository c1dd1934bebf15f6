"""Where things are, for test modules at any depth under tests/."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
CONF = REPO / "conf"
TEST_DATA = TESTS / "data"
TEST_TOOLS = TESTS / "tools"
LUA = TEST_DATA / "lua"
LMA_DATA = TEST_DATA / "lma"
LAB_DATA = TEST_DATA / "lab"
