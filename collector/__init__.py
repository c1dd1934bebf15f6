"""hekapy runtime: message model, config, matcher, router, queues, acks, inputs, CLI."""

__version__ = "0.1.0"
