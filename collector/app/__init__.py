"""The commands and services built on the engine: the CLI, the status server, tap and
top, replay, quickstart and demo."""
