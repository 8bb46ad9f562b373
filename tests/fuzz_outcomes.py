"""What a fuzzed request may come to: the closed set of outcomes both fuzzers assert.

A request the broker takes (the dispatch fuzz, in-process) or a frame it reads (the live fuzz,
over sockets) ends in one of:
  - an answer that decodes, whole, as the response of the api key and version its request named,
    with the request's correlation id, and no UNKNOWN_SERVER_ERROR in it (the dispatcher makes
    those up when a handler raised; a handler answering it itself is listed below);
  - ApiVersions at a version past our range: answered UNSUPPORTED_VERSION in the v0 layout (KIP-511);
  - no answer: Produce with acks=0 only;
  - held (a long-poll Fetch, a JoinGroup waiting for its group);
  - the connection closed for one of the `CloseReason`s the fuzzer allows.
Anything else is a broker bug a client could trigger: `answer_problem` says what is wrong.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from kbroker.broker.connection import CloseReason
from kbroker.errors import ErrorCode, ProtocolViolation
from kbroker.wire import frames
from kbroker.wire.messages import APIS
from kbroker.wire.messages.api_versions import API_VERSIONS

PRODUCE = 0
# Requests a handler may hold past the fuzzers' short wait: they wait by design (max_wait_ms, a
# rebalance, a join or sync of a classic group, an acks=all Produce waiting for its flush).
MAY_BE_HELD = frozenset({PRODUCE, 1, 11, 14})  # Produce, Fetch, JoinGroup, SyncGroup
# Reasons a well-framed request may close its connection with (the dispatcher's own rules).
REQUEST_CLOSES = frozenset({CloseReason.UNDECODABLE, CloseReason.UNKNOWN_API, CloseReason.UNSUPPORTED_VERSION,
                            CloseReason.UNANSWERED_ERROR})


def error_codes(value: object, out: set[int] | None = None) -> set[int]:
    """Every `error_code` field anywhere in a decoded message."""
    out = set() if out is None else out
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            child = getattr(value, f.name)
            if f.name == "error_code" and isinstance(child, int):
                out.add(child)
            else:
                error_codes(child, out)
    elif isinstance(value, list):
        for child in value:
            error_codes(child, out)
    return out


def joined(parts: list[Any]) -> bytes:
    """A response's frame parts (bytes, and file slices for Fetch record data) as one frame."""
    data = bytearray()
    for part in parts:
        if isinstance(part, (bytes, bytearray)):
            data += part
        else:
            for piece in part.slices:
                data += os.pread(piece.file.fileno(), piece.length, piece.position)
    return bytes(data)


def served_version(api_key: int, version: int) -> bool:
    return api_key in APIS and APIS[api_key].valid.low <= version <= APIS[api_key].valid.high


def answer_problem(frame: bytes, api_key: int, version: int, correlation_id: int) -> tuple[str | None, Any]:
    """(what is wrong with this answer, or None; the decoded body) for a request of (api_key,
    version, correlation_id). `frame` is the answer after its size prefix."""
    unknown_api_versions = api_key == API_VERSIONS.key and not served_version(api_key, version)
    if unknown_api_versions:
        version = 0  # KIP-511: the answer to a version we do not know is in the v0 layout
    if api_key not in APIS:
        return f"an answer to api key {api_key}, which is not served", None
    api = APIS[api_key]
    try:
        answered_id, body, consumed = frames.decode_response(memoryview(frame), api, version)
    except ProtocolViolation as exc:
        return f"does not decode as a {api.name} v{version} response: {exc}", None
    if answered_id != correlation_id:
        return f"correlation id {answered_id}, the request's was {correlation_id}", body
    if consumed != len(frame):
        return f"{len(frame) - consumed} bytes past the end of the {api.name} v{version} response", body
    if ErrorCode.UNKNOWN_SERVER_ERROR in error_codes(body):
        return f"UNKNOWN_SERVER_ERROR in a {api.name} v{version} answer", body
    if unknown_api_versions and body.error_code != ErrorCode.UNSUPPORTED_VERSION:
        return f"ApiVersions past our range answered {body.error_code}, not UNSUPPORTED_VERSION", body
    return None, body
