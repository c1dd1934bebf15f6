"""Syslog severities and their labels, as Heka messages carry them (Severity 0-7) and
LMA's decoders labelled them (`severity_label`); AUDIT and TRACE are oslo.log's extras."""

from __future__ import annotations

SEVERITY_BY_LABEL: dict[str, int] = {
    "EMERGENCY": 0, "ALERT": 1, "CRITICAL": 2, "ERROR": 3, "WARNING": 4, "NOTICE": 5,
    "INFO": 6, "DEBUG": 7, "AUDIT": 7, "TRACE": 7,
}
LABEL_BY_SEVERITY: tuple[str, ...] = (
    "EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")
