"""InfluxDB output: LMA's metric messages as line protocol (line_protocol.py) written over
HTTP to InfluxDB 1.x `/write` or 2.x `/api/v2/write` (output.py)."""
