"""Reading `_bulk` responses item by item, and the dead-letter file."""

from __future__ import annotations

import orjson
import pytest

from hekapy.collector.engine.redact import redact_url
from hekapy.outputs.elasticsearch.bulk import (
    BulkResponseError,
    all_stored,
    item_verdict,
    parse_bulk_response,
)
from hekapy.outputs.elasticsearch.client import split_credentials
from hekapy.outputs.elasticsearch.deadletter import DeadLetterFile


def _resp(*items, errors=True) -> bytes:
    return orjson.dumps({"took": 3, "errors": errors, "items": list(items)})


def test_all_stored_fast_path():
    body = _resp({"index": {"status": 201}}, {"index": {"status": 200}}, errors=False)
    out = parse_bulk_response(body, 2)
    assert (out.stored, out.retry, out.rejected) == (2, [], [])


def test_all_stored_is_recognised_without_parsing_the_items():
    real = (b'{"took":12,"errors":false,"items":[{"index":{"_index":"log-2026.11.30",'
            b'"_id":"a","_version":1,"result":"created","_shards":{"total":2,'
            b'"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},'
            b'{"index":{"_index":"log-2026.11.30","_id":"b","result":"updated",'
            b'"status":200}}]}')
    assert all_stored(real, 2)
    assert parse_bulk_response(real, 2).stored == 2
    # Another key order, spaces, or a count that does not match: the full parse decides.
    assert all_stored(b'{"errors":false,"took":1,"items":[{"index":{"status":201}}]}', 1)
    assert not all_stored(b'{"items":[{"index":{"status":201}}],"errors":false}', 1)
    assert not all_stored(b'{"took":1, "errors": false, "items":[{"index":{"status":201}}]}',
                          1)
    assert not all_stored(real, 3)
    with pytest.raises(BulkResponseError, match="2 items for 3 sent"):
        parse_bulk_response(real, 3)
    # errors:true is never taken for all stored, even with the right count.
    assert not all_stored(_resp({"index": {"status": 201}}, {"index": {"status": 429}}), 2)


def test_items_are_classified_by_their_own_status():
    conflict = {"type": "version_conflict_engine_exception"}
    mapping = {"type": "mapper_parsing_exception", "reason": "failed to parse [http_status]"}
    body = _resp(
        {"index": {"status": 201}},
        {"index": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}},
        {"create": {"status": 409, "error": conflict}},
        {"index": {"status": 400, "error": mapping}},
        {"index": {"status": 503}},
        {"index": {"status": 409, "error": conflict}},
    )
    out = parse_bulk_response(body, 6)
    assert out.stored == 2  # the 201 and the create 409 (already stored)
    assert out.retry == [1, 4]
    assert out.rejected == [(3, 400, mapping), (5, 409, conflict)]


@pytest.mark.parametrize("body", [b"<html>", b"[]", _resp({"index": {"status": 201}}),
                                  _resp({"index": {}}, {"index": {"status": 201}}),
                                  _resp("x", {"index": {"status": 201}})])
def test_unreadable_responses_mean_send_again(body):
    with pytest.raises(BulkResponseError):
        parse_bulk_response(body, 2)


def test_verdicts():
    assert item_verdict("index", 200) == item_verdict("create", 409) == 0
    assert item_verdict("index", 429) == item_verdict("index", 502) == 1
    assert item_verdict("index", 409) == item_verdict("index", 400) == 2


def test_credentials_never_leave_the_url():
    assert redact_url("https://bob:s3cret@es:9200/x") == "https://es:9200/x"
    assert split_credentials("http://bob:s3cret@es:9200") == ("http://es:9200", "bob", "s3cret")


async def test_dead_letter_lines_carry_document_and_reason(tmp_path):
    dl = DeadLetterFile(tmp_path / "dl" / "es.ndjson", "es")
    item = b'{"index":{"_index":"log-2024.01.01"}}\n{"http_status":"oops"}\n'
    await dl.write([(item, 400, {"type": "mapper_parsing_exception"}),
                    (b'{"index":{}}\nnot json\n', 400, "bad")])
    lines = [orjson.loads(x) for x in (tmp_path / "dl" / "es.ndjson").read_bytes().splitlines()]
    assert lines[0]["action"] == {"index": {"_index": "log-2024.01.01"}}
    assert lines[0]["source"] == {"http_status": "oops"}
    assert lines[0]["error"] == {"type": "mapper_parsing_exception"}
    assert lines[1]["source"] == "not json" and lines[1]["status"] == 400
    assert oct((tmp_path / "dl" / "es.ndjson").stat().st_mode & 0o777) == "0o600"
