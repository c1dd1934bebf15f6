"""The engine: the message model, configuration, matcher, plugin contract and contexts,
router, queues, acknowledgements, disk buffer and pipeline. It imports no plugin: the
configuration names plugins by Heka type, and collector/catalog.py says which module
holds each type (docs/design.md)."""
