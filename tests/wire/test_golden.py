"""Request frames captured from five real clients decode exactly and re-encode to the same bytes.

golden/requests.jsonl and responses.jsonl are copies of shared/protocol/golden/ (see its
README): each line holds a whole frame after the size prefix. One librdkafka 2.16 Metadata v12 frame
(marked with a ``note``) writes a null compact array as a 4-byte int and leaves 3 bytes over
(librdkafka issue 5049); a broker must accept it, so the decoder tolerates trailing bytes.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbroker.wire import frames
from kbroker.wire.messages import APIS

HERE = Path(__file__).parent
GOLDEN = [json.loads(line) for line in (HERE / "golden" / "requests.jsonl").read_text().splitlines()]
RESPONSES = [json.loads(line) for line in (HERE / "golden" / "responses.jsonl").read_text().splitlines()]
# Client telemetry (KIP-714) is not declared.
UNDECLARED = {71: "GetTelemetrySubscriptions"}
DECODABLE = [(n, line) for n, line in enumerate(GOLDEN, 1) if line["api_key"] in APIS]


def line_id(case: tuple[int, dict]) -> str:
    n, line = case
    return f"{n}-{line['client']}-{line['api_name']}-v{line['api_version']}"


def test_the_copy_is_whole() -> None:
    assert len(GOLDEN) == 583
    assert sum("note" in line for line in GOLDEN) == 1


def test_every_api_clients_send_is_declared() -> None:
    sent = {line["api_key"]: line["api_name"] for line in GOLDEN}
    missing = {key: name for key, name in sent.items() if key not in APIS and key not in UNDECLARED}
    assert not missing
    for key, name in sent.items():
        if key in APIS:
            assert APIS[key].name == name


@pytest.mark.parametrize("case", DECODABLE, ids=line_id)
def test_golden_request_decodes_exactly_and_re_encodes(case: tuple[int, dict]) -> None:
    _, line = case
    frame = bytes.fromhex(line["hex"])
    api, version = APIS[line["api_key"]], line["api_version"]
    assert version in api.valid
    assert frames.peek_header(memoryview(frame))[:2] == (line["api_key"], version)

    header, body, used = frames.decode_request(memoryview(frame), api, version)

    assert (header.api_key, header.api_version) == (line["api_key"], version)
    assert api.request_header_version(version) == line["header_version"]
    assert used == len(frame) - (3 if "note" in line else 0)
    if "note" in line:
        assert frame[used:] == b"\x01\x00\x00"
    again = frames.encode_request(api, version, header.correlation_id, header.client_id, body)
    assert again[4:] == frame[:used]


@pytest.mark.parametrize("line", [line for line in RESPONSES if line["api_key"] in APIS],
                         ids=lambda line: f"{line['api_name']}-v{line['api_version']}")
def test_tansu_responses_decode_exactly(line: dict) -> None:
    """A layout check of our response declarations on a real peer's bytes.

    Tansu 0.6 is not a reference encoder (it has known deviations, such as tagged fields Kafka
    omits in its ApiVersions v3+ answer), so
    these frames are only decoded, never compared with our encodings.
    """
    frame = bytes.fromhex(line["hex"])
    api, version = APIS[line["api_key"]], line["api_version"]
    assert api.response_header_version(version) == line["header_version"]
    _, _, used = frames.decode_response(memoryview(frame), api, version)
    assert used == len(frame)
