"""Reading a `_bulk` response: which items are stored, which to send again, which the
server rejects for good (docs/compatibility.md, "ElasticSearchOutput"; the item statuses:
https://www.elastic.co/guide/en/elasticsearch/reference/current/docs-bulk.html).

Elasticsearch answers 200 even when items failed; every item carries its own status.
- 2xx: stored.
- 409 on `create`: the document is already there (a replay of an idempotent `_id`):
  counts as stored.
- 429 and 5xx: the cluster is busy or a shard is unavailable: send that item again.
- any other 4xx (mapping conflict, bad document): sending it again cannot succeed: it
  goes to the dead-letter file with the server's reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

STORED, RETRY, REJECTED = range(3)


@dataclass
class BulkOutcome:
    """Positions (into the request's items) by what happened to them."""

    stored: int = 0
    retry: list[int] = field(default_factory=list)
    rejected: list[tuple[int, int, Any]] = field(default_factory=list)  # (pos, status, error)


class BulkResponseError(ValueError):
    """A 200 response that is not a bulk answer for this request: send it all again."""


def all_stored(body: bytes, count: int) -> bool:
    """The common answer, `{"took":…,"errors":false,"items":[…]}` with one status per
    item, recognised without parsing the items (the parse of a 2000-item answer cost
    about 5% of the collector's CPU). Anything else (another layout, a count that does
    not match) is left to the full parse, which says what is wrong with it."""
    head_end = body.find(b'"items":[', 0, 512)
    return (head_end > 0 and body.find(b'"errors":false', 0, head_end) > 0
            and body.count(b'"status":', head_end) == count)


def item_verdict(action: str, status: int) -> int:
    if 200 <= status < 300 or (status == 409 and action == "create"):
        return STORED
    if status == 429 or status >= 500:
        return RETRY
    return REJECTED


def parse_bulk_response(body: bytes, count: int) -> BulkOutcome:
    """Classify each of the `count` items of a 200 `_bulk` response."""
    if all_stored(body, count):
        return BulkOutcome(stored=count)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BulkResponseError(f"response is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise BulkResponseError("response is not a JSON object")
    items = doc.get("items")
    if not isinstance(items, list) or len(items) != count:
        got = len(items) if isinstance(items, list) else "no"
        raise BulkResponseError(f"response has {got} items for {count} sent")
    out = BulkOutcome()
    if doc.get("errors") is False:
        out.stored = count
        return out
    for pos, item in enumerate(items):
        try:
            ((action, result),) = item.items()
            status = int(result["status"])
        except (AttributeError, KeyError, TypeError, ValueError):
            raise BulkResponseError(f"item {pos} is malformed: {item!r:.200}") from None
        verdict = item_verdict(action, status)
        if verdict == STORED:
            out.stored += 1
        elif verdict == RETRY:
            out.retry.append(pos)
        else:
            out.rejected.append((pos, status, result.get("error")))
    return out
