"""The time rows an AFD rule keeps its datapoints in: the part of Heka's circular_buffer
that LMA's AFD rules used (new, set, add, get, compute, current_time), with the
semantics of hekapy's own circular_buffer module (docs/sandbox-modules.md), so that a
rule sees the same numbers natively as LMA's Lua sees in hekapy's sandbox
(API: https://mozilla-services.github.io/lua_sandbox/heka/circular_buffer.html).

- `rows` rows of `seconds_per_row` seconds; the newest row is the one of `current_time`.
  A value later than it moves the buffer forward (the rows passed over are cleared); a
  value older than the oldest row is ignored.
- An empty cell is NaN. `set` overwrites (a "min"/"max" column keeps the smaller/larger
  value of its row), `add` adds.
- `compute` walks the rows oldest first, skipping NaN: with no value, "sum", "avg",
  "sd" and "variance" give 0, "min" and "max" NaN (the statistics of lua_sandbox 1.0;
  Heka 0.10's C module started "max" from the smallest positive double, so that a
  maximum of 0 or less came out NaN: docs/alarms.md, "Differences from LMA").
"""

from __future__ import annotations

import math
from typing import Any

NAN = float("nan")


class RowBuffer:
    __slots__ = ("aggregation", "columns", "current_row", "current_time", "rows",
                 "seconds_per_row", "values")

    def __init__(self, rows: int, columns: int, seconds_per_row: int,
                 aggregation: tuple[str, ...] = ()) -> None:
        if rows < 2:
            raise ValueError("a row buffer needs at least 2 rows")
        self.rows = rows
        self.columns = columns
        self.seconds_per_row = seconds_per_row
        # Per column: "sum" (set overwrites), "min" or "max".
        self.aggregation = aggregation or ("sum",) * columns
        self.values = [[NAN] * columns for _ in range(rows)]
        self.current_time = seconds_per_row * (rows - 1)  # seconds
        self.current_row = rows - 1

    def _row(self, ns: float, advance: bool) -> int | None:
        t = int(ns / 1e9)
        t -= t % self.seconds_per_row
        current = self.current_time // self.seconds_per_row
        requested = t // self.seconds_per_row
        delta = requested - current
        row = requested % self.rows
        if delta > 0 and advance:
            self._clear(delta)
            self.current_time = t
            self.current_row = row
        elif requested > current or abs(delta) >= self.rows:
            return None
        return row

    def _clear(self, count: int) -> None:
        row = self.current_row
        for _ in range(min(count, self.rows)):
            row = (row + 1) % self.rows
            self.values[row] = [NAN] * self.columns

    def set(self, ns: float, column: int, value: float) -> float | None:
        """Store `value` in the row of time `ns` (column 0-based); None if too old."""
        row = self._row(ns, True)
        if row is None:
            return None
        cells = self.values[row]
        old = cells[column]
        how = self.aggregation[column]
        # A min (max) column keeps its value unless the new one is smaller (larger); NaN
        # on either side sets, as hekapy's circular_buffer does.
        if (how == "min" and value >= old) or (how == "max" and value <= old):
            return old
        cells[column] = value
        return cells[column]

    def add(self, ns: float, column: int, value: float) -> float | None:
        row = self._row(ns, True)
        if row is None:
            return None
        cells = self.values[row]
        cells[column] = value if math.isnan(cells[column]) else cells[column] + value
        return cells[column]

    def get(self, ns: float, column: int) -> float | None:
        row = self._row(ns, False)
        return None if row is None else self.values[row][column]

    def current_time_ns(self) -> float:
        return self.current_time * 1e9

    def _column(self, column: int) -> list[float]:
        """The column's values oldest first, without the empty cells."""
        start = self.current_row + 1
        out = []
        for i in range(self.rows):
            v = self.values[(start + i) % self.rows][column]
            if not math.isnan(v):
                out.append(v)
        return out

    def compute(self, function: str, column: int) -> float:
        values = self._column(column)
        if function == "sum":
            total = 0.0
            for v in values:
                total += v
            return total
        if function in ("avg", "variance", "sd"):
            if not values:
                return 0.0
            total = 0.0
            for v in values:
                total += v
            avg = total / len(values)
            if function == "avg":
                return avg
            squares = 0.0
            for v in values:
                squares += (v - avg) * (v - avg)
            variance = squares / len(values)
            return variance if function == "variance" else math.sqrt(variance)
        if function in ("min", "max"):
            best = NAN
            for i, v in enumerate(values):
                if i == 0 or (v < best if function == "min" else v > best):
                    best = v
            return best
        raise ValueError(f"unknown function {function!r}")

    # persistence (the filters' preserve_data) -----------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": self.columns,
                "seconds_per_row": self.seconds_per_row, "current_time": self.current_time,
                "current_row": self.current_row,
                "values": [[None if math.isnan(v) else v for v in r] for r in self.values]}

    def restore(self, state: dict[str, Any]) -> bool:
        """Take a saved state of the same geometry; False (and unchanged) otherwise."""
        if (state.get("rows"), state.get("columns"), state.get("seconds_per_row")) != (
                self.rows, self.columns, self.seconds_per_row):
            return False
        values = state.get("values")
        if not isinstance(values, list) or len(values) != self.rows or any(
                not isinstance(r, list) or len(r) != self.columns for r in values):
            return False
        self.values = [[NAN if v is None else float(v) for v in r] for r in values]
        self.current_time = int(state["current_time"])
        self.current_row = int(state["current_row"])
        return True
