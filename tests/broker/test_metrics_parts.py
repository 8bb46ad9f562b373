"""The metrics' own logic: error codes found in nested answers, and JSON log lines."""
from __future__ import annotations

import json
import logging
import sys

from kbroker.broker.metrics import _error_codes
from kbroker.json_logs import JsonFormatter
from kbroker.wire.messages.produce import PartitionProduceResponse, ProduceResponse, TopicProduceResponse


def test_error_codes_are_found_at_every_level_of_an_answer_and_zero_is_not_one():
    answer = ProduceResponse(responses=[
        TopicProduceResponse(name="a", partition_responses=[
            PartitionProduceResponse(index=0, error_code=0),
            PartitionProduceResponse(index=1, error_code=6),
        ]),
        TopicProduceResponse(name="b", partition_responses=[PartitionProduceResponse(index=0, error_code=3)]),
    ])
    assert sorted(_error_codes(answer, ProduceResponse)) == [3, 6]


def test_json_log_lines_carry_the_message_and_the_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("kbroker.x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert "\n" not in line
    assert (entry["level"], entry["logger"], entry["msg"]) == ("ERROR", "kbroker.x", "failed here")
    assert entry["ts"].endswith("Z") and "ValueError: boom" in entry["exc"]
